"""``converged`` means converged (issue 18, point 1): the true residual decides, for PCG, ``solve``,
``eigsh`` and ``matfun``; tolerances the dtype cannot reach are warned about."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import autospec
from autospec import errors, matfun

from conftest import DATA, poisson2d


def poisson1d(n: int) -> sp.csr_matrix:
    return sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1]).tocsr()


def _true_residual(A: np.ndarray, x, b: np.ndarray) -> float:
    x = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    return float(np.linalg.norm(b - A @ x))


@st.composite
def spd_problems(draw):
    n = draw(st.integers(2, 60))
    log_kappa = draw(st.floats(0, 8))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.exp(rng.uniform(-log_kappa, 0, n) * np.log(10)) * 10.0 ** draw(st.integers(-3, 3))
    A = (Q * lam) @ Q.T
    A = (A + A.T) / 2
    b = rng.standard_normal(n) * 10.0 ** draw(st.integers(-5, 5))
    return A, b


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=spd_problems(),
       dtype=st.sampled_from(["numpy64", "numpy32", "torch64", "torch32"]),
       rtol=st.floats(1e-13, 1e-1),
       atol=st.sampled_from([0.0, 1e-12, 1e-6]),
       method=st.sampled_from(["pcg", "cg", "chebyshev", "jacobi", "autospec"]),
       x0=st.booleans())
def test_converged_means_the_true_residual_meets_the_tolerance(problem, dtype, rtol, atol, method, x0):
    A, b = problem
    if dtype.endswith("32"):
        rtol = max(rtol, 1e-5)  # below 10·eps of float32 a ToleranceWarning is the promise (tested below)
    Ain, bin_ = (A.astype(np.float32), b.astype(np.float32)) if dtype == "numpy32" else (A, b)
    if dtype.startswith("torch"):
        Ain, bin_ = torch.from_numpy(Ain), torch.from_numpy(bin_)
        if dtype == "torch32":
            Ain, bin_ = Ain.float(), bin_.float()
    start = None if not x0 else np.ones(A.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", errors.ToleranceWarning)
        try:
            if method == "pcg":
                x, info = autospec.pcg(Ain, bin_, start, rtol=rtol, atol=atol, maxiter=20 * A.shape[0])
            else:
                x, info = autospec.solve(Ain, bin_, method=method if method in ("chebyshev", "autospec") else "cg",
                                         scaling="jacobi" if method == "jacobi" else "none", x0=start, rtol=rtol,
                                         atol=atol, maxiter=20 * A.shape[0])
        except errors.AutospecError:
            return  # a breakdown in low precision is an honest answer too
    bn = np.linalg.norm(b)
    target = max(rtol * bn, atol)
    true = _true_residual(A, x, b)
    assert isinstance(x, torch.Tensor) == dtype.startswith("torch")
    if info.converged:
        # the solver judged its own residual in the working precision: that evaluation of b − A x
        # carries a rounding error of about n·eps·(‖A‖‖x‖ + ‖b‖), the only slack allowed
        eps = np.finfo(np.float32 if dtype.endswith("32") else np.float64).eps
        xn = np.linalg.norm(np.asarray(x.double() if isinstance(x, torch.Tensor) else x, dtype=np.float64))
        rounding = A.shape[0] * eps * (np.linalg.norm(A, 2) * xn + bn)
        assert true <= target * (1 + 1e-6) + rounding, (true, target, rounding, info)


def test_recursive_residual_drift_restarts_from_the_true_residual():
    A = poisson1d(5000)  # κ ≈ 1e7: the recursive residual drifts below 1e-10 before the true one does
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    x, info = autospec.solve(A, b, method="cg", rtol=1e-10, maxiter=50_000)
    true = np.linalg.norm(b - A @ x) / np.linalg.norm(b)
    assert info.restarts >= 1 and info.residual_checks == info.restarts + 1
    assert info.converged and true <= 1e-10 and info.rel_residual == pytest.approx(true, rel=1e-12)
    assert info.matvecs == info.outer_iters + info.residual_checks


def test_unreachable_tolerance_stops_not_converged():
    A = poisson1d(2000)
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    x, info = autospec.pcg(A, b, rtol=1e-14, maxiter=100_000)  # above 10·eps, below what κ ≈ 1.6e6 allows
    assert not info.converged and "stagnated" in info.message
    assert info.outer_iters < 5 * A.shape[0]  # stopped by the restart rule, not by maxiter
    assert np.linalg.norm(b - A @ x) / np.linalg.norm(b) == pytest.approx(info.rel_residual, rel=1e-9)


@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 1e-8), (torch.float64, 1e-16)])
def test_tolerance_below_ten_eps_warns_and_is_not_reported_converged_unless_met(dtype, rtol):
    A = torch.from_numpy(poisson1d(300).toarray()).to(dtype)
    b = torch.from_numpy(np.random.default_rng(1).standard_normal(300)).to(dtype)
    with pytest.warns(errors.ToleranceWarning, match="below 10·eps"):
        x, info = autospec.solve(A, b, method="cg", rtol=rtol)
    true = _true_residual(A.double().numpy(), x, b.double().numpy()) / float(b.double().norm())
    assert not info.converged or true <= rtol


def test_half_precision_cg_is_refused():
    A = torch.from_numpy(poisson2d(6).toarray()).bfloat16()
    with pytest.raises(errors.InputTypeError, match="bfloat16"):
        autospec.solve(A, torch.ones(36, dtype=torch.bfloat16), method="cg", rtol=1e-1)


def test_eigsh_budget_is_enforced_or_reported():
    A = poisson2d(30)
    for method in ("chfsi", "lanczos", "lobpcg", "rsi", "autospec"):
        for budget in (10, 200, 1000):
            _, _, info = autospec.eigsh(A, k=4, method=method, max_matvecs=budget, tol=1e-10)
            assert info.matvecs <= budget or not info.converged, (method, budget, info.matvecs, info.message)
            if info.matvecs > budget:
                assert "budget" in info.message


def test_matfun_apply_degree_zero_is_not_converged_and_says_what_tol_means():
    A = poisson2d(8)
    z = np.ones(64)
    _, info = matfun.apply(A, z, f="inv_sqrt", degree=0)
    assert not info.converged and info.rel_error > 0.1
    _, good = matfun.apply(A, z, f="inv_sqrt", degree=30, tol=1e-4)
    assert good.converged and good.rel_error <= 1e-4
    _, default = matfun.apply(A, z, f="inv_sqrt", degree=30)  # tol = 1e-6, as the dense functions
    assert default.converged == (default.rel_error <= 1e-6)
    _, none = matfun.apply(A, z, f="inv_sqrt", degree=0, tol=None)
    assert none.converged  # tol=None: converged only says the result is finite (documented)


def test_deflated_solve_finishes_on_the_original_system():
    """Deflated CG (method="autospec" choosing deflation) checks ``P(b − A x̃)``, equal to ``b − A x``
    only in exact arithmetic; nos6 with Jacobi scaling met the tolerance there (8.0e-9) with a true
    residual of 7.3e-8. PCG then continues on ``A x = b`` from x until ``b − A x`` meets it too;
    ``rel_residual`` and ``converged`` are those of ``b − A x``."""
    A = sp.csr_matrix(autospec.read_matrix(DATA / "nos6.mtx"))
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    seen = []
    x, info = autospec.solve(A, b, method="autospec", scaling="jacobi", rtol=1e-8, callback=seen.append)
    assert info.deflated > 0
    true = np.linalg.norm(b - A @ x) / np.linalg.norm(b)
    assert info.rel_residual == pytest.approx(true, rel=1e-6)
    assert info.converged and true <= 1e-8 and "more iterations on A x = b" in info.message
    assert len(seen) == info.outer_iters == len(info.residual_history) - 1
    assert np.array_equal(seen[-1], x)  # the continuation reports the unscaled iterate too
    capped, short = autospec.solve(A, b, method="autospec", scaling="jacobi", rtol=1e-8, maxiter=info.outer_iters - 1)
    assert not short.converged and short.outer_iters == info.outer_iters - 1  # maxiter bounds both phases
