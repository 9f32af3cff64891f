"""The best degree-d polynomial preconditioner for an exact spectrum (the quality limit of any
probe-based engine), by discrete minimax linear programming.

On the scaled spectrum ``x_i = λ_i/λmax ∈ (0, 1]`` the polynomial ``q(x) = Σ_j c_j T_j(2x − 1)``
(Chebyshev basis on [0, 1], i.e. on [0, λmax] in A's units; ``M = q(A/λmax)/λmax``) solves::

    minimise t  s.t.  |1 − x_i q(x_i)| <= t   for the eigenvalues above the k smallest,
                      q(x_i) >= ε            for every eigenvalue (positivity: M is SPD)

so the k smallest distinct eigenvalues are left to CG, which removes isolated eigenvalues in about
one iteration each (Chebyshev cannot: it is pinned to an interval). For conditioning the LP
variables are the Chebyshev coefficients on [0, 1] of the residual polynomial ``R = 1 − x q``
(``R(0) = 1``; every constraint row is O(1), where rows ``x_i T_j`` would be tiny for small
``x_i``); ``q = (1 − R)/x`` follows exactly. HiGHS solves it on at most ``max_points`` constraint
points, exchanging in the worst violators until the solution holds on every eigenvalue. ``oracle_preconditioner`` tries every k of a list and keeps the one with
the fewest actual PCG iterations for the given right-hand side: all k are ranked cheaply in the
eigenbasis (PCG with ``M = p(A)`` is PCG on ``diag(λ)`` with the weights ``Qᵀb``, identical in exact
arithmetic), and the few best are run on A itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.sparse as sp
import torch

from autospec.core.operators import as_operator
from autospec.core.recurrences import ChebyshevBasis, chebyshev_vandermonde
from autospec.errors import InputValueError, NotPositiveDefiniteError
from autospec.linsys.cg import SolveInfo, cg_steps, iterations_to, pcg
from autospec.linsys.preconditioners import PolynomialPreconditioner

ORACLE_KS = (0, *(2**j for j in range(13)))  # 0, 1, 2, 4, ..., 4096 smallest eigenvalues left to CG
SHORTLIST = 2  # k values (best predicted) run for real
POSITIVITY = 1e-6  # ε: q(x) >= ε on every eigenvalue (scaled units, where q(x) ≈ 1/x)
MAX_POINTS = 2000  # constraint points of the first LP; the exchange adds violators
DUPLICATE_RTOL = 1e-10  # eigenvalues closer than this·λmax are one constraint
_EXCHANGE_ROUNDS = 30
_EXCHANGE_BATCH = 64
_EXCHANGE_TOL = 1e-8  # a point enters the LP when |R| exceeds the LP's t by this (HiGHS tolerance 1e-7)


@dataclass
class MinimaxPolynomial:
    """``p_A(λ) = q(λ/s)/s`` with ``q = Σ_j c_j T_j(2x − 1)``; ``value = max_{i>k} |1 − λ_i p_A(λ_i)|``."""

    coefficients: np.ndarray  # c_0..c_d
    scale: float  # s = λmax
    k: int  # distinct smallest eigenvalues left to CG (positivity only)
    value: float  # minimax value over all eigenvalues above the k smallest
    min_value: float  # min over all eigenvalues of q(λ/s) = s·p_A(λ) (> 0: M is SPD)

    @property
    def degree(self) -> int:
        return len(self.coefficients) - 1

    def basis(self, dtype: torch.dtype = torch.float64) -> ChebyshevBasis:
        """The polynomial ``q`` in scaled units (the form :class:`PolynomialPreconditioner` applies)."""
        return ChebyshevBasis(torch.as_tensor(self.coefficients, dtype=dtype), torch.tensor(0.0, dtype=dtype),
                              torch.tensor(1.0, dtype=dtype))

    def __call__(self, lam) -> np.ndarray:
        """``p_A(λ)`` at the points ``lam`` (A's units)."""
        lam = np.asarray(lam, dtype=np.float64)
        return unit_vandermonde(lam / self.scale, self.degree) @ self.coefficients / self.scale

    def preconditioner(self, A) -> PolynomialPreconditioner:
        """``M = q(A/s)/s`` applied matrix-free to the operator ``A`` (products counted by it)."""
        op = as_operator(A)
        return PolynomialPreconditioner(op, self.basis(op.dtype), scale=self.scale)


@dataclass
class OracleInfo:
    """What the oracle chose and why: PCG iterations predicted for every k, actual ones for the
    shortlist, and the chosen run (its solution and :class:`SolveInfo`)."""

    polynomial: MinimaxPolynomial
    predicted: dict[int, int]  # k -> PCG iterations in the eigenbasis (exact-arithmetic model)
    iterations: dict[int, int]  # k -> actual PCG iterations on A (shortlisted k only; maxiter if not converged)
    candidates: dict[int, MinimaxPolynomial]
    solution: torch.Tensor  # x of the chosen run
    solve_info: SolveInfo

    @property
    def k(self) -> int:
        return self.polynomial.k


def unit_vandermonde(x: np.ndarray, degree: int) -> np.ndarray:
    """``V[i, j] = T_j(2x_i − 1)``: :func:`autospec.core.recurrences.chebyshev_vandermonde` on [0, 1], in NumPy."""
    x = torch.from_numpy(np.asarray(x, dtype=np.float64).reshape(-1))
    unit = torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    return chebyshev_vandermonde(x, *unit, degree).numpy()


def spectrum(A, vectors: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """``(λ ascending, Q)`` of a symmetric matrix by dense ``eigh`` (``eigvalsh`` when ``vectors=False``).

    Raises ``NotPositiveDefiniteError`` when ``λmin <= 0``. Symmetry is checked, since ``eigh``
    would silently read one triangle only.
    """
    as_operator(A, symmetric=True)
    dense = A.toarray() if sp.issparse(A) else (A.numpy() if isinstance(A, torch.Tensor) else np.asarray(A))
    dense = np.asarray(dense, dtype=np.float64)
    lam, Q = np.linalg.eigh(dense) if vectors else (np.linalg.eigvalsh(dense), None)
    if lam[0] <= 0:
        raise NotPositiveDefiniteError(
            f"the matrix is not positive definite: its smallest eigenvalue is {lam[0]:.3e} <= 0 (largest {lam[-1]:.3e})"
        )
    return lam, Q


def _distinct(lam: np.ndarray) -> np.ndarray:
    """Sorted eigenvalues with near-duplicates (closer than ``DUPLICATE_RTOL·λmax``) merged."""
    lam = np.sort(np.asarray(lam, dtype=np.float64))
    keep = np.concatenate([[True], np.diff(lam) > DUPLICATE_RTOL * lam[-1]])
    return lam[keep]


def _initial_points(x_top: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of at most ``max_points`` top eigenvalues: both ends, uniform in index and in value."""
    m = x_top.size
    if m <= max_points:
        return np.arange(m)
    end = max(1, max_points // 8)
    spread = max(2, (max_points - 2 * end) // 2)
    by_index = np.linspace(0, m - 1, spread).round().astype(int)
    by_value = np.searchsorted(x_top, np.linspace(x_top[0], x_top[-1], spread)).clip(0, m - 1)
    return np.unique(np.r_[np.arange(end), np.arange(m - end, m), by_index, by_value])


def quotient_vandermonde(x: np.ndarray, degree: int) -> np.ndarray:
    """``G[i, j] = (T_j(−1) − T_j(2x_i − 1))/x_i``, so that ``(1 − R(x))/x = G a`` for ``R = Σ_j a_j T_j(2x − 1)``
    with ``R(0) = 1``; no division by x: with ``δ_j = (T_j(u) − T_j(−1))/(u + 1)``, ``δ_0 = 0``,
    ``δ_1 = 1``, ``δ_{j+1} = 2u δ_j + 2(−1)^j − δ_{j−1}`` and ``G = −2δ``."""
    u = 2 * np.asarray(x, dtype=np.float64) - 1
    delta = np.zeros((u.size, degree + 1))
    if degree >= 1:
        delta[:, 1] = 1
    for j in range(1, degree):
        delta[:, j + 1] = 2 * u * delta[:, j] + 2 * (-1.0) ** j - delta[:, j - 1]
    return -2 * delta


def solve_minimax_lp(W_top: np.ndarray, G_pos: np.ndarray, positivity: float,
                     W_floor: np.ndarray | None = None, floor: float = 0.0) -> np.ndarray:
    """HiGHS on ``min t: |R(x)| <= t (top points), (1 − R(x))/x >= ε (positivity points), R(0) = 1``
    and, given ``W_floor``, ``R(x) >= −floor`` on its points; for ``R = Σ_j a_j T_j(2x − 1)`` given by
    the rows of :func:`unit_vandermonde` (``W``) and :func:`quotient_vandermonde` (``G``); returns ``a``."""
    m = W_top.shape[1]
    minus_t = -np.ones((W_top.shape[0], 1))
    W_floor = np.zeros((0, m)) if W_floor is None else W_floor
    A_ub = np.block([[W_top, minus_t], [-W_top, minus_t], [-G_pos, np.zeros((G_pos.shape[0], 1))],
                     [-W_floor, np.zeros((W_floor.shape[0], 1))]])
    b_ub = np.r_[np.zeros(2 * W_top.shape[0]), -positivity * np.ones(G_pos.shape[0]), floor * np.ones(W_floor.shape[0])]
    A_eq = np.r_[(-1.0) ** np.arange(m), 0.0][None, :]  # R(0) = Σ a_j T_j(−1) = 1
    res = scipy.optimize.linprog(np.r_[np.zeros(m), 1.0], A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=[1.0],
                                 bounds=[(None, None)] * m + [(0, None)], method="highs")
    if res.status != 0:
        raise InputValueError(f"minimax LP failed: {res.message}")
    return res.x[:m]


def quotient_coefficients(a: np.ndarray) -> np.ndarray:
    """Chebyshev coefficients of ``q = (1 − R)/x`` (degree d) from those of ``R`` (degree d+1), by
    interpolation at the d+1 Chebyshev nodes of [0, 1] (exact for a polynomial)."""
    degree = a.size - 2
    nodes = (1 + np.cos(np.pi * (np.arange(degree + 1) + 0.5) / (degree + 1))) / 2
    return np.linalg.solve(unit_vandermonde(nodes, degree), quotient_vandermonde(nodes, degree + 1) @ a)


def minimax_polynomial(eigenvalues, degree: int, k: int = 0, positivity: float = POSITIVITY,
                       max_points: int = MAX_POINTS) -> MinimaxPolynomial:
    """Best degree-d ``p`` for a discrete spectrum: ``min max_{i>k} |1 − λ_i p(λ_i)|`` with ``p(λ_i) > 0``
    on all eigenvalues; the k smallest distinct eigenvalues carry the positivity constraint only.

    ``max_points`` bounds the constraint points of the first LP (violators are added after it).
    """
    lam = _distinct(eigenvalues)
    if lam[0] <= 0:
        raise NotPositiveDefiniteError(f"the spectrum has a non-positive eigenvalue {lam[0]:.3e}")
    if not 0 <= k < lam.size:
        raise InputValueError(f"k must be in [0, {lam.size}) (distinct eigenvalues), got {k}")
    if degree < 0:
        raise InputValueError(f"degree must be >= 0, got {degree}")
    scale = float(lam[-1])
    x = lam / scale
    W, G = unit_vandermonde(x, degree + 1), quotient_vandermonde(x, degree + 1)
    top = np.arange(k, x.size)
    active_top = top[_initial_points(x[top], max_points)]
    active_pos = np.unique(np.r_[np.arange(k), active_top])
    for _ in range(_EXCHANGE_ROUNDS):
        a = solve_minimax_lp(W[active_top], G[active_pos], positivity)
        R, q = np.abs(W @ a), G @ a
        t = R[active_top].max()
        over = top[R[top] > t + _EXCHANGE_TOL]
        negative = np.flatnonzero(q < positivity / 2)
        if over.size == 0 and negative.size == 0:
            break
        worst = over[np.argsort(R[over])[::-1][:_EXCHANGE_BATCH]]
        active_top = np.union1d(active_top, worst)
        active_pos = np.union1d(active_pos, np.r_[worst, negative[np.argsort(q[negative])[:_EXCHANGE_BATCH]]])
    if q.min() <= 0:
        raise InputValueError(f"minimax polynomial (k={k}) is not positive on the spectrum after "
                              f"{_EXCHANGE_ROUNDS} exchange rounds (min q = {q.min():.3e})")
    return MinimaxPolynomial(coefficients=quotient_coefficients(a), scale=scale, k=int(k), value=float(R[top].max()),
                             min_value=float(q.min()))


def pcg_iterations_on_spectrum(lam: np.ndarray, weights: np.ndarray, P: np.ndarray, rtol: float,
                               maxiter: int) -> np.ndarray:
    """PCG iterations for each column ``p`` of ``P`` (values on ``λ``), all in one batched run.

    With ``A = Q diag(λ) Qᵀ``, ``b = Q w`` and ``M = p(A)``, PCG is PCG on ``diag(λ)`` with
    right-hand side ``w`` and ``M = diag(p(λ))`` (identical in exact arithmetic; no product with A).
    A column that does not converge within ``maxiter`` counts ``maxiter + 1``.
    """
    P = torch.from_numpy(np.asarray(P, dtype=np.float64).reshape(lam.size, -1))
    lam_t = torch.from_numpy(np.asarray(lam, dtype=np.float64)).unsqueeze(-1)
    B = torch.from_numpy(np.asarray(weights, dtype=np.float64)).unsqueeze(-1).expand(-1, P.shape[1])
    target = rtol * B.norm(dim=0)
    steps = cg_steps(lambda V: lam_t * V, B, precond=lambda R: P * R, freeze_below=rtol)
    iterations = iterations_to(steps, lambda step: step.r.norm(dim=0) <= target, (P.shape[1],), maxiter)
    return iterations.numpy()


def oracle_preconditioner(
    A,
    b=None,
    *,
    degree: int = 10,
    ks=ORACLE_KS,
    rtol: float = 1e-8,
    maxiter: int = 20000,
    seed: int = 0,
    shortlist: int = SHORTLIST,
    positivity: float = POSITIVITY,
    max_points: int = MAX_POINTS,
    eig: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[PolynomialPreconditioner, OracleInfo]:
    """The minimax preconditioner for ``A`` (explicit, symmetric, n small enough for dense ``eigh``),
    best over leaving ``k ∈ ks`` smallest eigenvalues to CG, judged by PCG iterations on ``b``
    (default: a seeded Gaussian): all k ranked in the eigenbasis, the ``shortlist`` best run for
    real on A (finite precision can reorder them). ``eig = (λ, Q)`` reuses :func:`spectrum`.
    """
    lam, Q = spectrum(A) if eig is None else eig
    if Q is None:
        raise InputValueError("oracle_preconditioner needs eigenvectors: pass eig=spectrum(A) (vectors=True)")
    if shortlist < 1:
        raise InputValueError(f"shortlist must be >= 1, got {shortlist}")
    b = np.random.default_rng(seed).standard_normal(lam.size) if b is None else np.asarray(b, dtype=np.float64)
    n_distinct = _distinct(lam).size
    tried = sorted({int(k) for k in ks if 0 <= int(k) < n_distinct})
    if not tried:
        raise InputValueError(f"no k in {list(ks)} is below the number of distinct eigenvalues ({n_distinct})")
    candidates = {k: minimax_polynomial(lam, degree, k, positivity, max_points) for k in tried}
    P = np.stack([p(lam) for p in candidates.values()], -1)
    predicted = dict(zip(tried, pcg_iterations_on_spectrum(lam, Q.T @ b, P, rtol, maxiter).tolist()))
    op = as_operator(A)
    runs = {}
    for k in sorted(tried, key=lambda k: (predicted[k], k))[:shortlist]:
        M = candidates[k].preconditioner(op)
        x, info = pcg(op, b, rtol=rtol, maxiter=maxiter, M=M)
        runs[k] = (M, x, info)
    best = min(runs, key=lambda k: (runs[k][2].outer_iters if runs[k][2].converged else math.inf, predicted[k], k))
    M, x, info = runs[best]
    return M, OracleInfo(candidates[best], predicted, {k: r[2].outer_iters for k, r in runs.items()}, candidates,
                         x, info)
