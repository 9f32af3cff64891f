"""Generated SPD problems at scale (2-D/3-D Poisson, anisotropic diffusion, linear elasticity).

Built with pyamg's gallery (the ``gallery`` extra; imported only when a problem is built) on
``nx``-point-per-side grids with Dirichlet boundaries, so every matrix is symmetric positive
definite; all are returned as float64 SciPy CSR. ``GALLERY`` names curated sizes (n ≈ 1e5 and 1e6
for transfer at scale, tiny ones for tests); ``make_problem`` also accepts any ``<family>_<nx>``.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable
from functools import partial
from types import ModuleType

import numpy as np
import scipy.sparse as sp
import torch

from autospec.core.spectra import sample_spectrum
from autospec.errors import AutospecError, InputTypeError, InputValueError


class MissingDependencyError(AutospecError, ImportError):
    """An optional dependency needed for the requested feature is not installed."""


def poisson2d(nx: int) -> sp.csr_matrix:
    """5-point finite-difference Laplacian on an ``nx × nx`` grid (n = nx²)."""
    return _finish(_pyamg_gallery().poisson((_grid_size(nx),) * 2, format="csr"))


def poisson3d(nx: int) -> sp.csr_matrix:
    """7-point finite-difference Laplacian on an ``nx × nx × nx`` grid (n = nx³)."""
    return _finish(_pyamg_gallery().poisson((_grid_size(nx),) * 3, format="csr"))


def anisotropic2d(nx: int, epsilon: float = 1e-3, theta: float = math.pi / 6) -> sp.csr_matrix:
    """Rotated anisotropic diffusion (Q1 finite elements) on an ``nx × nx`` grid (n = nx²).

    Diffusion is 1 along the direction ``theta`` (radians from the x-axis) and ``epsilon`` across
    it; a ``theta`` off the grid axes makes the anisotropy hard for simple preconditioners.
    """
    if not (isinstance(epsilon, numbers.Real) and math.isfinite(epsilon) and epsilon > 0):
        raise InputValueError(f"anisotropic2d: epsilon must be a finite number > 0, got {epsilon!r}")
    if not (isinstance(theta, numbers.Real) and math.isfinite(theta)):
        raise InputValueError(f"anisotropic2d: theta must be a finite angle in radians, got {theta!r}")
    gallery = _pyamg_gallery()
    stencil = gallery.diffusion_stencil_2d(epsilon=float(epsilon), theta=float(theta), type="FE")
    return _finish(gallery.stencil_grid(stencil, (_grid_size(nx),) * 2, format="csr"))


def elasticity2d(nx: int) -> sp.csr_matrix:
    """2-D linear elasticity (Q1 elements, E = 1e5, ν = 0.3, clamped boundary), ``nx × nx`` free nodes (n = 2·nx²)."""
    matrix, _ = _pyamg_gallery().linear_elasticity((_grid_size(nx),) * 2, format="csr")
    return _finish(matrix)


FAMILIES: dict[str, Callable[[int], sp.csr_matrix]] = {
    "poisson2d": poisson2d,
    "poisson3d": poisson3d,
    "anisotropic2d": anisotropic2d,
    "elasticity2d": elasticity2d,
}

GALLERY: dict[str, Callable[[], sp.csr_matrix]] = {
    # n ≈ 1e5: transfer at scale and wall time
    "poisson2d_317": partial(poisson2d, 317),  # n = 100,489
    "poisson3d_47": partial(poisson3d, 47),  # n = 103,823
    "anisotropic2d_317": partial(anisotropic2d, 317),  # n = 100,489
    "elasticity2d_224": partial(elasticity2d, 224),  # n = 100,352
    # n ≈ 1e6
    "poisson2d_1000": partial(poisson2d, 1000),  # n = 1,000,000
    "poisson3d_100": partial(poisson3d, 100),  # n = 1,000,000
    # tiny, for tests and smoke runs
    "poisson2d_16": partial(poisson2d, 16),  # n = 256
    "poisson3d_8": partial(poisson3d, 8),  # n = 512
    "anisotropic2d_16": partial(anisotropic2d, 16),  # n = 256
    "elasticity2d_12": partial(elasticity2d, 12),  # n = 288
}

_GENERIC_NAME = re.compile(r"([a-z0-9]+)_(\d+)")


def make_problem(name: str) -> tuple[str, sp.csr_matrix]:
    """Build the problem ``name``: a key of ``GALLERY`` or ``<family>_<nx>`` (e.g. ``poisson2d_500``)."""
    if not isinstance(name, str):
        raise InputTypeError(f"gallery problem name must be a string, got {type(name).__name__}")
    if name in GALLERY:
        return name, GALLERY[name]()
    match = _GENERIC_NAME.fullmatch(name)
    if match is None or match.group(1) not in FAMILIES:
        raise InputValueError(
            f"unknown gallery problem {name!r}: use one of {', '.join(GALLERY)} or '<family>_<nx>' "
            f"with family in {', '.join(FAMILIES)}"
        )
    return name, FAMILIES[match.group(1)](int(match.group(2)))


def _grid_size(nx: int) -> int:
    if isinstance(nx, bool) or not isinstance(nx, numbers.Integral):
        raise InputTypeError(f"grid size nx must be an integer, got {type(nx).__name__}")
    if nx < 2:
        raise InputValueError(f"grid size nx must be at least 2, got {nx}")
    return int(nx)


def _finish(matrix: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """float64 CSR with sorted indices and without stored zeros (pyamg's BSR output keeps some)."""
    csr = sp.csr_matrix(matrix, dtype=np.float64)
    csr.eliminate_zeros()
    csr.sort_indices()
    return csr


def _pyamg_gallery() -> ModuleType:
    try:
        from pyamg import gallery
    except ImportError as exc:
        raise MissingDependencyError(
            "autospec.matrices.gallery needs pyamg to build problems: pip install 'autospec[gallery]' "
            "(or pip install pyamg)"
        ) from exc
    return gallery


def synthetic_matrix(family: str, n: int, kappa: float, seed: int) -> np.ndarray:
    """Dense SPD ``Q diag(λ) Qᵀ``: λ from :func:`autospec.core.spectra.sample_spectrum` times a log-uniform
    scale in [1e-3, 1e3] (both on ``torch.Generator(seed)``), Q the QR factor of a Gaussian matrix
    drawn from ``numpy.random.default_rng(seed)``."""
    gen = torch.Generator().manual_seed(int(seed))
    lam = sample_spectrum(gen, family, n, kappa).numpy() * 10 ** (6 * float(torch.rand(1, generator=gen)) - 3)
    Q, R = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    Q *= np.sign(np.diag(R))
    A = (Q * lam) @ Q.T
    return (A + A.T) / 2
