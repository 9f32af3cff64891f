"""Classical Newton–Schulz iterations (Higham, *Functions of Matrices*, 2008, ch. 5–8).

* coupled Newton–Schulz for SPD A: ``Y_0 = A/‖A‖_F, Z_0 = I``, ``T = (3I − Z Y)/2``, ``Y ← Y T``,
  ``Z ← T Z``; ``Y → (A/c)^{1/2}``, ``Z → (A/c)^{−1/2}`` (residual form ``T = I + R/2``, ``R = I − Z Y``);
* cubic polar iteration ``X ← X (3I − XᵀX)/2`` from ``X_0 = G/‖G‖_F`` (converges for σ < √3);
* Newton–Schulz (Hotelling) inverse ``X ← X (2I − A X)`` from ``X_0 = Aᵀ/(‖A‖_1‖A‖_∞)``
  (residual form ``X ← X (I + R)``, ``R = I − A X``, so ``R_{k+1} = R_k²``).
"""

from __future__ import annotations

import torch

from autospec.kernels.common import (
    KernelInfo,
    Powers,
    SqrtPair,
    accum_dtype,
    coupled_iteration,
    eye_like,
    fma,
    iterate,
    mm,
    polar_iteration,
    rescale,
)

CUBIC = (1.0, 0.5)  # g(R) = I + R/2 = (3I − (I − R))/2


def _cubic(k: int, powers: Powers) -> tuple[float, float]:
    return CUBIC


def coupled_newton_schulz(A: torch.Tensor, *, iters: int | None = None, tol: float = 1e-6,
                          max_iters: int | None = None) -> tuple[SqrtPair, KernelInfo]:
    """``(A^{1/2}, A^{−1/2})`` of SPD ``A (..., n, n)`` by coupled Newton–Schulz.

    Residual ``‖I − Z Y‖_F/√n``; matmuls ``3·iters − 1`` (first step skips the products with I).
    """
    info = KernelInfo()
    pair = coupled_iteration(A, _cubic, info, iters=iters, tol=tol, max_iters=max_iters)
    return pair, info


def newton_schulz_polar(G: torch.Tensor, *, iters: int | None = None, tol: float = 1e-6,
                        max_iters: int | None = None) -> tuple[torch.Tensor, KernelInfo]:
    """Polar factor ``U Vᵀ`` of ``G (..., m, n)`` by the cubic iteration ``X (3I − XᵀX)/2``.

    Residual ``‖I − X Xᵀ‖_F/√min(m, n)``; matmuls ``2·iters + 1``.
    """
    info = KernelInfo()
    X = polar_iteration(G, _cubic, info, iters=iters, tol=tol, max_iters=max_iters)
    return X, info


def newton_schulz_inverse(A: torch.Tensor, *, iters: int | None = None, tol: float = 1e-6,
                          max_iters: int | None = None) -> tuple[torch.Tensor, KernelInfo]:
    """``A^{−1}`` of a nonsingular ``A (..., n, n)`` by the Newton–Schulz (Hotelling) iteration
    ``X ← X + X R``, ``R = I − A X``, ``X_0 = Aᵀ/(‖A‖_1‖A‖_∞)``.

    Residual ``‖I − A X‖_F/√n``; matmuls ``2·iters + 1``.
    """
    info = KernelInfo()
    wide = A.to(accum_dtype(A.dtype))
    scale = torch.linalg.matrix_norm(wide, ord=1) * torch.linalg.matrix_norm(wide, ord=float("inf"))
    X0 = rescale(A.mT, 1 / scale.clamp_min(torch.finfo(scale.dtype).tiny))
    eye = eye_like(A)

    def residual(X):
        return eye - mm(info, A, X)

    def step(X, R, k):
        return fma(info, X, X, R)

    X = iterate(X0, residual, step, info, iters=iters, tol=tol, max_iters=max_iters)
    return X, info
