"""Generated SPD problems: symmetric, positive definite, right sizes; the registry builds lazily."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from autospec.errors import InputTypeError, InputValueError
from autospec.matrices.gallery import (
    FAMILIES,
    GALLERY,
    anisotropic2d,
    elasticity2d,
    make_problem,
    poisson2d,
    poisson3d,
)

SMALL = {"poisson2d_16": 256, "poisson3d_8": 512, "anisotropic2d_16": 256, "elasticity2d_12": 288}
LARGE = {"poisson2d_317": 317**2, "poisson3d_47": 47**3, "anisotropic2d_317": 317**2, "elasticity2d_224": 2 * 224**2}


def _check_spd(A: sp.csr_matrix, n: int) -> None:
    assert isinstance(A, sp.csr_matrix) and A.dtype == np.float64 and A.shape == (n, n)
    assert A.has_sorted_indices and np.all(A.data != 0)
    assert (A != A.T).nnz == 0  # exactly symmetric
    eigenvalues = np.linalg.eigvalsh(A.toarray())
    assert eigenvalues[0] > 1e-8 * eigenvalues[-1]


@pytest.mark.parametrize(("name", "n"), SMALL.items())
def test_small_registry_problems_are_spd(name: str, n: int) -> None:
    built_name, A = make_problem(name)
    assert built_name == name
    _check_spd(A, n)


@pytest.mark.parametrize(
    ("build", "n"),
    [
        (lambda: poisson2d(7), 49),
        (lambda: poisson3d(5), 125),
        (lambda: anisotropic2d(9, epsilon=1e-2, theta=math.pi / 4), 81),
        (lambda: anisotropic2d(9, epsilon=1e-4, theta=0.0), 81),
        (lambda: elasticity2d(5), 50),
        (lambda: elasticity2d(2), 8),
    ],
)
def test_generators_are_spd(build, n: int) -> None:
    _check_spd(build(), n)


def test_known_stencils() -> None:
    A = poisson2d(3).toarray()
    assert np.all(np.diag(A) == 4.0) and A[0, 1] == -1.0 and A[0, 3] == -1.0 and A[0, 4] == 0.0
    assert np.all(np.diag(poisson3d(3).toarray()) == 6.0)


def test_registry_is_lazy_and_covers_the_scale_problems() -> None:
    assert all(callable(build) for build in GALLERY.values())  # nothing built at import
    assert set(LARGE) <= set(GALLERY) and set(SMALL) <= set(GALLERY)
    for name, build in GALLERY.items():
        family, nx = name.rsplit("_", 1)
        assert family in FAMILIES and build.func is FAMILIES[family] and build.args == (int(nx),)


def test_generic_names_and_errors() -> None:
    name, A = make_problem("poisson2d_6")
    assert name == "poisson2d_6" and A.shape == (36, 36)
    for bad in ["poisson4d_10", "poisson2d", "poisson2d_x", "thermal1"]:
        with pytest.raises(InputValueError, match="unknown gallery problem"):
            make_problem(bad)
    with pytest.raises(InputValueError, match="at least 2"):
        make_problem("poisson2d_1")
    with pytest.raises(InputTypeError):
        make_problem(3)  # type: ignore[arg-type]
    with pytest.raises(InputTypeError, match="integer"):
        poisson2d(10.0)  # type: ignore[arg-type]
    with pytest.raises(InputValueError, match="epsilon"):
        anisotropic2d(8, epsilon=0.0)
    with pytest.raises(InputValueError, match="theta"):
        anisotropic2d(8, theta=float("nan"))


@pytest.mark.slow
@pytest.mark.parametrize(("name", "n"), LARGE.items())
def test_scale_problems_build(name: str, n: int) -> None:
    _, A = make_problem(name)
    assert isinstance(A, sp.csr_matrix) and A.dtype == np.float64 and A.shape == (n, n)
    assert 9e4 <= n <= 1.1e5
    assert abs(A - A.T).max() == 0.0
    assert A.diagonal().min() > 0
