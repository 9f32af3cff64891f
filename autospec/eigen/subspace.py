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
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla
import torch

from autospec.core.intervals import filter_start, unwanted_lower
from autospec.core.operators import Operator, as_operator
from autospec.core.probe import Probe, lanczos
from autospec.core.results import Result
from autospec.core.validate import integer
from autospec.eigen.filters import Filter, FilterContext, apply_filter, default_block, filter_degree
from autospec.errors import InputValueError

WHICH = ("SA", "LA")
DEFAULT_PROBE_STEPS = 50
BUDGET_PER_ROW = 200  # default max_matvecs = 200·n
RANK_RTOL = 1e-10  # |R_jj| of a unit column below this: numerically dependent, replaced
WHOLE_SPACE_MAX_N = 4096  # the whole-space Rayleigh–Ritz holds A densely (n² floats: 128 MiB here)
STAGNATION_WINDOW = 50  # outer iterations allowed without ...
STAGNATION_FACTOR = 0.999  # ... a new best max residual (0.1 % below the previous best)


@dataclass(kw_only=True)
class EigenInfo(Result):
    """What an eigensolve did. ``max_residual`` is ``max_{j≤k} ‖Av_j − θ_j v_j‖/‖A‖_est`` (module
    docstring); ``history`` holds ``(matvecs, max_residual)`` after each outer iteration of the
    filter methods (only the final point for lanczos/lobpcg); ``outer_iters`` counts
    filter+Rayleigh–Ritz steps (chfsi, rsi, autospec), LOBPCG iterations, or Lanczos steps
    (= products requested by ARPACK)."""

    method: str = "chfsi"
    outer_iters: int = 0
    max_residual: float = float("inf")
    stagnated: bool = False
    whole_space: bool = False  # the answer is the Rayleigh–Ritz on all of ℝⁿ (filter methods)
    message: str = ""
    k: int = 0
    block: int = 0
    degree: int = 0
    residuals: list[float] = field(default_factory=list)
    interval: tuple[float, float, float] | None = None  # final (a_L, a, b) of the filters (of −A for "LA")
    plan: str = ""  # the plan a learned choice ran (method="autospec" with a plan-choosing engine)

    @property
    def iterations(self) -> int:
        return self.outer_iters


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
    max_matvecs = integer("max_matvecs", max_matvecs, 1, none=True)
    probe_steps, seed = integer("probe_steps", probe_steps, 1), integer("seed", seed, None)
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


def _subspace_iteration(prob: _Problem, filt: Filter, reprobe: bool, max_degree: int, whole_space: bool):
    """Filtered subspace iteration (module docstring); escalating filters take :func:`filter_degree`
    after the first step; with ``whole_space`` a step that would cost n products or more is replaced
    by :func:`_whole_space`. Returns the best pairs seen and the info (``info.degree``: the largest
    degree used)."""
    op, k, tol, block = prob.op, prob.k, prob.tol, prob.block
    gen = torch.Generator().manual_seed(prob.seed)
    V = prob.gaussian(block, gen)
    info = EigenInfo(block=block)
    lock = _Locking(prob, info, V)
    V = _orthonormalise(V, lock.V, prob, gen)
    ritz, res = prob.probe.ritz, prob.probe.residuals / prob.scale
    a, b, lowest = filter_start(prob.probe, block)
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
        V = _orthonormalise(apply_filter(filt(ctx), op, V), lock.V, prob, gen)
        info.outer_iters += 1
        V, _, theta, _, ritz, res = lock.update(V, op.matmat(V))
        if lock.stop:
            break
        if reprobe:
            a, lowest = float(theta[-1]), float(ritz[0])
    info.interval = (lowest, a, b)
    return lock.best


class _Locking:
    """What every outer iteration does after its filter: Rayleigh–Ritz with exact products, true
    residuals, locking of the converged leading wanted pairs (kept with their products), the best
    pairs seen, and the stopping tests (tol, stagnation); :attr:`best` is ``(θ, V, residuals, info)``."""

    def __init__(self, prob: _Problem, info: EigenInfo, like: torch.Tensor):
        self.prob, self.info = prob, info
        self.V, self.AV = like[:, :0], like[:, :0]
        self.theta, self.res = like.new_zeros(0), like.new_zeros(0)
        self.worst, self.best_iter, self.stop = math.inf, 0, False
        self.best = (None, None, None, info)

    def update(self, V: torch.Tensor, AV: torch.Tensor):
        """``(V, AV, θ, r)`` of the unlocked Ritz pairs and ``(ritz, res)`` of all, ascending."""
        prob, info, k = self.prob, self.info, self.prob.k
        theta, V, AV = _rayleigh_ritz(V, AV)
        r = prob.residuals(V, AV, theta)
        nlock = int(torch.cumprod((r[: k - self.V.shape[1]] <= prob.tol).int(), 0).sum())
        self.V, self.AV = torch.cat([self.V, V[:, :nlock]], 1), torch.cat([self.AV, AV[:, :nlock]], 1)
        self.theta, self.res = torch.cat([self.theta, theta[:nlock]]), torch.cat([self.res, r[:nlock]])
        V, AV, theta, r = V[:, nlock:], AV[:, nlock:], theta[nlock:], r[nlock:]
        ritz, order = torch.sort(torch.cat([self.theta, theta]))
        res = torch.cat([self.res, r])[order]
        worst = float(res[:k].max())
        info.history.append((prob.matvecs, worst))
        if worst < STAGNATION_FACTOR * self.worst:
            self.best_iter = info.outer_iters
        if worst < self.worst:
            self.worst, self.best = worst, (ritz[:k], torch.cat([self.V, V], 1)[:, order[:k]], res[:k], info)
        if worst <= prob.tol:
            self.stop = True
        elif info.outer_iters - self.best_iter >= STAGNATION_WINDOW:
            info.stagnated, self.stop = True, True
            info.message = f"stagnated: no new best max residual in {STAGNATION_WINDOW} outer iterations"
        return V, AV, theta, r, ritz, res


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
