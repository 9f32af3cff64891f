"""Shared machinery of the GEMM kernels: matmul counting, fused batched GEMMs, the iteration driver
with tolerance / divergence / stagnation stopping, and the two residual-form loops every
Newton–Schulz-type kernel is an instance of.

Residual form: with a residual ``R_k`` that → 0 at convergence and a per-step polynomial
``g_k(r) = g0 + g1 r + g2 r²``, the polar loop is ``X ← g_k(R) X`` with ``R = I − X Xᵀ`` (X wide) and
the coupled loop is ``Y ← Y g_k(R)``, ``Z ← g_k(R) Z`` with ``R = I − Z Y``. Both satisfy the scalar
residual map ``r ↦ 1 − (1 − r) g_k(r)²`` on every eigenvalue. Each step is evaluated as
``g0·X + B X`` with ``B = g1 R + g2 R²`` (two fused GEMMs): close to convergence ``B`` is small,
so the update is a small correction of X rather than a cancellation of large terms.

Conventions: GEMMs run in the input dtype (float64, float32, bfloat16, float16); norms, scale
factors and residuals are accumulated in float32 (float64 for float64 input). ``matmuls`` counts
full-size GEMMs (every dimension ≥ the smaller matrix side); ``sketch_matmuls`` counts the thin
products with an ``n×p`` sketch. The residual of the returned iterate is always computed (and
counted), so a fixed ``iters`` run of a method costing ``c`` GEMMs per step spends ``c·iters`` plus
that method's residual cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

Scalar = float | torch.Tensor  # a python float or a per-matrix tensor of the batch shape
Coefficients = Callable[[int, "Powers"], Sequence[Scalar]]  # (k, powers of R_k) -> (g0, g1[, g2])

DIVERGENCE_GROWTH = 1e3  # residual > 1e3 × its first value: diverged
STALL_PATIENCE = 2  # steps in a row that fail to halve the best residual, once it is below √u: stalled
DEFAULT_MAX_ITERS = 100


@dataclass
class KernelInfo:
    """What an iterative kernel did.

    ``residual_history[k]`` is the worst (over the batch) residual of iterate k, the iteration's own
    residual (``‖R_k‖_F/√n``); ``converged`` means the last one is ≤ tol; ``diverged`` means a residual
    became non-finite or grew more than 1e3× — the kernel then returns the last iterate before
    that. ``alphas`` holds PRISM's fitted α per step (one tensor of the batch shape per step).
    """

    iters: int = 0
    matmuls: int = 0
    sketch_matmuls: int = 0
    residual_history: list[float] = field(default_factory=list)
    converged: bool = False
    diverged: bool = False
    stalled: bool = False
    alphas: list[torch.Tensor] = field(default_factory=list)

    @property
    def residual(self) -> float:
        return self.residual_history[-1] if self.residual_history else math.nan


class SqrtPair(NamedTuple):
    """Both outputs of a coupled square-root iteration."""

    sqrt: torch.Tensor
    inv_sqrt: torch.Tensor


def accum_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype for norms and scalars: float64 for float64 input, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _flat(T: torch.Tensor) -> torch.Tensor:
    return T.reshape(-1, *T.shape[-2:])


def _per_matrix(s: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return s.to(dtype)[..., None, None]


def rescale(X: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``X · s`` for a per-matrix scalar ``s``, computed in the accumulation dtype."""
    return (X.to(s.dtype) * s[..., None, None]).to(X.dtype)


def fma(info: KernelInfo, C: torch.Tensor, A: torch.Tensor, B: torch.Tensor, *, beta: Scalar = 1.0,
        alpha: Scalar = 1.0) -> torch.Tensor:
    """``beta·C + alpha·A B`` as one batched ``baddbmm`` over the leading dims (counted).

    Per-matrix (tensor) ``beta``/``alpha`` are folded into ``C``/``B`` elementwise first.
    """
    if isinstance(beta, torch.Tensor):
        C, beta = C * _per_matrix(beta, C.dtype), 1.0
    if isinstance(alpha, torch.Tensor):
        B, alpha = B * _per_matrix(alpha, B.dtype), 1.0
    lead = torch.broadcast_shapes(A.shape[:-2], B.shape[:-2], C.shape[:-2])
    rows, cols = A.shape[-2], B.shape[-1]
    A, B = A.expand(*lead, *A.shape[-2:]), B.expand(*lead, *B.shape[-2:])
    C = C.expand(*lead, rows, cols)
    out = torch.baddbmm(_flat(C), _flat(A), _flat(B), beta=float(beta), alpha=float(alpha))
    _count(info, thin=False)
    return out.reshape(*lead, rows, cols)


def mm(info: KernelInfo, A: torch.Tensor, B: torch.Tensor, *, thin: bool = False) -> torch.Tensor:
    """``A @ B`` (batched, counted)."""
    _count(info, thin)
    return A @ B


def _count(info: KernelInfo, thin: bool) -> None:
    if thin:
        info.sketch_matmuls += 1
    else:
        info.matmuls += 1


def eye_like(A: torch.Tensor) -> torch.Tensor:
    """Identity of A's trailing size, A's dtype/device (broadcasts over the batch)."""
    return torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)


def frobenius(A: torch.Tensor) -> torch.Tensor:
    """``‖A‖_F`` per matrix, accumulated in float32/float64."""
    return torch.linalg.matrix_norm(A.to(accum_dtype(A.dtype)))


def safe_frobenius(A: torch.Tensor) -> torch.Tensor:
    """``‖A‖_F`` clamped to the smallest normal number (a divisor that is never 0)."""
    norm = frobenius(A)
    return norm.clamp_min(torch.finfo(norm.dtype).tiny)


def residual_norm(R: torch.Tensor) -> torch.Tensor:
    """``‖R‖_F/√n`` per matrix (n = R's size)."""
    return frobenius(R) / math.sqrt(R.shape[-1])


class Powers:
    """Powers ``R^j`` of one residual, computed on demand and cached (each new power is one counted
    GEMM), so a coefficient fit and the update share them."""

    def __init__(self, R: torch.Tensor, info: KernelInfo):
        self.R, self.info = R, info
        self._cache = {1: R}

    def __getitem__(self, j: int) -> torch.Tensor:
        """``R^j`` for j ≥ 1."""
        if j not in self._cache:
            self._cache[j] = mm(self.info, self.R, self[j - 1])
        return self._cache[j]

    def poly(self, g: Sequence[Scalar]) -> torch.Tensor:
        """``B = g1 R + g2 R² (+ …)``: one fused GEMM ``baddbmm(g1 R, R, R, alpha=g2)`` for degree 2
        unless ``R²`` is cached already."""
        B = _scaled(self.R, g[1])
        if len(g) == 3 and 2 not in self._cache:
            return fma(self.info, B, self.R, self.R, alpha=g[2])
        for j in range(2, len(g)):
            B = B + _scaled(self[j], g[j])
        return B


def iterate(state, residual: Callable, step: Callable, info: KernelInfo, *, iters: int | None, tol: float,
            max_iters: int | None):
    """Drive ``state ← step(state, R_k, k)`` with ``R_k = residual(state)``.

    Stops after ``iters`` steps when given; otherwise when the worst residual ``‖R_k‖_F/√n`` is
    ≤ ``tol``, when it has stalled at the precision floor, or after ``max_iters`` (default 100)
    steps. Stalled: below ``√u`` (u the unit roundoff of R's dtype) a quadratically convergent step
    should bring the residual to O(u), so two steps in a row that fail to halve the best residual
    mean the floor is reached. Divergence (non-finite residual, or growth above 1e3× the first
    residual) stops the loop and restores the previous iterate.
    """
    limit = iters if iters is not None else (DEFAULT_MAX_ITERS if max_iters is None else max_iters)
    previous, first, best, slow = None, None, math.inf, 0
    for k in range(limit + 1):
        R = residual(state)
        r = float(residual_norm(R).max())
        info.residual_history.append(r)
        if first is None:
            first = r
        if not math.isfinite(r) or (first > tol and r > DIVERGENCE_GROWTH * first):
            info.diverged = True
            if previous is not None:
                state = previous
                info.residual_history.pop()
                info.iters -= 1
            break
        if iters is None:
            if r <= tol:
                break
            local = min(r, best) < math.sqrt(torch.finfo(R.dtype).eps / 2)
            slow = slow + 1 if local and r > 0.5 * best else 0
            if slow >= STALL_PATIENCE:
                info.stalled = True
                break
        best = min(best, r)
        if k == limit:
            break
        previous = state
        state = step(state, R, k)
        info.iters += 1
    info.converged = not info.diverged and info.residual_history[-1] <= tol
    return state


def orient_wide(G: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Transpose tall matrices so the Gram ``X Xᵀ`` is the small one."""
    tall = G.shape[-2] > G.shape[-1]
    return (G.mT if tall else G), tall


def polar_iteration(G: torch.Tensor, coefficients: Coefficients, info: KernelInfo, *, iters: int | None,
                    tol: float, max_iters: int | None, scale: float = 1.0) -> torch.Tensor:
    """Residual-form polar loop ``X ← g_k(R) X``, ``R = I − X Xᵀ``, from ``X_0 = G/(scale·‖G‖_F)``.

    Tall inputs are transposed (the Gram is ``min(m, n)``-square) and transposed back. Cost per
    step: 1 (Gram) + 1 (R², if g has degree 2) + 1 (``B X``); the final residual costs one Gram.
    """
    X, tall = orient_wide(G)
    X = rescale(X, 1 / (safe_frobenius(X) * scale))
    eye = eye_like(X.mT)

    def residual(X):
        return eye - mm(info, X, X.mT)

    def step(X, R, k):
        powers = Powers(R, info)
        g = coefficients(k, powers)
        return fma(info, X, powers.poly(g), X, beta=g[0])

    X = iterate(X, residual, step, info, iters=iters, tol=tol, max_iters=max_iters)
    return X.mT if tall else X


def coupled_iteration(A: torch.Tensor, coefficients: Coefficients, info: KernelInfo, *, iters: int | None,
                      tol: float, max_iters: int | None, scale: Scalar = 1.0) -> SqrtPair:
    """Residual-form coupled loop for SPD A: ``Y_0 = A/c, Z_0 = I`` (``c = scale·‖A‖_F``),
    ``R = I − Z Y``, ``Y ← Y g_k(R)``, ``Z ← g_k(R) Z``; returns ``(√c·Y, Z/√c) → (A^{1/2}, A^{−1/2})``.

    Cost per step: 1 (``Z Y``) + 1 (R², if degree 2) + 2, minus the two products with ``Z_0 = I``
    (``R_0 = I − Y_0``, ``Z_1 = g_0(R_0)``); the final residual costs one GEMM.
    """
    c = safe_frobenius(A) * scale
    eye = eye_like(A)
    Y = rescale(A, 1 / c)

    def residual(state):
        Y, Z = state
        return eye - (Y if Z is None else mm(info, Z, Y))

    def step(state, R, k):
        Y, Z = state
        powers = Powers(R, info)
        g = coefficients(k, powers)
        B = powers.poly(g)
        Z = B + _scaled(eye, g[0]) if Z is None else fma(info, Z, B, Z, beta=g[0])
        return fma(info, Y, Y, B, beta=g[0]), Z

    Y, Z = iterate((Y, None), residual, step, info, iters=iters, tol=tol, max_iters=max_iters)
    Z = eye.expand_as(A) if Z is None else Z
    return SqrtPair(rescale(Y, c.sqrt()), rescale(Z, c.rsqrt()))


def _scaled(A: torch.Tensor, s: Scalar) -> torch.Tensor:
    return A * _per_matrix(s, A.dtype) if isinstance(s, torch.Tensor) else s * A
