"""Lowest eigenpairs of symmetric operators: filtered subspace iteration and its baselines.

One outer iteration serves every polynomial filter (ChFSI, randomised subspace iteration, learned
filters); only the filter differs (Zhou & Saad 2007, ``baselines.md`` §C.4)::

    probe (Lanczos, counted):  b = θ_max + β_m (safe λmax bound),  ‖A‖_est = max_j |θ_j|
    V ← orth(Gaussian n×block)
    repeat:  W = p(A) V            (deg p matvecs per active column)
             V ← orth(W ⟂ locked)  (QR; dependent/non-finite columns replaced by random ones)
             Rayleigh–Ritz on V    (1 matvec per active column), residuals, lock converged pairs
             a ← θ_max(V) (the block-th Ritz value), a_L ← smallest Ritz value

ChFSI's filter is ``p(λ) = T_m(ℓ(λ))/T_m(ℓ(a_L))`` with ``ℓ(λ) = (λ − c)/e``, ``c = (a+b)/2``,
``e = (b−a)/2``: bounded by ``1/|T_m(ℓ(a_L))|`` on the unwanted ``[a, b]``, 1 at ``a_L``. Its
degree m starts at ``degree`` and is raised where that gains little per step
(:func:`filter_degree`); the learned filters do the same on their own interval. Where the next filter step
would cost n products or more (small operators, or a degree raised on a packed wanted end) and
n <= 4096, Rayleigh–Ritz on the whole space (n products, dense ``eigh``) gives the answer instead.

Residual definition, the same for every method (well defined for indefinite A and θ ≈ 0)::

    r_j = ‖A v_j − θ_j v_j‖₂ / ‖A‖_est   (‖v_j‖₂ = 1),   info.max_residual = max_{j ≤ k} r_j

with ``‖A‖_est = max_j |θ_j|`` over the Ritz values of the shared probe (``≤ ‖A‖₂``, so the test
is never looser than one relative to ``‖A‖₂``). A run has converged when ``max_residual <= tol``;
then every returned eigenvalue lies within ``tol·‖A‖₂`` of an eigenvalue of A (no residual test
sees a missed eigenvalue, e.g. a second copy of a double one, which single-vector Lanczos
misses). ``info.matvecs`` counts every product with A, the probe included, for every method; the
residuals of the pairs returned by the SciPy solvers (which test their own) are recomputed with
uncounted products.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import scipy.linalg as sla
import scipy.sparse.linalg as spla
import torch
from numpy.polynomial import chebyshev as npcheb

from autospec.errors import InputValueError
from autospec.operators import Operator, as_operator
from autospec.probe import Probe, lanczos
from autospec.recurrences import ChebyshevBasis, Matmat, chebyshev_T

WHICH = ("SA", "LA")
DEFAULT_DEGREE = 15  # Octopus' default after a 21-system scan (baselines.md §C.4)
DEFAULT_PROBE_STEPS = 50
BUDGET_PER_ROW = 200  # default max_matvecs = 200·n
RANK_RTOL = 1e-10  # |R_jj| of a unit column below this: numerically dependent, replaced
MIN_INTERVAL = 1e-2  # keep b − a >= 1e-2·(b − a_L) so the filter is finite when block ≈ n
MAX_DEGREE = 4000  # default cap of the escalated filter degree
DEGREE_GAIN = 3.0  # an escalated filter gains cosh(3) ≈ 10 on the slowest wanted pair per step
DYNAMIC_RANGE = 1e6  # bound of T_m(ℓ(a_L))/T_m(ℓ(θ)) for an escalated degree
WHOLE_SPACE_MAX_N = 4096  # the whole-space Rayleigh–Ritz holds A densely (n² floats: 128 MiB here)
STAGNATION_WINDOW = 50  # outer iterations allowed without ...
STAGNATION_FACTOR = 0.999  # ... a new best max residual (0.1 % below the previous best)
ARPACK_TOL_FACTOR = 0.5  # ARPACK's Ritz estimates β|s_j| vs. true residuals
LOBPCG_TOL_FACTOR = 0.5  # LOBPCG's recursively updated residuals vs. true residuals
LOBPCG_RUNS = 5  # LOBPCG restarts from its result while its residuals fail the test


@dataclass
class FilterContext:
    """What a filter sees: the operator, the probe and the current spectral estimates.

    ``ritz``/``residuals`` are the current Ritz values (ascending) and relative residuals; before
    the first Rayleigh–Ritz they are the probe's.
    """

    op: Operator
    probe: Probe
    lower: float  # a: lower end of the unwanted interval
    upper: float  # b: safe upper bound of λmax
    lowest: float  # a_L: smallest Ritz value (the filter is normalised to 1 there)
    ritz: torch.Tensor
    residuals: torch.Tensor
    iteration: int
    wanted: int = 1  # k
    block: int = 2  # columns filtered
    degree: int | None = None  # degree asked of the filter this iteration (None: its own)


class Polynomial(Protocol):
    def apply(self, matmat: Matmat, Z: torch.Tensor) -> torch.Tensor: ...


class Filter(Protocol):
    """A filter: ``filter(ctx)`` returns a polynomial whose ``apply`` costs ``ctx.degree`` (default
    ``degree``) matvecs; ``escalates``: the outer iteration may raise its degree (:func:`filter_degree`)."""

    degree: int
    escalates: bool

    def __call__(self, ctx: FilterContext) -> Polynomial: ...


CoefficientFn = Callable[[FilterContext, int], torch.Tensor]


@dataclass(frozen=True)
class PolynomialFilter:
    """``p(λ) = Σ_k c_k T_k(ℓ(λ))`` on the unwanted interval, ``c = coefficients(ctx, degree)``.

    ChFSI, RSI and learned filters (``coefficients`` = an engine reading ``ctx``) are all this.
    """

    coefficients: CoefficientFn
    degree: int
    escalates: bool = False

    def __call__(self, ctx: FilterContext) -> ChebyshevBasis:
        degree = ctx.degree or self.degree
        c = torch.as_tensor(self.coefficients(ctx, degree), dtype=ctx.op.dtype, device=ctx.op.device)
        if c.shape != (degree + 1,):
            raise InputValueError(f"filter returned {tuple(c.shape)} coefficients, expected ({degree + 1},)")
        a, b = (torch.tensor(x, dtype=ctx.op.dtype, device=ctx.op.device) for x in (ctx.lower, ctx.upper))
        return ChebyshevBasis(c=c, a=a, b=b)


def _ell(ctx: FilterContext, lam: float) -> float:
    """``ℓ(λ) = (λ − c)/e`` of the unwanted interval."""
    return (lam - (ctx.upper + ctx.lower) / 2) / ((ctx.upper - ctx.lower) / 2)


def chebyshev_coefficients(ctx: FilterContext, degree: int) -> torch.Tensor:
    """ChFSI: ``c = e_m / T_m(ℓ(a_L))``, i.e. ``p(λ) = T_m(ℓ(λ))/T_m(ℓ(a_L))``."""
    c = torch.zeros(degree + 1, dtype=torch.float64)
    c[degree] = 1.0 / float(chebyshev_T(degree, np.array([_ell(ctx, ctx.lowest)]))[0])
    return c


def power_coefficients(ctx: FilterContext, degree: int) -> torch.Tensor:
    """RSI: ``p(λ) = ((b − λ)/(b − a_L))^m = ((1 − ℓ(λ))/(1 − ℓ(a_L)))^m`` in the Chebyshev basis."""
    c = npcheb.chebpow([1.0, -1.0], degree) / (1.0 - _ell(ctx, ctx.lowest)) ** degree
    return torch.from_numpy(c)


def chebyshev_filter(degree: int = DEFAULT_DEGREE) -> PolynomialFilter:
    """ChFSI's scaled Chebyshev filter of the given (starting) degree."""
    return PolynomialFilter(chebyshev_coefficients, degree, escalates=True)


def filter_degree(base: int, max_degree: int, lower: float, upper: float, lowest: float, theta: float) -> int:
    """Degree of the next Chebyshev-type filter (degree escalation, after ChASE's per-vector degrees).

    On the slowest unconverged wanted Ritz value θ a degree-m filter gains ``T_m(|ℓ(θ)|) =
    cosh(m u)``, ``u = acosh|ℓ(θ)|``, per outer iteration: ``≈ e^{m u}/2`` when ``m u ≫ 1`` but only
    ``1 + (m u)²/2`` when the wanted end is packed against the cut (``u ≪ 1/m``), where raising m
    gains up to ``1/(m u)`` times more per matvec. Returns ``⌈3/u⌉`` (a gain of ``cosh 3 ≈ 10``),
    clamped to ``[base, max_degree]`` and to ``ln(1e6)/(u_L − u)`` so that the amplified end stays
    within ``T_m(|ℓ(a_L)|)/T_m(|ℓ(θ)|) <= 1e6`` (rounding of the dominant directions, locked ones
    included, must not swamp θ's); ``base`` when θ is not below the cut.
    """
    u = wanted_rate(lower, upper, theta)
    if u == 0:
        return base
    m = math.ceil(DEGREE_GAIN / u)
    u_lowest = wanted_rate(lower, upper, lowest)
    if u_lowest > u:
        m = min(m, math.floor(math.log(DYNAMIC_RANGE) / (u_lowest - u)))
    return int(min(max(m, base), max_degree))


def wanted_rate(lower: float, upper: float, theta: float) -> float:
    """``u = acosh|ℓ(θ)|`` for θ below the cut (0 otherwise): ``T_m(|ℓ(θ)|) = cosh(m u)``."""
    x = abs(theta - (upper + lower) / 2) / ((upper - lower) / 2)
    return math.acosh(x) if theta < lower and x > 1 else 0.0


def power_filter(degree: int = DEFAULT_DEGREE) -> PolynomialFilter:
    """``degree`` power steps on ``b·I − A`` between orthonormalisations (randomised subspace iteration)."""
    return PolynomialFilter(power_coefficients, degree)


@dataclass
class EigenInfo:
    """What an eigensolve did. ``max_residual`` is ``max_{j≤k} ‖Av_j − θ_j v_j‖/‖A‖_est`` (module
    docstring); ``history`` holds ``(matvecs, max_residual)`` after each outer iteration of the
    filter methods (only the final point for lanczos/lobpcg); ``outer_iters`` counts
    filter+Rayleigh–Ritz steps (chfsi, rsi, autospec), LOBPCG iterations, or Lanczos steps
    (= products requested by ARPACK)."""

    outer_iters: int = 0
    matvecs: int = 0
    converged: bool = False
    max_residual: float = float("inf")
    seconds: float = 0.0
    stagnated: bool = False
    whole_space: bool = False  # the answer is the Rayleigh–Ritz on all of ℝⁿ (filter methods)
    message: str = ""
    method: str = "chfsi"
    k: int = 0
    block: int = 0
    degree: int = 0
    residuals: list[float] = field(default_factory=list)
    history: list[tuple[int, float]] = field(default_factory=list)
    interval: tuple[float, float, float] | None = None  # final (a_L, a, b) of the filters (of −A for "LA")


class _BudgetReached(Exception):
    """Raised inside SciPy solvers when the next product would exceed the matvec budget."""


@dataclass
class _Problem:
    """A validated eigenproblem: operator (negated for ``which="LA"``), shared probe, stopping rule."""

    op: Operator
    k: int
    tol: float
    budget: int
    seed: int
    start: int  # op.matvecs before the probe
    probe: Probe
    scale: float  # ‖A‖_est = max_j |θ_j(probe)|
    block: int  # columns of the block methods, pairs of ARPACK (default_block unless given, at most n)

    @property
    def matvecs(self) -> int:
        return self.op.matvecs - self.start

    def residuals(self, V: torch.Tensor, AV: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """``‖A v_j − θ_j v_j‖ / ‖A‖_est`` per column."""
        return (AV - V * theta).norm(dim=0) / self.scale

    def gaussian(self, columns: int, gen: torch.Generator) -> torch.Tensor:
        V = torch.randn(self.op.n, columns, generator=gen, dtype=torch.float64)
        return V.to(dtype=self.op.dtype, device=self.op.device)


class _Negated(Operator):
    """``−A``: ``which="LA"`` runs the ``"SA"`` code on it."""

    def __init__(self, op: Operator):
        super().__init__(op.shape, op.dtype, op.device)
        self.inner = op

    def _matmat(self, V):
        return -self.inner._matmat(V)


def _setup(A, k, which: str, tol: float, max_matvecs: int | None, probe_steps: int, seed: int,
           block: int | None) -> _Problem:
    """Validate the input, run the shared Lanczos probe (counted) and fix ‖A‖_est."""
    if which not in WHICH:
        raise InputValueError(f"which={which!r} is not supported; "
                              "choose 'SA' (smallest algebraic) or 'LA' (largest algebraic)")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol <= 0:
        raise InputValueError(f"tol must be a positive finite number, got {tol!r}")
    op = as_operator(A, symmetric=True, seed=seed)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 < k < op.n:
        raise InputValueError(f"k must be an integer with 0 < k < n = {op.n}, got k={k!r}")
    if block is not None and (isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block <= k):
        raise InputValueError(f"block must be an integer > k = {k}, got {block!r}")
    if max_matvecs is not None and max_matvecs < 1:
        raise InputValueError(f"max_matvecs must be positive, got {max_matvecs}")
    if which == "LA":
        op = _Negated(op)
    start = op.matvecs
    budget = BUDGET_PER_ROW * op.n if max_matvecs is None else int(max_matvecs)
    probe = lanczos(op, steps=probe_steps, seed=seed)
    scale = max(float(probe.ritz.abs().max()), torch.finfo(op.dtype).tiny)
    block = default_block(int(k), op.n) if block is None else min(int(block), op.n)
    return _Problem(op, int(k), float(tol), budget, int(seed), start, probe, scale, block)


def _orthonormalise(W: torch.Tensor, locked: torch.Tensor, prob: _Problem, gen: torch.Generator) -> torch.Tensor:
    """Orthonormal Q spanning ``W ⟂ locked``: two Gram–Schmidt passes against ``locked``, unit
    columns, Householder QR; columns that are non-finite or dependent (``|R_jj| <= 1e-10``) are
    replaced by Gaussian ones (at most three rounds)."""
    bad = ~torch.isfinite(W).all(dim=0)
    for _ in range(3):
        if bool(bad.any()):
            W = W.clone()
            W[:, bad] = prob.gaussian(int(bad.sum()), gen)
        for _ in range(2):
            W = W - locked @ (locked.mT @ W)
        W = W / W.abs().amax(dim=0).clamp_min(torch.finfo(W.dtype).tiny)
        W = W / W.norm(dim=0).clamp_min(torch.finfo(W.dtype).tiny)
        Q, R = torch.linalg.qr(W)
        bad = R.diagonal().abs() <= RANK_RTOL
        if not bool(bad.any()):
            break
        W = Q
    return Q


def _rayleigh_ritz(V: torch.Tensor, AV: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ritz pairs of ``H = VᵀAV`` (symmetrised): ``θ`` ascending, ``V S`` and ``A V S``."""
    H = V.mT @ AV
    theta, S = torch.linalg.eigh((H + H.mT) / 2)
    return theta, V @ S, AV @ S


def unwanted_lower(a, b, lowest) -> torch.Tensor:
    """``a`` clamped to ``[a_L, b − 1e-2 (b − a_L)]`` so that ``e = (b − a)/2 > 0`` (floats or batches)."""
    a, b, lowest = (torch.as_tensor(x, dtype=torch.float64) for x in (a, b, lowest))
    width = torch.maximum(b - lowest, b.abs() * 1e-8).clamp_min(1e-300)
    return torch.minimum(torch.maximum(a, lowest), b - MIN_INTERVAL * width)


def _subspace_iteration(prob: _Problem, filt: Filter, reprobe: bool, max_degree: int, whole_space: bool):
    """Filtered subspace iteration (module docstring); escalating filters take :func:`filter_degree`
    after the first step; with ``whole_space`` a step that would cost n products or more is replaced
    by :func:`_whole_space`. Returns the best pairs seen and the info (``info.degree``: the largest
    degree used)."""
    op, k, tol, block = prob.op, prob.k, prob.tol, prob.block
    gen = torch.Generator().manual_seed(prob.seed)
    V = prob.gaussian(block, gen)
    locked, locked_theta, locked_res = V[:, :0], V.new_zeros(0), V.new_zeros(0)
    V = _orthonormalise(V, locked, prob, gen)
    ritz, res = prob.probe.ritz, prob.probe.residuals / prob.scale
    b, lowest = float(prob.probe.upper), float(prob.probe.theta_min)
    a = float(prob.probe.ritz[min(block, prob.probe.steps - 1)])  # >= λ_{block+1} by interlacing
    info = EigenInfo(block=block)
    best: tuple = (math.inf, None, None, None)
    best_iter = 0
    while True:
        a = float(unwanted_lower(a, b, lowest))
        degree = filt.degree
        slow = ritz[:k][res[:k] > tol]
        if filt.escalates and info.outer_iters and len(slow):
            degree = filter_degree(filt.degree, max_degree, a, b, lowest, float(slow.max()))
        affordable = (prob.budget - prob.matvecs) // V.shape[1] - 1
        if info.outer_iters and affordable < filt.degree:
            info.message = f"stopped at the matvec budget ({prob.budget})"
            break
        degree = min(degree, max(affordable, filt.degree))
        if whole_space and _whole_space_cheaper(prob, degree, V.shape[1]):
            return _whole_space(prob, info, f"a degree-{degree} filter step would cost n = {op.n} products or more")
        info.degree = max(info.degree, degree)
        ctx = FilterContext(op, prob.probe, a, b, lowest, ritz, res, info.outer_iters, k, block, degree)
        V = _orthonormalise(filt(ctx).apply(op.matmat, V), locked, prob, gen)
        theta, V, AV = _rayleigh_ritz(V, op.matmat(V))
        r = prob.residuals(V, AV, theta)
        info.outer_iters += 1
        nlock = int(torch.cumprod((r[: k - locked.shape[1]] <= tol).int(), 0).sum())
        locked = torch.cat([locked, V[:, :nlock]], 1)
        locked_theta, locked_res = torch.cat([locked_theta, theta[:nlock]]), torch.cat([locked_res, r[:nlock]])
        V, theta, r = V[:, nlock:], theta[nlock:], r[nlock:]
        ritz, order = torch.sort(torch.cat([locked_theta, theta]))
        res = torch.cat([locked_res, r])[order]
        worst = float(res[:k].max())
        info.history.append((prob.matvecs, worst))
        if worst < STAGNATION_FACTOR * best[0]:
            best_iter = info.outer_iters
        if worst < best[0]:
            best = (worst, ritz[:k], torch.cat([locked, V], 1)[:, order[:k]], res[:k])
        if worst <= tol:
            break
        if info.outer_iters - best_iter >= STAGNATION_WINDOW:
            info.stagnated = True
            info.message = f"stagnated: no new best max residual in {STAGNATION_WINDOW} outer iterations"
            break
        if reprobe:
            a, lowest = float(theta[-1]), float(ritz[0])
    info.interval = (lowest, a, b)
    return best[1], best[2], best[3], info


class _CountingOperator(spla.LinearOperator):
    """SciPy view of ``A + shift·I`` whose products go through ``prob.op`` (counted). With
    ``keep > 0`` it remembers its last ``keep`` inputs ``X`` and products ``A X`` and, once it has
    made ``keep/4`` products, raises ``_BudgetReached`` instead of exceeding the budget."""

    def __init__(self, prob: _Problem, shift: float = 0.0, keep: int = 0):
        super().__init__(dtype=np.float64, shape=prob.op.shape)
        self.prob, self.shift, self.keep, self.products, self.calls = prob, shift, keep, 0, 0
        self.X, self.AX = (torch.zeros(prob.op.n, keep, dtype=prob.op.dtype, device=prob.op.device) for _ in range(2))

    def _matmat(self, X):
        X = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float64).reshape(self.shape[0], -1))
        X = X.to(dtype=self.prob.op.dtype, device=self.prob.op.device)
        if self.keep and 4 * self.products >= self.keep and self.prob.matvecs + X.shape[1] > self.prob.budget:
            raise _BudgetReached
        AX = self.prob.op.matmat(X)
        if self.keep:  # ring buffer of the last `keep` columns
            take = min(X.shape[1], self.keep)
            slots = (self.products + torch.arange(X.shape[1] - take, X.shape[1])) % self.keep
            self.X[:, slots], self.AX[:, slots] = X[:, -take:], AX[:, -take:]
        self.products += X.shape[1]
        self.calls += 1
        return (AX + self.shift * X).to(torch.float64).cpu().numpy()

    def _adjoint(self):
        return self

    def rayleigh_ritz(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Ritz pairs ``θ, V, AV`` of the remembered inputs without new products: ``X = U Σ Wᵀ``
        (directions with ``σ <= 1e-8 σ_max`` dropped), ``A U = (A X) W Σ⁻¹``."""
        filled = min(self.products, self.keep)
        U, sigma, Wt = torch.linalg.svd(self.X[:, :filled], full_matrices=False)
        kept = sigma > 1e-8 * sigma[:1]
        return _rayleigh_ritz(U[:, kept], self.AX[:, :filled] @ Wt[kept].mT / sigma[kept])


def _verified(prob: _Problem, theta, V):
    """Pairs from a SciPy solver as tensors, with residuals from uncounted products."""
    theta, V = (torch.as_tensor(x).to(dtype=prob.op.dtype, device=prob.op.device) for x in (theta, V))
    return theta, V, prob.residuals(V, prob.op._matmat(V), theta)


def _arpack(prob: _Problem):
    """``scipy.sparse.linalg.eigsh(which="SA")`` (implicitly restarted Lanczos, no shift-invert) for
    ``prob.block`` pairs (default :func:`default_block`; the guard pairs help it find second copies of
    repeated eigenvalues), SciPy's ``ncv = max(2·block + 1, 20)`` (n when that is ≥ n/2, where
    ARPACK's restarts can break down); the lowest k are returned.

    ARPACK stops at ``‖r_j‖ <= tol_A·|θ_j|``; it runs on ``A + σI`` with ``σ = ‖A‖_est − θ_min(probe)``
    (same Krylov spaces, wanted ``|θ_j + σ| ≈ ‖A‖_est``) and ``tol_A = tol/2``, so its test matches
    the common ``‖r_j‖ <= tol·‖A‖_est``. At the budget (the first ``ncv`` Lanczos steps always
    run), or if ARPACK fails, the result is the Rayleigh–Ritz of its last ``4·ncv`` Lanczos
    vectors (stored products, no extra matvecs), completed by Gaussian vectors (their products
    counted, beyond the budget) when those span fewer than k directions.
    """
    n, k = prob.op.n, prob.k
    pairs = min(prob.block, n - 1)
    ncv = max(2 * pairs + 1, 20)
    ncv = n if 2 * ncv >= n else ncv  # a basis of half the space: take all of it (exact, no restarts)
    shift = prob.scale - float(prob.probe.theta_min)
    A = _CountingOperator(prob, shift=shift, keep=4 * ncv)
    v0 = np.random.default_rng(prob.seed).standard_normal(n)
    info = EigenInfo(block=pairs)
    start = prob.matvecs
    try:
        theta, V = spla.eigsh(A, k=pairs, which="SA", v0=v0, ncv=ncv, maxiter=prob.budget,
                              tol=ARPACK_TOL_FACTOR * prob.tol)
        lowest = np.argsort(theta)[:k]
        theta, V = theta[lowest] - shift, V[:, lowest]
    except (_BudgetReached, spla.ArpackNoConvergence, spla.ArpackError) as err:
        budget = isinstance(err, _BudgetReached)
        info.message = f"stopped at the matvec budget ({prob.budget})" if budget else f"ARPACK: {err}"
        theta, V, AV = A.rayleigh_ritz()
        if V.shape[1] < k:
            gen = torch.Generator().manual_seed(prob.seed)
            W = _orthonormalise(prob.gaussian(k - V.shape[1], gen), V, prob, gen)
            theta, V, _ = _rayleigh_ritz(torch.cat([V, W], 1), torch.cat([AV, prob.op.matmat(W)], 1))
        theta, V = theta[:k], V[:, :k]
    info.outer_iters = prob.matvecs - start
    return (*_verified(prob, theta, V), info)


def _lobpcg(prob: _Problem):
    """``scipy.sparse.linalg.lobpcg(largest=False)`` on ``block = prob.block`` (default
    :func:`default_block`) Gaussian columns, with its absolute test ``‖r_j‖ <= tol_L`` at ``tol_L = tol·‖A‖_est/2``.

    LOBPCG deactivates a column for good once its residual passes the test, so the returned
    residuals may exceed it again: the run is restarted from its result (at most 5 runs) while
    SciPy's final, explicitly computed residuals fail the common test and still decrease. Each run
    costs ``block`` products to start and to end and at most ``block`` per iteration; ``maxiter``
    keeps it within the budget (SciPy's rare internal restarts cost ``block`` more). Small problems
    (``n < 5·block``) are solved densely by SciPy (n products). If SciPy fails (Cholesky or
    ``eigh`` breakdown) the last result, or the Rayleigh–Ritz of the start block, is returned.
    """
    k, bs = prob.k, prob.block
    A = _CountingOperator(prob)
    X = torch.randn(prob.op.n, bs, generator=torch.Generator().manual_seed(prob.seed), dtype=torch.float64).numpy()
    theta, previous, info = None, math.inf, EigenInfo(block=bs)
    for run in range(LOBPCG_RUNS):
        maxiter = (prob.budget - prob.matvecs - 3 * bs) // bs  # SciPy runs maxiter + 1 iterations
        if run and maxiter < 1:
            break
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theta, X, *history = spla.lobpcg(A, X, tol=LOBPCG_TOL_FACTOR * prob.tol * prob.scale,
                                                 maxiter=max(1, maxiter), largest=False, retResidualNormsHistory=True)
        except (ValueError, np.linalg.LinAlgError) as err:
            info.message = f"LOBPCG failed: {err}"
            break
        # history[0][-1]: residuals of the final explicit Rayleigh–Ritz (none for the dense path)
        worst = float(np.max(history[0][-1][:k])) / prob.scale if history else 0.0
        if worst <= prob.tol:
            break
        if worst >= previous:
            info.message = f"LOBPCG restarts stopped improving (max residual {worst:.2e})"
            break
        previous = worst
    if theta is None:
        Q = torch.linalg.qr(torch.from_numpy(X).to(dtype=prob.op.dtype, device=prob.op.device)).Q
        theta, X, _ = _rayleigh_ritz(Q, prob.op.matmat(Q))
    if not info.message and prob.matvecs > prob.budget - 3 * bs:
        info.message = f"stopped at the matvec budget ({prob.budget})"
    info.outer_iters = max(1, A.calls - 2 * (run + 1))
    return (*_verified(prob, theta[:k], X[:, :k]), info)


DEFAULT_ENGINE = "eigfilter-d15"


@dataclass
class LearnedFilter:
    """The filter of a trained ``eigfilter`` engine (:mod:`autospec.tasks.eigfilter`): the engine
    reads every outer iteration's context and returns that iteration's polynomial; ChFSI's filter
    replaces a non-finite one (counted in ``fallbacks``). At an escalated degree
    (:func:`filter_degree`) it is ChFSI's polynomial on the engine's interval ``[a', b']``."""

    engine: object  # autospec.engines.LearnedEngine
    degree: int
    fallbacks: int = 0
    escalates: bool = True  # above its degree: ChFSI's polynomial on the engine's interval

    def __call__(self, ctx: FilterContext) -> ChebyshevBasis:
        from autospec.tasks.eigfilter import FilterInput  # the task module imports this one

        poly, _ = self.engine.coefficients_from_probe(FilterInput.from_context(ctx))
        if not bool(self.engine.task.safe(poly, None, None).all()):
            self.fallbacks += 1
            return chebyshev_filter(self.degree)(ctx)
        if ctx.degree and ctx.degree != self.degree:
            return chebyshev_filter(ctx.degree)(replace(ctx, lower=float(poly.a[0]), upper=float(poly.b[0])))
        like = {"dtype": ctx.op.dtype, "device": ctx.op.device}
        return ChebyshevBasis(poly.c[0].to(**like), poly.a[0].to(**like), poly.b[0].to(**like))


def _learned_filter(degree: int, engine) -> Filter:
    """:class:`LearnedFilter` of ``engine`` (name, path or loaded engine; default the shipped one)."""
    from autospec.engines import load  # engines → tasks → this module

    learned = load(DEFAULT_ENGINE if engine is None else engine)
    if learned.task.name != "eigfilter":
        raise InputValueError(f"engine {learned.name!r} was trained for task {learned.task.name!r}, "
                              "method='autospec' of eigsh needs an eigfilter engine")
    if degree != learned.degree:
        raise InputValueError(f"engine {learned.name!r} emits degree-{learned.degree} filters, got degree={degree}; "
                              f"use degree={learned.degree} or train an engine for degree {degree}")
    return LearnedFilter(learned, degree)


FILTERS: dict[str, Callable[[int, object], Filter]] = {
    "chfsi": lambda degree, engine: chebyshev_filter(degree),
    "rsi": lambda degree, engine: power_filter(degree),
    "autospec": _learned_filter,
}
BASELINES = {"lanczos": _arpack, "lobpcg": _lobpcg}
METHODS = (*FILTERS, *BASELINES)


def default_block(k: int, n: int) -> int:
    """Block size ``k + max(4, ⌈k/4⌉)`` (15–25 % extra states, as ChFSI codes use), at most n."""
    return min(n, k + max(4, -(-k // 4)))


def _solve(A, k, which, tol, max_matvecs, probe_steps, seed, block, method: str, run):
    """Shared front: validate, probe, ``run(prob)``, sort, verify, undo the negation of ``"LA"``."""
    t0 = time.perf_counter()
    prob = _setup(A, k, which, tol, max_matvecs, probe_steps, seed, block)
    theta, V, res, info = run(prob)
    theta, order = torch.sort(theta)
    V, res = V[:, order], res[order]
    info.method, info.k = method, prob.k
    info.matvecs = prob.matvecs
    info.residuals = res.tolist()
    info.max_residual = float(res.max())
    info.converged = info.max_residual <= prob.tol
    info.history = info.history or [(info.matvecs, info.max_residual)]
    if info.converged:
        info.message = f"converged: max residual {info.max_residual:.2e} <= tol {prob.tol:.1e}" + (
            f" ({info.message})" if info.message else "")
    elif not info.message:
        info.message = f"not converged: max residual {info.max_residual:.2e} > tol {prob.tol:.1e}"
    if which == "LA":
        theta, V = -theta.flip(0), V.flip(1)
    info.seconds = time.perf_counter() - t0
    return theta, V, info


def _whole_space_cheaper(prob: _Problem, degree: int, columns: int) -> bool:
    """A filter step of ``degree`` on ``columns`` would cost at least the n products of the
    whole-space Rayleigh–Ritz, which fits in memory (n <= 4096) and in the budget."""
    n = prob.op.n
    return (degree + 1) * columns >= n and n <= min(WHOLE_SPACE_MAX_N, prob.budget - prob.matvecs)


def _whole_space(prob: _Problem, info: EigenInfo, why: str):
    """Rayleigh–Ritz on all of ℝⁿ: ``H = A I`` (n products), the k lowest eigenpairs of H by dense
    ``eigh``; exact, for operators where one filter step would cost more."""
    op = prob.op
    H = op.matmat(torch.eye(op.n, dtype=op.dtype, device=op.device)).to(torch.float64).cpu().numpy()
    theta, S = sla.eigh((H + H.T) / 2, subset_by_index=(0, prob.k - 1))
    theta, S, AS = (torch.from_numpy(x).to(dtype=op.dtype, device=op.device) for x in (theta, S, H @ S))
    res = prob.residuals(S, AS, theta)
    info.outer_iters += 1
    info.whole_space = True
    info.message = f"{why}: Rayleigh–Ritz on the whole space"
    info.history.append((prob.matvecs, float(res.max())))
    return theta, S, res, info


def _check_max_degree(max_degree, degree: int) -> None:
    if max_degree is not None and (isinstance(max_degree, bool) or not isinstance(max_degree, (int, np.integer))
                                   or max_degree < degree):
        raise InputValueError(f"max_degree must be an integer >= degree = {degree}, got {max_degree!r}")


def _filter_run(filt: Filter, reprobe: bool, max_degree: int | None, whole_space: bool):
    _check_max_degree(max_degree, filt.degree)
    if not isinstance(whole_space, bool):
        raise InputValueError(f"whole_space must be True or False, got {whole_space!r}")

    def run(prob: _Problem):
        top = max(filt.degree, MAX_DEGREE if max_degree is None else int(max_degree))
        return _subspace_iteration(prob, filt, reprobe, top, whole_space)

    return run


def filtered_subspace_iteration(
    A,
    k: int,
    filter: Filter,
    *,
    which: str = "SA",
    block: int | None = None,
    tol: float = 1e-8,
    max_matvecs: int | None = None,
    probe_steps: int = DEFAULT_PROBE_STEPS,
    seed: int = 0,
    reprobe: bool = True,
    max_degree: int | None = None,
    whole_space: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, EigenInfo]:
    """k extreme eigenpairs of symmetric A by filtered subspace iteration with any :class:`Filter`.

    ``block`` (> k, default :func:`default_block`) columns are filtered; ``reprobe=False`` keeps
    the probe's interval ``[a, b]`` and ``a_L`` for every iteration instead of updating them from
    the Ritz values. A filter that ``escalates`` (ChFSI's, learned ones) starts at its degree and
    from the second step takes :func:`filter_degree`, at most ``max_degree`` (default 4000; pass
    the filter's degree for fixed-degree ChFSI). With ``whole_space`` (default), when the next filter
    step would cost n products or more (``(degree + 1)·columns >= n``, the first step included) and
    ``n <= 4096`` fits the budget, the answer is the exact Rayleigh–Ritz on the whole space
    (``info.whole_space``); ``False`` keeps the filter to the end, as filter comparisons need.
    Stops when ``max_residual <= tol``, at ``max_matvecs`` (default ``200·n``; the first outer
    iteration always runs) or on stagnation (no new best max residual, by 0.1 %, in 50 outer
    iterations); returns the best pairs seen, ascending.
    """
    run = _filter_run(filter, reprobe, max_degree, whole_space)
    return _solve(A, k, which, tol, max_matvecs, probe_steps, seed, block, "filter", run)


def eigsh(
    A,
    k: int = 10,
    which: str = "SA",
    method: str = "chfsi",
    tol: float = 1e-8,
    degree: int = DEFAULT_DEGREE,
    engine=None,
    seed: int = 0,
    *,
    block: int | None = None,
    max_matvecs: int | None = None,
    probe_steps: int = DEFAULT_PROBE_STEPS,
    reprobe: bool = True,
    max_degree: int | None = None,
    whole_space: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, EigenInfo]:
    """``vals, vecs, info``: the k smallest (``which="SA"``) or largest (``"LA"``) eigenpairs of
    symmetric A (NumPy, SciPy sparse, ``LinearOperator``, torch), values ascending.

    ``method``: ``"chfsi"`` (Chebyshev filter of ``degree``), ``"rsi"`` (``degree`` power steps on
    ``bI − A`` per Rayleigh–Ritz, Gaussian start), ``"autospec"`` (learned filter of ``engine``),
    ``"lanczos"`` (SciPy/ARPACK ``eigsh``), ``"lobpcg"`` (SciPy, no preconditioner). All share the
    probe, the residual definition (module docstring), ``tol``, ``max_matvecs`` and ``seed``;
    see :func:`filtered_subspace_iteration` for ``block``, ``reprobe``, ``max_degree`` (chfsi and
    autospec raise their degree on packed wanted ends; rsi keeps ``degree``), ``whole_space`` and
    the stopping rules. ``block`` (default :func:`default_block`) is also LOBPCG's block and the
    number of pairs ARPACK computes.
    """
    if method not in METHODS:
        raise InputValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if method in FILTERS:
        if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 1:
            raise InputValueError(f"degree must be a positive integer, got {degree!r}")
        run = _filter_run(FILTERS[method](int(degree), engine), reprobe, max_degree, whole_space)
    else:
        run = BASELINES[method]
    return _solve(A, k, which, tol, max_matvecs, probe_steps, seed, block, method, run)
