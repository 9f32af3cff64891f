"""Exact references computed in float64: ``eigh`` for SPD matrix functions, SVD for the polar factor.

``f(A) = V f(Λ) Vᵀ`` with ``A = V Λ Vᵀ``; ``polar(G) = U Vᵀ`` with ``G = U Σ Vᵀ`` (thin SVD).
Results are float64 on the input's device.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from autospec.errors import NotPositiveDefiniteError


def spectral_function(A: torch.Tensor, f: Callable[[torch.Tensor], torch.Tensor], *, positive: bool = True) -> torch.Tensor:
    """``V f(Λ) Vᵀ`` of symmetric ``A (..., n, n)`` in float64; raises ``NotPositiveDefiniteError`` if
    an eigenvalue is ≤ 0 (``positive``) or < 0 (otherwise)."""
    lam, V = torch.linalg.eigh(A.to(torch.float64))
    low = lam.min()
    if (low <= 0) if positive else (low < 0):
        raise NotPositiveDefiniteError(f"matrix is not positive {'definite' if positive else 'semidefinite'}: "
                                       f"smallest eigenvalue {float(low):.3e}")
    return (V * f(lam).unsqueeze(-2)) @ V.mT


def inv_sqrt(A: torch.Tensor) -> torch.Tensor:
    """``A^{−1/2}`` of SPD A."""
    return spectral_function(A, torch.rsqrt)


def sqrt(A: torch.Tensor) -> torch.Tensor:
    """``A^{1/2}`` of symmetric positive semidefinite A."""
    return spectral_function(A, torch.sqrt, positive=False)


def inv_root(A: torch.Tensor, p: int) -> torch.Tensor:
    """``A^{−1/p}`` of SPD A."""
    return spectral_function(A, lambda lam: lam ** (-1.0 / p))


def polar(G: torch.Tensor) -> torch.Tensor:
    """Polar factor ``U Vᵀ`` of ``G (..., m, n)`` (orthonormal columns if m ≥ n, rows otherwise)."""
    U, _, Vh = torch.linalg.svd(G.to(torch.float64), full_matrices=False)
    return U @ Vh
