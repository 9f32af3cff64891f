"""PCG against SciPy, breakdown reporting, and the Chebyshev preconditioner."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from autospec import errors, pcg, solve
from autospec.linsys.cg import scipy_cg_iterations
from autospec.core.operators import as_operator
from autospec.core.intervals import chebyshev_bounds
from autospec.linsys.preconditioners import chebyshev_preconditioner, polynomial_is_safe
from autospec.core.probe import lanczos
from autospec.core.recurrences import chebyshev_three_term

from conftest import poisson2d, random_spd


@pytest.mark.parametrize("A", [poisson2d(30), sp.csr_matrix(random_spd(200, 1e3, seed=4))], ids=["poisson", "dense_spd"])
def test_cg_matches_scipy_iterations_and_reports_true_residual(A):
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    x, info = solve(A, b, method="cg", rtol=1e-8, maxiter=20000)
    ref_iters, _, _ = scipy_cg_iterations(A, b, 1e-8, 20000)
    # past n iterations the count depends on rounding (SciPy differs from itself by a few per cent
    # under a permutation: benchmarks/RESULTS.md, "How reproducible is SciPy's own CG count?")
    tolerance = 2 if ref_iters <= A.shape[0] else max(2, 0.02 * ref_iters)
    assert abs(info.outer_iters - ref_iters) <= tolerance
    assert info.converged and info.matvecs == info.outer_iters + 1  # + the true-residual check
    assert isinstance(x, np.ndarray)  # NumPy/SciPy in, NumPy out
    true = np.linalg.norm(b - A @ x) / np.linalg.norm(b)
    assert info.rel_residual == pytest.approx(true, rel=1e-12)
    assert info.rel_residual <= 1e-8 * 1.01
    assert info.residual_history[0] == 1.0 and len(info.residual_history) == info.outer_iters + 1


def test_pcg_signature_x0_atol_callback_maxiter():
    A = poisson2d(15)
    b = np.ones(A.shape[0])
    seen = []
    x, info = pcg(A, b, x0=np.ones(A.shape[0]), rtol=0, atol=1e-6, callback=seen.append)
    assert info.converged and len(seen) == info.outer_iters
    assert all(isinstance(xk, np.ndarray) for xk in seen)  # callbacks get the caller's array type
    assert np.linalg.norm(b - A @ x) <= 1.01e-6
    assert info.matvecs == info.outer_iters + 2  # b − A x0, the iterations, the true-residual check
    _, short = pcg(A, b, maxiter=3)
    assert short.outer_iters == 3 and short.matvecs == 4 and not short.converged
    x, zero = pcg(A, np.zeros(A.shape[0]), x0=np.ones(A.shape[0]))
    assert zero.converged and zero.outer_iters == 0 and zero.matvecs == 0 and not x.any()  # b = 0: x = 0


def test_multiple_right_hand_sides_are_independent_systems():
    A = poisson2d(12)
    B = np.random.default_rng(1).standard_normal((A.shape[0], 3))
    X, info = pcg(A, B, rtol=1e-10)
    np.testing.assert_allclose(A @ X, B, atol=1e-8)
    assert info.matvecs == 3 * (info.outer_iters + 1)


def test_indefinite_matrix_raises_not_positive_definite():
    A = np.diag(np.concatenate([np.linspace(1, 2, 20), [-1.0]]))
    with pytest.raises(errors.NotPositiveDefiniteError, match="not positive definite"):
        pcg(A, np.ones(21))


def test_non_spd_preconditioner_raises_breakdown():
    A = poisson2d(8)
    with pytest.raises(errors.BreakdownError, match="preconditioner is not symmetric positive definite"):
        pcg(A, np.ones(64), M=lambda r: -r)


def test_preconditioner_shape_mismatch():
    with pytest.raises(errors.InputValueError, match="preconditioner of shape"):
        pcg(np.eye(4), np.ones(4), M=np.eye(3))


def test_chebyshev_pcg_on_poisson_100():
    A = poisson2d(100)
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    _, cg = solve(A, b, method="cg", rtol=1e-8)
    _, cheb = solve(A, b, method="chebyshev", degree=10, probe_steps=50, rtol=1e-8)
    assert cheb.converged and cheb.rel_residual <= 1e-8 * 1.01
    # a degree-10 polynomial can at best cut outer iterations by ~11x; Chebyshev gets about 7x
    assert cheb.outer_iters * 6 <= cg.outer_iters
    assert cheb.matvecs == 50 + cheb.outer_iters * 11 + 1


def test_scipy_cg_accepts_chebyshev_preconditioner():
    A = poisson2d(40)
    b = np.ones(A.shape[0])
    op = as_operator(A)
    M = chebyshev_preconditioner(op, lanczos(op, 30), degree=8).as_linear_operator()
    count = [0]
    x, code = spla.cg(A, b, M=M, rtol=1e-8, callback=lambda _: count.__setitem__(0, count[0] + 1))
    assert code == 0 and np.linalg.norm(b - A @ x) <= 1e-8 * np.linalg.norm(b) * 1.01
    _, plain = solve(A, b, method="cg", rtol=1e-8)
    assert count[0] * 3 < plain.outer_iters


@pytest.mark.parametrize("strategy", ["ritz", "petsc", "exact"])
def test_chebyshev_bounds_strategies(strategy):
    A = random_spd(60, 1e3, seed=2)
    lam = np.linalg.eigvalsh(A)
    pr = lanczos(A, 60)
    a, b = chebyshev_bounds(pr, strategy, eigenvalues=lam)
    assert 0 < a < b
    if strategy == "exact":
        assert (a, b) == (pytest.approx(lam[0]), pytest.approx(lam[-1]))
    if strategy == "petsc":
        assert b == pytest.approx(1.1 * lam[-1], rel=1e-8) and a == pytest.approx(0.1 * lam[-1], rel=1e-8)
    if strategy == "ritz":
        assert b >= lam[-1] and a == pytest.approx(lam[0], rel=1e-6)
    with pytest.raises(errors.InputValueError, match="unknown Chebyshev bound"):
        chebyshev_bounds(pr, "guess")


def test_safeguard_accepts_chebyshev_and_rejects_negative_or_nan():
    poly = chebyshev_three_term(torch.tensor(1e-3), torch.tensor(1.0), 10)
    assert polynomial_is_safe(poly)
    # underestimated λmax: for odd d, R = T_{d+1}(..)/T_{d+1}(σ) -> +inf beyond b, so p < 0 near 1
    bad = chebyshev_three_term(torch.tensor(1e-3), torch.tensor(0.5), 9)
    assert not polynomial_is_safe(bad)
    nan = chebyshev_three_term(torch.tensor(1e-3), torch.tensor(1.0), 10)
    nan.alpha[3] = float("nan")
    assert not polynomial_is_safe(nan)


def test_singular_system_diverging_is_reported_not_nan():
    A = np.diag(np.concatenate([np.zeros(3), np.linspace(1, 2, 20)]))  # singular PSD, b outside the range
    with pytest.raises(errors.BreakdownError, match="diverged|not positive definite") as err:
        pcg(A, np.ones(23), maxiter=10_000)
    assert "nan" not in str(err.value).lower()


def test_chebyshev_preconditioner_from_any_matrix_is_scipys_M_as_it_is():
    """The newcomer's path (issue 18, point 8): no probe to build, no wrapping, SciPy's M directly."""
    import autospec

    A = poisson2d(40)
    b = np.ones(A.shape[0])
    M = autospec.chebyshev_preconditioner(A, degree=10)
    assert M.shape == A.shape and M.degree == 10
    x, code = spla.cg(A, b, M=M, rtol=1e-8)
    assert code == 0 and np.linalg.norm(b - A @ x) <= 1.01e-8 * np.linalg.norm(b)
    y, info = pcg(A, b, M=M, rtol=1e-8)
    assert info.converged and isinstance(y, np.ndarray)
    torch_M = autospec.chebyshev_preconditioner(torch.from_numpy(A.toarray()), degree=10)
    r = torch.ones(A.shape[0])
    np.testing.assert_allclose(torch_M(r.unsqueeze(-1)).squeeze(-1).numpy(), M.matvec(r.numpy()), rtol=1e-10)
    with pytest.raises(errors.NotPositiveDefiniteError):
        autospec.chebyshev_preconditioner(-A)
