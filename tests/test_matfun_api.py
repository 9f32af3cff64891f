"""The ``autospec.matfun`` library API: methods, rel_error definitions, input handling, errors,
the dispatch hook and the matrix-free ``apply``."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from autospec import matfun
from autospec.errors import ArtifactError, InputTypeError, InputValueError, NotPositiveDefiniteError, NotSymmetricError
from autospec.kernels import KernelInfo
from conftest import poisson2d, random_spd


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny matrices: intra-op threads only add synchronisation


SPD_METHODS = ["newton_schulz", "prism", "inverse_newton", "eigh"]
POLAR_METHODS = ["newton_schulz", "polar_express", "prism", "eigh"]


@pytest.mark.parametrize("method", SPD_METHODS)
def test_inv_sqrt_and_sqrt_numpy_in_numpy_out(method):
    A = random_spd(40, 1e4, seed=1)
    X, info = matfun.inv_sqrt(A, method=method)
    assert isinstance(X, np.ndarray) and X.dtype == np.float64
    assert info.rel_error == pytest.approx(np.linalg.norm(X @ A @ X - np.eye(40)) / math.sqrt(40), rel=1e-6, abs=1e-14)
    assert info.rel_error <= 1e-5 and info.converged and info.method == method
    S, info = matfun.sqrt(A, method=method)
    assert info.rel_error == pytest.approx(np.linalg.norm(S @ S - A) / np.linalg.norm(A), rel=1e-6, abs=1e-14)
    assert info.rel_error <= 1e-6
    if method != "eigh":
        assert info.iters > 0 and info.matmuls > 0 and info.residual_history[-1] <= 1e-6


@pytest.mark.parametrize("method", POLAR_METHODS)
@pytest.mark.parametrize("shape", [(50, 20), (20, 50)])
def test_polar_torch_batches(method, shape):
    G = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    Q, info = matfun.polar(G, method=method)
    assert isinstance(Q, torch.Tensor) and Q.shape == G.shape
    k = min(shape)
    gram = Q.mT @ Q if shape[0] >= shape[1] else Q @ Q.mT
    worst = float(torch.linalg.matrix_norm(gram - torch.eye(k, dtype=torch.float64)).max()) / math.sqrt(k)
    assert info.rel_error == pytest.approx(worst, rel=1e-6, abs=1e-14)
    assert info.rel_error <= 1e-5
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    assert torch.allclose(Q, U @ Vh, atol=1e-5)


def test_float32_stays_float32():
    A = torch.from_numpy(random_spd(32, 1e2)).float()
    X, info = matfun.inv_sqrt(A)
    assert X.dtype == torch.float32 and info.rel_error <= 1e-5


def test_muon_defaults_to_five_steps_and_fixed_iterations():
    G = np.random.default_rng(0).standard_normal((30, 20))
    _, info = matfun.polar(G, method="muon")
    assert (info.iters, info.matmuls, info.converged) == (5, 16, False)
    _, info = matfun.polar(G, method="polar_express", tol=None, max_iters=3)
    assert (info.iters, info.matmuls) == (3, 10)
    with pytest.raises(InputValueError, match="max_iters"):
        matfun.polar(G, tol=None)


def test_max_iters_caps_iterations():
    _, info = matfun.inv_sqrt(random_spd(32, 1e4), method="newton_schulz", tol=1e-12, max_iters=3)
    assert info.iters == 3 and not info.converged


@pytest.mark.parametrize(
    "bad,error,match",
    [
        (np.ones((3, 4)), InputValueError, "square"),
        (np.array([[2.0, 1.0], [0.0, 2.0]]), NotSymmetricError, "symmetric"),
        (np.diag([1.0, -1.0]), NotPositiveDefiniteError, "positive definite"),
        (np.diag([1.0, 0.0]), NotPositiveDefiniteError, "positive definite"),
        (np.array([[1.0, np.nan], [np.nan, 1.0]]), InputValueError, "non-finite"),
        (np.eye(3) * (1 + 1j), InputTypeError, "complex"),
        (np.ones(3), InputValueError, "matrix"),
        (np.zeros((0, 0)), InputValueError, "empty"),
        ("A", InputTypeError, "unsupported"),
        (np.array([["a", "b"], ["c", "d"]]), InputTypeError, "dtype"),
        (torch.ones(3, 3, dtype=torch.int8) * torch.eye(3, dtype=torch.int8), None, None),
    ],
)
def test_bad_inputs_raise_specific_errors(bad, error, match):
    if error is None:  # integer input is accepted (as float64)
        X, _ = matfun.inv_sqrt(bad)
        assert X.dtype == torch.float64
        return
    with pytest.raises(error, match=match):
        matfun.inv_sqrt(bad)


def test_batch_member_named_in_errors_and_float32_tolerance():
    A = np.stack([random_spd(8, 10.0), np.diag([1.0] * 7 + [-1.0])])
    with pytest.raises(NotPositiveDefiniteError, match=r"batch index \(1,\)"):
        matfun.sqrt(A)
    B = torch.from_numpy(random_spd(16, 10.0)).float()
    B[0, 1] += 1e-7  # float32-level asymmetry is accepted ...
    matfun.inv_sqrt(B)
    B[0, 1] += 1e-3  # ... a real one is not
    with pytest.raises(NotSymmetricError):
        matfun.inv_sqrt(B)


def test_polar_accepts_rectangular_but_rejects_nonfinite():
    with pytest.raises(InputValueError, match="non-finite"):
        matfun.polar(np.full((3, 2), np.inf))


def test_unknown_method_and_engine_misuse():
    A = random_spd(8, 10.0)
    with pytest.raises(InputValueError, match="unknown method"):
        matfun.inv_sqrt(A, method="muon")
    with pytest.raises(InputValueError, match="engine"):
        matfun.inv_sqrt(A, method="newton_schulz", engine="x")


@pytest.mark.parametrize("call", [
    lambda: matfun.inv_sqrt(random_spd(8, 10.0), method="autospec", engine="no-such-engine"),
    lambda: matfun.polar(np.eye(3), method="autospec", engine="no-such-engine"),
    lambda: matfun.apply(random_spd(8, 10.0), np.ones(8), method="autospec", engine="no-such-engine"),
])
def test_autospec_with_an_unknown_engine_is_a_clear_error(call):
    with pytest.raises(ArtifactError, match="no-such-engine"):
        call()


def test_register_plugs_a_method_in(monkeypatch):
    calls = []

    def fake(A, *, tol, max_iters, engine):
        calls.append(engine)
        return torch.eye(A.shape[-1], dtype=A.dtype), KernelInfo(iters=2, matmuls=6, converged=True)

    monkeypatch.setitem(matfun.METHODS["inv_sqrt"], "autospec", fake)
    _, info = matfun.inv_sqrt(np.eye(4), method="autospec", engine="matfun-test")
    assert calls == ["matfun-test"] and (info.iters, info.matmuls) == (2, 6) and info.rel_error == 0.0


def test_divergence_is_reported_with_a_warning(monkeypatch):
    def diverging(A, *, tol, max_iters, engine):
        return A, KernelInfo(iters=3, diverged=True, residual_history=[1.0, 10.0, 1e4])

    monkeypatch.setitem(matfun.METHODS["polar"], "autospec", diverging)
    with pytest.warns(RuntimeWarning, match="diverged"):
        _, info = matfun.polar(np.eye(3), method="autospec")
    assert info.diverged and not info.converged


# --------------------------------------------------------------------------- apply


@pytest.mark.parametrize("f,exact,tol", [  # degree 30 on [a, b] with b/a ≈ 150: interpolation error
    ("inv_sqrt", lambda lam: lam**-0.5, 5e-3),
    ("sqrt", np.sqrt, 1e-3),
    ("inv", lambda lam: 1 / lam, 2e-2),
])
def test_apply_chebyshev_matches_eigh(f, exact, tol):
    A = random_spd(200, 1e2, seed=2)
    z = np.random.default_rng(0).standard_normal((200, 3))
    y, info = matfun.apply(A, z, f=f, degree=30, probe_steps=40)
    lam, V = np.linalg.eigh(A)
    target = V @ (exact(lam)[:, None] * (V.T @ z))
    assert isinstance(y, np.ndarray) and y.shape == z.shape
    assert info.rel_error == pytest.approx(np.linalg.norm(y - target) / np.linalg.norm(target), rel=1e-6)
    assert info.rel_error <= tol
    assert info.matvecs == 40 + 30 * 3
    a, b = info.interval
    assert 0 < a <= lam.min() * (1 + 1e-8) and b >= lam.max()


def test_apply_error_decreases_with_degree_and_takes_sparse_and_torch():
    A = poisson2d(12)  # n = 144, κ ≈ 60
    z = torch.ones(144, dtype=torch.float64)
    errors = [matfun.apply(A, z, f="inv_sqrt", degree=d, probe_steps=30)[1].rel_error for d in (5, 10, 20)]
    assert errors[0] > errors[1] > errors[2]
    y, info = matfun.apply(A, z, f="inv_sqrt", degree=20, probe_steps=30, tol=1e-2)
    assert isinstance(y, torch.Tensor) and y.shape == (144,) and info.converged and info.rel_error <= 1e-2
    _, strict = matfun.apply(A, z, f="inv_sqrt", degree=20, probe_steps=30, tol=1e-12)
    assert not strict.converged  # converged means rel_error <= tol


def test_apply_errors():
    with pytest.raises(NotPositiveDefiniteError):
        matfun.apply(np.diag([-1.0, 1.0, 2.0]), np.ones(3))
    with pytest.raises(InputValueError, match="unknown function"):
        matfun.apply(np.eye(3), np.ones(3), f="exp")
    with pytest.raises(NotSymmetricError):
        matfun.apply(np.triu(np.ones((3, 3))), np.ones(3))
    with pytest.raises(InputValueError):
        matfun.apply(np.eye(3), np.ones(4))


def test_apply_large_n_estimates_the_error_from_the_probe(monkeypatch):
    A = poisson2d(12)
    z = np.random.default_rng(0).standard_normal(144)
    _, exact = matfun.apply(A, z, f="inv_sqrt", degree=8, probe_steps=40)
    monkeypatch.setattr(matfun.api, "EXACT_APPLY_MAX_N", 10)
    _, info = matfun.apply(A, z, f="inv_sqrt", degree=8, probe_steps=40)
    assert info.error_estimated and not exact.error_estimated
    assert exact.rel_error / 5 <= info.rel_error <= 5 * exact.rel_error  # the quadrature estimate for a random z
    _, flat = matfun.apply(sp.identity(20, format="csr") * 2.0, np.ones(20), f="sqrt", degree=4, probe_steps=5)
    assert flat.rel_error <= 1e-12 and flat.converged
