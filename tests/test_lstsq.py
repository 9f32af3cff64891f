"""``autospec.lstsq``: sketch-and-precondition reaches the LSQR answer (dense, sparse, torch, every
sketch, with and without ridge), sketch-and-solve's residual bound, the polynomial methods on the
normal equations, the matvec count, and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

import autospec
from autospec.errors import InputTypeError, InputValueError


def _problem(m=3000, p=40, cond=1e5, seed=0):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((m, p)))
    V, _ = np.linalg.qr(rng.standard_normal((p, p)))
    X = (U * np.logspace(0, -np.log10(cond), p)) @ V.T
    y = X @ rng.standard_normal(p) + 0.1 * rng.standard_normal(m)
    return X, y


def _ridge(X, y, mu):
    return np.linalg.solve(X.T @ X + mu * np.eye(X.shape[1]), X.T @ y)


@pytest.mark.parametrize("sketch", ["sparse_sign", "gaussian", "srht"])
@pytest.mark.parametrize("mu", [0.0, 1e-6])
def test_sketch_precondition_reaches_the_lsqr_answer(sketch, mu):
    X, y = _problem()
    w, info = autospec.lstsq(X, y, method="sketch_precondition", mu=mu, rtol=1e-12, rng=0, sketch=sketch)
    reference = spla.lsqr(X, y, damp=np.sqrt(mu), atol=1e-14, btol=1e-14, iter_lim=20000)[0]
    assert isinstance(w, np.ndarray) and info.converged
    assert np.linalg.norm(w - reference) <= 1e-6 * np.linalg.norm(reference)
    assert np.linalg.norm(w - _ridge(X, y, mu)) <= 1e-6 * np.linalg.norm(reference)
    assert info.outer_iters < 60  # κ(X R⁻¹) = O(1), whatever κ(X) = 1e5
    assert info.sketch == sketch and info.sketch_size == 4 * X.shape[1]
    assert info.normal_residual < 1e-8


def test_lsqr_itself_and_the_iteration_gap():
    X, y = _problem(cond=1e4)
    w, info = autospec.lstsq(X, y, method="lsqr", rtol=1e-10, maxiter=50000)
    _, pre = autospec.lstsq(X, y, method="sketch_precondition", rtol=1e-10, rng=0)
    assert info.converged and info.sketch == "" and info.sketch_size == 0
    assert info.matvecs == 2 * info.outer_iters + 1  # Xᵀy, then one X· and one Xᵀ· per LSQR iteration
    assert pre.outer_iters * 10 < info.outer_iters
    assert np.linalg.norm(w - _ridge(X, y, 0.0)) <= 1e-4 * np.linalg.norm(w)


def test_sketch_solve_residual_within_the_embedding_factor():
    X, y = _problem(cond=1e3)
    w, info = autospec.lstsq(X, y, method="sketch_solve", rng=1, sketch_size=400)
    best = np.linalg.norm(y - X @ _ridge(X, y, 0.0))
    assert np.linalg.norm(y - X @ w) <= 1.5 * best  # (1+ε)/(1−ε) with ε ≈ √(p/d) ≈ 0.3
    assert info.outer_iters == 0 and info.matvecs == 8  # the sparse sign sketch: s = 8 passes over X


@pytest.mark.parametrize("method", ["cg", "chebyshev", "autospec"])
def test_polynomial_methods_on_the_normal_equations(method):
    X, y = _problem(m=1500, p=30, cond=30)
    mu = 1e-3
    w, info = autospec.lstsq(X, y, method=method, mu=mu, rtol=1e-10, rng=0)
    assert info.converged and info.inner.method == method
    assert np.linalg.norm(np.asarray(w) - _ridge(X, y, mu)) <= 1e-7 * np.linalg.norm(_ridge(X, y, mu))
    assert info.matvecs == 1 + 2 * info.inner.matvecs


def test_sparse_and_torch_data():
    rng = np.random.default_rng(3)
    X = sp.random(2000, 30, density=0.2, random_state=3, format="csr") + sp.eye(2000, 30)
    y = rng.standard_normal(2000)
    reference = spla.lsqr(X, y, atol=1e-14, btol=1e-14)[0]
    for sketch in ("sparse_sign", "gaussian", "srht"):
        w, info = autospec.lstsq(X, y, sketch=sketch, rtol=1e-12, rng=0)
        assert np.allclose(w, reference, atol=1e-8 * np.abs(reference).max())
    Xt, yt = torch.from_numpy(X.toarray()), torch.from_numpy(y)
    wt, _ = autospec.lstsq(Xt, yt, rtol=1e-12, rng=0)
    assert isinstance(wt, torch.Tensor) and torch.allclose(wt, torch.from_numpy(reference), atol=1e-8)
    w32, info32 = autospec.lstsq(Xt.float(), yt.float(), rtol=1e-6, rng=0)
    assert w32.dtype == torch.float32 and info32.normal_residual < 1e-4


def test_seeds_reproduce():
    X, y = _problem(m=500, p=10)
    a, _ = autospec.lstsq(X, y, method="sketch_solve", rng=7)
    b, _ = autospec.lstsq(X, y, method="sketch_solve", rng=7)
    c, _ = autospec.lstsq(X, y, method="sketch_solve", rng=np.random.default_rng(7))
    assert np.array_equal(a, b) and c.shape == a.shape


def test_bad_inputs_raise_project_errors():
    X, y = _problem(m=200, p=20)
    with pytest.raises(InputValueError, match="sketch size"):
        autospec.lstsq(X, y, sketch_size=10)  # fewer sketch rows than columns: SX cannot have rank p
    with pytest.raises(InputValueError, match="mu"):
        autospec.lstsq(X, y, mu=-1e-3)
    with pytest.raises(InputValueError, match="length m=200"):
        autospec.lstsq(X, y[:-1])
    with pytest.raises(InputValueError, match="2-D"):
        autospec.lstsq(y, y)
    with pytest.raises(InputValueError, match="tall"):
        autospec.lstsq(X.T, y[:20])
    with pytest.raises(InputValueError, match="unknown method"):
        autospec.lstsq(X, y, method="qr")
    with pytest.raises(InputValueError, match="unknown sketch"):
        autospec.lstsq(X, y, sketch="fourier")
    with pytest.raises(InputValueError, match="non-finite"):
        autospec.lstsq(np.full((5, 2), np.nan), np.ones(5))
    with pytest.raises(InputValueError, match="rank deficient"):
        autospec.lstsq(np.ones((50, 3)), np.ones(50), method="sketch_precondition")
    with pytest.raises(InputTypeError):
        autospec.lstsq("X", y)
    with pytest.raises(InputValueError, match="rtol"):
        autospec.lstsq(X, y, rtol=-1.0)


def test_rng_none_is_reproducible_as_every_front_door():
    """``rng=None`` means seed 0 (as solve, eigsh and matfun.apply): two calls give the same sketch."""
    X = np.random.default_rng(3).standard_normal((400, 20))
    y = np.random.default_rng(4).standard_normal(400)
    (w1, i1), (w2, i2) = (autospec.lstsq(X, y, method="sketch_solve") for _ in range(2))
    assert np.array_equal(w1, w2)
    w3, _ = autospec.lstsq(X, y, method="sketch_solve", rng=1)
    assert not np.array_equal(w1, w3)
