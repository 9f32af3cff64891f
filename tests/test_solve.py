"""The ``autospec.solve`` front door: methods, scaling, inputs, bad input."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from autospec import errors, solve

from conftest import poisson2d


def _badly_scaled_poisson(m=16, seed=0):
    A = poisson2d(m)
    d = sp.diags(10.0 ** np.random.default_rng(seed).uniform(-1.5, 1.5, A.shape[0]))
    return (d @ A @ d).tocsr()


@pytest.mark.parametrize("method", ["cg", "chebyshev"])
@pytest.mark.parametrize("scaling", ["none", "jacobi"])
def test_solution_is_correct(method, scaling):
    A = _badly_scaled_poisson()
    x_true = np.random.default_rng(3).standard_normal(A.shape[0])
    b = A @ x_true
    x, info = solve(A, b, method=method, scaling=scaling, rtol=1e-10, maxiter=50000)
    assert info.converged
    true = np.linalg.norm(b - A @ x) / np.linalg.norm(b)
    assert info.rel_residual == pytest.approx(true, rel=1e-10, abs=1e-16)
    assert true <= 1e-10 * 1.01  # converged means converged on the original system, scaled or not
    assert info.method == method and info.degree == (10 if method == "chebyshev" else 0)


def test_jacobi_scaling_helps_badly_scaled_systems():
    A = _badly_scaled_poisson()
    b = np.ones(A.shape[0])
    _, plain = solve(A, b, method="cg", rtol=1e-8, maxiter=50000)
    _, scaled = solve(A, b, method="cg", scaling="jacobi", rtol=1e-8)
    assert scaled.outer_iters * 3 < plain.outer_iters


@pytest.mark.parametrize("convert", [np.asarray, sp.csc_matrix, lambda A: torch.from_numpy(A),
                                     lambda A: torch.from_numpy(A).to_sparse_csr(), spla.aslinearoperator])
def test_every_input_type_gives_the_same_answer(convert):
    A = poisson2d(10).toarray()
    b = np.arange(100.0)
    x, info = solve(convert(A), b, method="chebyshev", degree=4, probe_steps=20, rtol=1e-10)
    np.testing.assert_allclose(A @ np.asarray(x), b, rtol=1e-8, atol=1e-7)
    assert info.matvecs == 20 + 5 * info.outer_iters + 1
    assert isinstance(x, np.ndarray) != isinstance(convert(A), torch.Tensor)  # torch in, torch out


def test_bad_arguments():
    A = poisson2d(5)
    b = np.ones(25)
    with pytest.raises(errors.InputValueError, match="unknown method"):
        solve(A, b, method="gmres")
    with pytest.raises(errors.InputValueError, match="unknown scaling"):
        solve(A, b, method="cg", scaling="ilu")
    with pytest.raises(errors.InputValueError, match="unknown bounds"):
        solve(A, b, method="chebyshev", bounds="magic")
    with pytest.raises(errors.NotSymmetricError):
        solve(sp.csr_matrix(np.triu(A.toarray())), b, method="cg")
    with pytest.raises(errors.NotPositiveDefiniteError, match="positive diagonal"):
        solve(-A, b, method="cg", scaling="jacobi")
    with pytest.raises(errors.NotPositiveDefiniteError):
        solve(-A, b, method="chebyshev")
