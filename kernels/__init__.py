"""Batched GEMM kernels of the matrix-function baselines (``autospec.kernels``).

Every iterative kernel takes ``(..., n, n)`` (or ``(..., m, n)`` for polar) tensors of any float
dtype on any device, and returns ``(result, KernelInfo)``; :mod:`~autospec.kernels.reference`
holds the exact float64 ``eigh``/SVD references.
"""

from autospec.kernels.common import KernelInfo, SqrtPair
from autospec.kernels.inverse_newton import inverse_newton
from autospec.kernels.newton_schulz import (
    coupled_newton_schulz,
    newton_schulz_inverse,
    newton_schulz_polar,
)
from autospec.kernels.polar import muon, polar_express, polar_express_coefficients
from autospec.kernels.prism import prism_polar, prism_sqrt

__all__ = [
    "KernelInfo",
    "SqrtPair",
    "coupled_newton_schulz",
    "inverse_newton",
    "muon",
    "newton_schulz_inverse",
    "newton_schulz_polar",
    "polar_express",
    "polar_express_coefficients",
    "prism_polar",
    "prism_sqrt",
]
