"""Coupled inverse Newton for ``A^{−1/p}`` of SPD A (Shampoo's default; facebookresearch/optimizers
``matrix_functions.py``, baselines.md B.5).

``z = (p+1)/(2‖A‖_F)``, ``X_0 = z^{1/p} I``, ``M_0 = z A``; each step ``T = ((p+1)I − M)/p``,
``X ← X T``, ``M ← T^p M``, so ``M_k = X_k^p A → I`` and ``X_k → A^{−1/p}``. In residual form
``T = I + R/p`` with ``R = I − M``, which costs nothing to form: the residual ``‖I − M‖_F/√n`` is
free. ``‖A‖₂ ≤ ‖A‖_F < (p+1)/z`` guarantees convergence.
"""

from __future__ import annotations

import torch

from autospec.errors import InputValueError
from autospec.kernels.common import KernelInfo, eye_like, fma, iterate, mm, rescale, safe_frobenius


def power_cost(p: int) -> int:
    """GEMMs of ``T^p`` by repeated squaring: ``⌊log₂ p⌋ + popcount(p) − 1``."""
    return p.bit_length() + p.bit_count() - 2


def _power(info: KernelInfo, T: torch.Tensor, p: int) -> torch.Tensor:
    """``T^p`` by repeated squaring (``power_cost(p)`` counted GEMMs)."""
    result, base = None, T
    while p:
        if p & 1:
            result = base if result is None else mm(info, result, base)
        p >>= 1
        if p:
            base = mm(info, base, base)
    return result


def inverse_newton(A: torch.Tensor, p: int = 2, *, iters: int | None = None, tol: float = 1e-6,
                   max_iters: int | None = None) -> tuple[torch.Tensor, KernelInfo]:
    """``A^{−1/p}`` of SPD ``A (..., n, n)`` by coupled inverse Newton.

    Matmuls ``(power_cost(p) + 2)·iters − 1`` (the first ``X T`` is a scaling of I); for p = 2,
    ``3·iters − 1``.
    """
    if int(p) != p or p < 1:
        raise InputValueError(f"inverse Newton needs an integer root p >= 1, got p={p}")
    p = int(p)
    info = KernelInfo()
    z = (p + 1) / (2 * safe_frobenius(A))
    eye = eye_like(A)
    M = rescale(A, z)

    def residual(state):
        return eye - state[1]

    def step(state, R, k):
        X, M = state
        T = eye + R / p
        X = T if X is None else fma(info, X, X, R, alpha=1 / p)  # X T = X + X R/p
        return X, mm(info, _power(info, T, p), M)

    X, M = iterate((None, M), residual, step, info, iters=iters, tol=tol, max_iters=max_iters)
    X = eye.expand_as(A) if X is None else X
    return rescale(X, z ** (1 / p)), info
