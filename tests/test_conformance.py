"""One conformance battery over every solver and method (issue 17), in the spirit of SciPy's shared
iterative-solver tests and linear_operator's shared test mixin. Every front door — ``solve`` (each
method), ``pcg``, ``lstsq`` (each method), ``eigsh`` (each method), the dense ``matfun`` functions
(each method) and ``matfun.apply`` (each method) — answers a zero right-hand side exactly, stops
not converged at its iteration limit, calls its callback with the caller's array type, raises a
project error on bad input, runs in float32 and float64 (torch in, torch out, same dtype), returns
a :class:`autospec.core.results.Result`, and reports fields that agree with a residual recomputed
here in float64."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import autospec
from autospec import matfun
from autospec.core.results import Result
from autospec.eigen import METHODS as EIGEN_METHODS
from autospec.errors import AutospecError
from autospec.linsys.lstsq import METHODS as LSTSQ_METHODS
from conftest import poisson2d, random_spd

pytestmark = pytest.mark.usefixtures("single_thread")

A = poisson2d(10)  # n = 100, SPD, κ ≈ 50
N = A.shape[0]
B = np.random.default_rng(0).standard_normal(N)
X_DATA = np.random.default_rng(1).standard_normal((120, 12))
Y_DATA = np.random.default_rng(2).standard_normal(120)
DENSE = random_spd(8, 100.0)
WIDE = np.random.default_rng(3).standard_normal((5, 8))
TOL = {torch.float32: 1e-4, torch.float64: 1e-8}  # a tolerance each dtype reaches

LINEAR = {f"solve-{m}": (lambda m: lambda A, b, **kw: autospec.solve(A, b, method=m, **kw))(m)
          for m in ("cg", "chebyshev", "autospec", "nystrom")}
LINEAR["pcg"] = lambda A, b, **kw: autospec.pcg(A, b, **kw)
DENSE_METHODS = [(f, m) for f in ("inv_sqrt", "sqrt", "polar") for m in sorted(matfun.METHODS[f])]
APPLY_METHODS = sorted(matfun.APPLY_METHODS)


def _eps(x) -> float:
    return float(torch.finfo(x.dtype).eps) if isinstance(x, torch.Tensor) else float(np.finfo(np.asarray(x).dtype).eps)


def _f64(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)


def _check_result(info, method: str) -> None:
    """The base every ``info`` shares (DESIGN.md §7 names included)."""
    assert isinstance(info, Result)
    assert info.method == method
    assert isinstance(info.converged, bool) and info.seconds >= 0 and info.matvecs >= 0
    assert info.iterations >= 0 and (info.fallback is None or isinstance(info.fallback, str))
    assert isinstance(info.history, list)


def _linear_residual(A, b, x) -> float:
    b = _f64(b)
    return float(np.linalg.norm(b - _f64(A) @ _f64(x)) / np.linalg.norm(b))


def _reports(info, true: float, x) -> bool:
    """``info.rel_residual`` is the true residual of the returned x, to rounding (deflated solves
    included: they confirm on ``b − A x`` itself, not on their projected system)."""
    return abs(info.rel_residual - true) <= 1e-3 * true + 10 * _eps(x)


def _eigen_residual(A, vals, vecs) -> float:
    """``max_j ‖A v_j − θ_j v_j‖ / ‖A‖₂`` (eigsh divides by an estimate ``<= ‖A‖₂``: never smaller)."""
    A, V, theta = _f64(A), _f64(vecs), _f64(vals)
    return float(np.linalg.norm(A @ V - V * theta, axis=0).max() / np.linalg.norm(A, 2))


def _dense_error(function: str, M, X) -> float:
    """The documented ``rel_error`` of each dense function, recomputed in float64."""
    M, X = _f64(M), _f64(X)
    if function == "inv_sqrt":
        return float(np.linalg.norm(X @ M @ X - np.eye(len(M))) / math.sqrt(len(M)))
    if function == "sqrt":
        return float(np.linalg.norm(X @ X - M) / np.linalg.norm(M))
    G = X @ X.T if X.shape[0] <= X.shape[1] else X.T @ X  # the smaller Gram
    return float(np.linalg.norm(G - np.eye(len(G))) / math.sqrt(len(G)))


def _apply_error(A, z, y) -> float:
    lam, V = np.linalg.eigh(_f64(A))
    exact = V @ (lam**-0.5 * (V.T @ _f64(z)))
    return float(np.linalg.norm(_f64(y) - exact) / np.linalg.norm(exact))


# -- zero right-hand side: x = 0 exactly, converged, nothing to iterate ------------------------------

@pytest.mark.parametrize("name", sorted(LINEAR))
def test_linear_zero_rhs(name):
    x, info = LINEAR[name](A, np.zeros(N), rtol=1e-8)
    assert isinstance(x, np.ndarray) and not x.any()
    assert info.converged and info.outer_iters == 0 and info.rel_residual == 0.0


@pytest.mark.parametrize("method", LSTSQ_METHODS)
def test_lstsq_zero_rhs(method):
    w, info = autospec.lstsq(X_DATA, np.zeros(len(Y_DATA)), method=method, rng=0)
    assert not w.any() and info.converged and info.rel_residual == 0.0


@pytest.mark.parametrize("method", APPLY_METHODS)
def test_apply_zero_vector(method):
    y, info = matfun.apply(A, np.zeros(N), method=method)
    assert isinstance(y, np.ndarray) and not y.any()
    assert info.converged and info.rel_error == 0.0 and info.matvecs == 0


# -- the iteration limit: stops there, not converged, says so ---------------------------------------

@pytest.mark.parametrize("name", sorted(LINEAR))
def test_linear_maxiter_reached(name):
    x, info = LINEAR[name](A, B, rtol=1e-14, maxiter=1)
    assert not info.converged and info.outer_iters <= 1 and "maxiter" in info.message
    assert _reports(info, _linear_residual(A, B, x), x)


@pytest.mark.parametrize("method", [m for m in LSTSQ_METHODS if m != "sketch_solve"])  # one pass, no iteration
def test_lstsq_maxiter_reached(method):
    _, info = autospec.lstsq(X_DATA, Y_DATA, method=method, rtol=1e-14, maxiter=1, rng=0)
    assert not info.converged and info.outer_iters <= 1


@pytest.mark.parametrize("method", EIGEN_METHODS)
def test_eigsh_budget_reached(method):
    _, _, info = autospec.eigsh(A, k=3, method=method, max_matvecs=10)
    assert not info.converged and "budget" in info.message


@pytest.mark.parametrize("function, method", [c for c in DENSE_METHODS if c[1] != "eigh"])  # eigh: direct
def test_dense_matfun_max_iters_reached(function, method):
    _, info = getattr(matfun, function)(WIDE if function == "polar" else DENSE, method=method, tol=1e-14,
                                        max_iters=1)
    assert not info.converged and info.iters <= 1


# -- callbacks: called once per iteration, with the caller's array type ------------------------------

@pytest.mark.parametrize("torch_input", [False, True])
@pytest.mark.parametrize("name", sorted(LINEAR))
def test_linear_callback_is_called_with_the_callers_type(name, torch_input):
    A_in, b_in = (torch.from_numpy(A.toarray()), torch.from_numpy(B)) if torch_input else (A, B)
    seen = []
    _, info = LINEAR[name](A_in, b_in, rtol=1e-8, callback=seen.append)
    assert len(seen) == info.outer_iters > 0
    assert all(isinstance(xk, torch.Tensor if torch_input else np.ndarray) and xk.shape == (N,) for xk in seen)


# -- bad input: a project error naming the problem -----------------------------------------------------

BAD = [
    *[(f"{name}-not-square", (lambda fn: lambda: fn(np.ones((3, 4)), np.ones(3)))(fn)) for name, fn in LINEAR.items()],
    *[(f"{name}-nan-rhs", (lambda fn: lambda: fn(A, np.full(N, np.nan)))(fn)) for name, fn in LINEAR.items()],
    *[(f"lstsq-{m}-short-y", (lambda m: lambda: autospec.lstsq(X_DATA, np.ones(5), method=m))(m)) for m in LSTSQ_METHODS],
    *[(f"eigsh-{m}-not-square", (lambda m: lambda: autospec.eigsh(np.ones((3, 4)), k=1, method=m))(m)) for m in EIGEN_METHODS],
    *[(f"eigsh-{m}-k-too-large", (lambda m: lambda: autospec.eigsh(A, k=N, method=m))(m)) for m in EIGEN_METHODS],
    *[(f"{f}-{m}-not-square", (lambda f, m: lambda: getattr(matfun, f)(np.ones((3, 4)), method=m))(f, m))
      for f, m in DENSE_METHODS if f != "polar"],
    *[(f"polar-{m}-nan", (lambda m: lambda: matfun.polar(np.full((3, 2), np.nan), method=m))(m))
      for f, m in DENSE_METHODS if f == "polar"],
    *[(f"apply-{m}-short-z", (lambda m: lambda: matfun.apply(A, np.ones(5), method=m))(m)) for m in APPLY_METHODS],
]


@pytest.mark.parametrize("run", [b[1] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_raises_a_project_error(run):
    with pytest.raises(AutospecError):
        run()


# -- float32 and float64: torch in, torch out of the same dtype; fields agree with a recomputation -------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(LINEAR))
def test_linear_fields_agree_with_the_true_residual(name, dtype):
    A_t, b_t = torch.from_numpy(A.toarray()).to(dtype), torch.from_numpy(B).to(dtype)
    x, info = LINEAR[name](A_t, b_t, rtol=TOL[dtype])
    _check_result(info, name.removeprefix("solve-") if name != "pcg" else "cg")
    assert isinstance(x, torch.Tensor) and x.dtype == dtype and info.converged
    true = _linear_residual(A_t, b_t, x)
    assert _reports(info, true, x)
    assert true <= TOL[dtype] * 1.01 + 10 * _eps(x)
    assert info.matvecs >= info.outer_iters and len(info.residual_history) >= info.outer_iters


@pytest.mark.parametrize("method", LSTSQ_METHODS)
def test_lstsq_fields_agree_with_the_true_residual(method):
    w, info = autospec.lstsq(X_DATA, Y_DATA, method=method, rtol=1e-8, rng=0)
    _check_result(info, method)
    assert info.rel_residual == pytest.approx(np.linalg.norm(Y_DATA - X_DATA @ w) / np.linalg.norm(Y_DATA), rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", EIGEN_METHODS)
def test_eigsh_fields_agree_with_the_true_residual(method, dtype):
    A_t = torch.from_numpy(A.toarray()).to(dtype)
    vals, vecs, info = autospec.eigsh(A_t, k=3, method=method, tol=TOL[dtype])
    _check_result(info, method)
    assert vals.dtype == vecs.dtype == dtype and vecs.shape == (N, 3) and info.converged
    assert len(info.residuals) == 3 and info.max_residual == max(info.residuals) <= TOL[dtype]
    assert _eigen_residual(A_t, vals, vecs) <= info.max_residual * 1.01 + 10 * _eps(vals)
    assert np.allclose(_f64(vals), np.linalg.eigvalsh(A.toarray())[:3], atol=1e3 * TOL[dtype] * 8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("function, method", DENSE_METHODS)
def test_dense_matfun_fields_agree_with_the_recomputed_error(function, method, dtype):
    M = torch.from_numpy(WIDE if function == "polar" else DENSE).to(dtype)
    X, info = getattr(matfun, function)(M, method=method, tol=1e-3 if dtype == torch.float32 else 1e-6)
    _check_result(info, method)
    assert isinstance(X, torch.Tensor) and X.dtype == dtype and X.shape == M.shape
    assert info.rel_error == pytest.approx(_dense_error(function, M, X), rel=1e-4, abs=1e-10)
    if info.converged and method != "eigh":  # tol is checked on the method's own residual (eigh: none)
        assert info.residual <= (1e-3 if dtype == torch.float32 else 1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", APPLY_METHODS)
def test_apply_fields_agree_with_the_recomputed_error(method, dtype):
    A_t, z = torch.from_numpy(A.toarray()).to(dtype), torch.from_numpy(B).to(dtype)
    y, info = matfun.apply(A_t, z, method=method, degree=20, tol=1e-2)
    _check_result(info, method)
    assert isinstance(y, torch.Tensor) and y.dtype == dtype and y.shape == (N,)
    error = _apply_error(A_t, z, y)
    assert info.rel_error == pytest.approx(error, rel=1e-3, abs=10 * _eps(y))
    assert info.converged == (info.rel_error <= 1e-2)
