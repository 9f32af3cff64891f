"""``autospec.eigen``: filtered subspace iteration (ChFSI, RSI) and the SciPy baselines against
dense ``eigvalsh``; the Chebyshev filter formula; budgets, stagnation and bad input."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from autospec import errors
from autospec.eigen import subspace
from autospec.eigen.api import METHODS, eigsh, filtered_subspace_iteration, solve_eigenproblem
from autospec.eigen.filters import (
    FilterContext,
    PolynomialFilter,
    chebyshev_coefficients,
    chebyshev_filter,
    filter_degree,
    power_filter,
    wanted_rate,
)
from autospec.core.operators import Diagonal
from autospec.core.probe import lanczos
from autospec.core.recurrences import chebyshev_T, evaluate

DATA = Path(__file__).resolve().parents[1] / "data" / "suitesparse"
BASELINE_METHODS = [m for m in METHODS if m != "autospec"]


def laplacian2d(m1: int, m2: int) -> sp.csr_matrix:
    """5-point Dirichlet Laplacian on an m1×m2 grid (m1 ≠ m2: simple eigenvalues)."""
    def T(m):
        return sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(m, m))

    return (sp.kron(sp.eye(m2), T(m1)) + sp.kron(T(m2), sp.eye(m1))).tocsr()


def with_spectrum(lam: np.ndarray, seed: int = 0) -> np.ndarray:
    """Dense symmetric ``Q diag(λ) Qᵀ`` with a seeded random orthogonal Q."""
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((lam.size, lam.size)))
    return (Q * lam) @ Q.T


def clustered_spd(n: int = 200, seed: int = 0) -> np.ndarray:
    """SPD with clusters of 4, 4 and 8 eigenvalues (widths 1e-2) at 1, 1.5, 2.2 and a tail on [3, 50]."""
    rng = np.random.default_rng(seed)
    low = np.concatenate([c + 1e-2 * rng.random(m) for c, m in [(1.0, 4), (1.5, 4), (2.2, 8)]])
    return with_spectrum(np.concatenate([low, np.linspace(3.0, 50.0, n - low.size)]), seed)


MATRICES = {
    "laplacian": lambda: laplacian2d(20, 21),
    "clustered_spd": clustered_spd,
    "indefinite": lambda: (laplacian2d(20, 21) - 2.0 * sp.eye(420)).tocsr(),
}
SHIPPED = [p for p in [DATA / "gr_30_30.mtx"] if p.exists()]  # well conditioned (κ ≈ 195)
for _path in SHIPPED:
    MATRICES[_path.stem] = lambda p=_path: sp.csr_matrix(scipy.io.mmread(str(p)))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Blocks of ~20 columns: intra-op threads only add synchronisation (and stall on a busy machine)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def problems():
    out = {}
    for name, make in MATRICES.items():
        A = make()
        dense = A.toarray() if sp.issparse(A) else A
        out[name] = (A, dense, np.linalg.eigvalsh(dense))
    return out


def _check_pairs(A, exact, vals, vecs, info, k, tol):
    vals, vecs = np.asarray(vals), np.asarray(vecs)
    norm = np.abs(exact).max()
    assert info.converged and info.max_residual <= tol, info.message
    assert vals.shape == (k,) and vecs.shape == (exact.size, k)
    np.testing.assert_array_less(np.abs(vals - exact[:k]), tol * norm)
    np.testing.assert_allclose(vecs.T @ vecs, np.eye(k), atol=1e-8)
    residuals = np.linalg.norm(A @ vecs - vecs * vals, axis=0) / norm
    assert residuals.max() <= tol * 1.01  # ‖A‖_est <= ‖A‖: the reported residual is not looser


@pytest.mark.parametrize("k", [4, 16])
@pytest.mark.parametrize("name", list(MATRICES))
@pytest.mark.parametrize("method", BASELINE_METHODS)
def test_smallest_eigenvalues_match_eigvalsh(problems, method, name, k):
    A, _, exact = problems[name]
    vals, vecs, info = eigsh(A, k=k, method=method, tol=1e-8, rng=0)
    _check_pairs(A, exact, vals, vecs, info, k, 1e-8)
    assert info.method == method and info.k == k and info.matvecs > info.outer_iters > 0
    assert info.max_residual == pytest.approx(max(info.residuals))


@pytest.mark.parametrize("method", ["chfsi", "lobpcg"])
def test_block_methods_resolve_double_eigenvalues(method):
    """A square-grid Laplacian has double eigenvalues; block methods find both copies."""
    A = laplacian2d(12, 12)
    exact = np.linalg.eigvalsh(A.toarray())
    vals, vecs, info = eigsh(A, k=6, method=method, tol=1e-8)
    _check_pairs(A, exact, vals, vecs, info, 6, 1e-8)


@pytest.mark.skipif(not SHIPPED, reason="data/suitesparse/gr_30_30.mtx not in this checkout")
def test_lanczos_guard_pairs_find_the_second_copy(problems):
    """Single-vector Lanczos converges to one copy of a double eigenvalue first; computing
    ``default_block(k)`` pairs (the default) finds the second copy that ``k + 1`` pairs miss."""
    A, _, exact = problems["gr_30_30"]
    vals, _, info = eigsh(A, k=4, method="lanczos")
    assert info.converged and info.block == 8
    np.testing.assert_allclose(np.asarray(vals), exact[:4], rtol=0, atol=1e-7 * exact[-1])
    vals, _, info = eigsh(A, k=4, method="lanczos", block=5)
    assert info.converged and np.abs(np.asarray(vals) - exact[:4]).max() > 1e-3 * exact[-1]


@pytest.mark.parametrize("method", ["chfsi", "lanczos", "lobpcg"])
def test_largest_eigenvalues_via_negation(problems, method):
    A, _, exact = problems["indefinite"]
    vals, vecs, info = eigsh(A, k=5, which="LA", method=method, tol=1e-9)
    assert info.converged
    np.testing.assert_allclose(np.asarray(vals), exact[-5:], atol=1e-9 * np.abs(exact).max())
    np.testing.assert_allclose(A @ np.asarray(vecs), np.asarray(vecs) * np.asarray(vals), atol=1e-8 * 8)


def _context(a, b, lowest) -> FilterContext:
    op = Diagonal(torch.linspace(lowest, b, 50, dtype=torch.float64))
    return FilterContext(op, lanczos(op, steps=5), a, b, lowest, torch.zeros(0), torch.zeros(0), 0)


@pytest.mark.parametrize("m, a, b, lowest", [(15, 1.0, 10.0, 0.0), (10, -2.0, 7.5, -3.0), (20, 0.3, 1.0, 0.29)])
def test_chebyshev_filter_is_scaled_T_m(m, a, b, lowest):
    """ChFSI's filter equals ``T_m((λ − c)/e) / T_m((a_L − c)/e)`` on a grid."""
    poly = chebyshev_filter(m)(_context(a, b, lowest))
    grid = np.linspace(lowest - 0.5 * (b - a), b, 2001)
    c, e = (a + b) / 2, (b - a) / 2
    expected = chebyshev_T(m, (grid - c) / e) / chebyshev_T(m, np.array([(lowest - c) / e]))
    got = evaluate(poly, torch.from_numpy(grid)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())


def test_chebyshev_filter_example_from_baselines():
    """baselines.md §C.4 (grid linspace(0, 10, 300)): m = 10, [a, b] = [1, 10], a_L = 0: 1 at 0,
    0.152 at the grid point nearest 0.5, <= 2.9e-3 on [1, 10]."""
    poly = chebyshev_filter(10)(_context(1.0, 10.0, 0.0))
    at = evaluate(poly, torch.tensor([0.0, 15 * 10 / 299], dtype=torch.float64)).numpy()
    np.testing.assert_allclose(at, [1.0, 0.152], atol=5e-4)
    assert evaluate(poly, torch.linspace(1, 10, 1001, dtype=torch.float64)).abs().max() <= 2.9e-3


def test_power_filter_is_shifted_monomial():
    """RSI's filter is ``((b − λ)/(b − a_L))^m``."""
    poly = power_filter(7)(_context(2.0, 10.0, -1.0))
    grid = np.linspace(-1.0, 10.0, 501)
    np.testing.assert_allclose(evaluate(poly, torch.from_numpy(grid)).numpy(), ((10 - grid) / 11) ** 7, atol=1e-13)


def test_a_coefficient_filter_is_a_drop_in():
    """Any ``(ctx, degree) -> coefficients`` plugs into the same outer loop; the Chebyshev one gives ChFSI."""
    A = laplacian2d(15, 16)
    seen = []

    def coefficients(ctx, degree):
        seen.append((ctx.lowest, ctx.lower, ctx.upper, ctx.iteration, ctx.ritz.numel()))
        return chebyshev_coefficients(ctx, degree)

    vals, _vecs, info = filtered_subspace_iteration(A, 4, PolynomialFilter(coefficients, 12, escalates=True), tol=1e-9)
    ref_vals, _ref_vecs, ref = eigsh(A, k=4, method="chfsi", degree=12, tol=1e-9)
    torch.testing.assert_close(vals, ref_vals)
    assert info.matvecs == ref.matvecs and info.outer_iters == ref.outer_iters == len(seen)
    assert all(lowest <= a < b for lowest, a, b, _, _ in seen)
    assert [s[3] for s in seen] == list(range(len(seen)))
    assert len({s[:3] for s in seen}) > 1  # the interval follows the Ritz values ...
    seen.clear()
    _, _, fixed = filtered_subspace_iteration(A, 4, PolynomialFilter(coefficients, 12), tol=1e-9, reprobe=False)
    assert fixed.converged and len({s[:3] for s in seen}) == 1  # ... unless reprobe=False


def test_matvec_accounting_and_history():
    A = laplacian2d(15, 16)
    _, _, info = eigsh(A, k=4, method="chfsi", degree=10, block=8, probe_steps=30, tol=1e-9)
    # first outer iteration: probe + (degree + 1)·block, nothing locked yet
    assert info.history[0][0] == 30 + 11 * 8
    assert info.history[-1][0] == info.matvecs and len(info.history) == info.outer_iters
    assert info.block == 8 and info.degree >= 10  # the largest degree used
    _, _, fixed = eigsh(A, k=4, method="chfsi", degree=10, block=8, probe_steps=30, tol=1e-9, max_degree=10)
    steps = np.diff([0, *(m for m, _ in fixed.history)])
    assert fixed.degree == 10 and steps[0] == 30 + 11 * 8 and all(s <= 11 * 8 for s in steps[1:])


def _packed_bottom(n: int = 500) -> np.ndarray:
    """``λ_j = (j/n)³``: κ = 1.25e8 and ``(λ_9 − λ_4)/(λ_max − λ_9) ≈ 5e-6`` — a wanted end packed
    against the cut, where a degree-15 Chebyshev filter gains only ``1 + O(1e-3)`` per step."""
    return with_spectrum((np.arange(1, n + 1) / n) ** 3, seed=2)


@pytest.mark.parametrize("method", ["chfsi", "autospec"])
def test_degree_escalation_converges_on_a_packed_wanted_end(method):
    A = _packed_bottom()
    exact = np.linalg.eigvalsh(A)
    vals, _, info = solve_eigenproblem(A, k=4, method=method, max_matvecs=40_000, whole_space=False)
    assert info.converged and info.degree > 100 and not info.whole_space  # escalated far above 15
    np.testing.assert_allclose(np.asarray(vals), exact[:4], rtol=0, atol=1e-8 * exact[-1])
    _, _, fixed = solve_eigenproblem(A, k=4, method=method, max_matvecs=40_000, max_degree=15, whole_space=False)
    assert not fixed.converged and fixed.degree == 15 and fixed.max_residual > 100 * info.max_residual


def test_filter_degree_rule():
    """``⌈3/u⌉`` clamped to ``[base, max_degree]`` and to the dynamic range ``ln(1e6)/(u_L − u)``."""
    a, b = 1.0, 101.0  # ℓ(λ) = (λ − 51)/50
    assert wanted_rate(a, b, 1.5) == 0.0 and filter_degree(15, 4000, a, b, 0.0, 1.5) == 15  # above the cut
    assert filter_degree(15, 4000, a, b, -500.0, -20.0) == 15  # fast: cosh(15·acosh(1.42)) ≫ 10
    u = wanted_rate(a, b, 0.999)
    assert u == pytest.approx(np.arccosh(50.001 / 50))
    assert filter_degree(15, 4000, a, b, 0.999, 0.999) == int(np.ceil(3 / u))
    assert filter_degree(15, 100, a, b, 0.999, 0.999) == 100
    capped = filter_degree(15, 4000, a, b, -5.0, 0.999)
    assert capped < np.ceil(3 / u)
    assert np.cosh(capped * wanted_rate(a, b, -5.0)) / np.cosh(capped * u) <= 1e6


@pytest.mark.parametrize("method", ["chfsi", "autospec"])
def test_switch_to_the_whole_space_when_a_filter_step_costs_n(method, monkeypatch):
    """An escalated degree-m step on c columns costs ``(m + 1)·c >= n`` products: the whole-space
    Rayleigh–Ritz (n products, exact) replaces it."""
    A = _packed_bottom()
    exact = np.linalg.eigvalsh(A)
    vals, vecs, info = eigsh(A, k=4, method=method, max_matvecs=40_000)
    assert info.converged and info.whole_space and "whole space" in info.message
    assert 0 < info.degree and (info.degree + 1) * 8 < 500  # the filter steps before it were cheaper
    iterated = info.history[-2][0]
    assert info.matvecs == iterated + 500 and info.outer_iters == len(info.history)
    np.testing.assert_allclose(np.asarray(vals), exact[:4], rtol=0, atol=1e-12 * exact[-1])
    np.testing.assert_allclose(A @ np.asarray(vecs), np.asarray(vecs) * np.asarray(vals), atol=1e-12)
    _, _, short = eigsh(A, k=4, method=method, max_matvecs=400)  # no room for n products: no switch
    assert not short.whole_space and not short.converged
    monkeypatch.setattr(subspace, "WHOLE_SPACE_MAX_N", 499)  # A too large to hold densely: no switch
    _, _, large = eigsh(A, k=4, method=method, max_matvecs=4000)
    assert not large.whole_space and large.degree > 100


def test_tiny_problems_are_solved_on_the_whole_space():
    """n <= (degree + 1)·block: one Rayleigh–Ritz on all of ℝⁿ (n products) is exact and cheaper
    than one filter step."""
    A = laplacian2d(8, 9)  # n = 72 <= 16·8
    exact = np.linalg.eigvalsh(A.toarray())
    for method in ("chfsi", "rsi"):
        vals, vecs, info = eigsh(A, k=4, method=method, probe_steps=20)
        assert info.converged and info.outer_iters == 1 and info.matvecs == 20 + 72 and info.degree == 0
        assert info.whole_space and "whole space" in info.message
        np.testing.assert_allclose(np.asarray(vals), exact[:4], atol=1e-12)
        np.testing.assert_allclose(np.asarray(vecs).T @ np.asarray(vecs), np.eye(4), atol=1e-12)
    _, _, filtered = solve_eigenproblem(A, k=4, method="chfsi", probe_steps=20, whole_space=False)
    assert filtered.converged and not filtered.whole_space and filtered.degree >= 15


def test_seeded_runs_reproduce():
    A = clustered_spd(200, seed=3)
    v1, _, i1 = eigsh(A, k=4, method="rsi", rng=5, tol=1e-7)
    v2, _, i2 = eigsh(A, k=4, method="rsi", rng=5, tol=1e-7)
    torch.testing.assert_close(v1, v2, rtol=0, atol=0)
    assert i1.matvecs == i2.matvecs


@pytest.mark.parametrize(
    "convert", [torch.from_numpy, spla.aslinearoperator, lambda A: torch.from_numpy(A).to_sparse_csr()]
)
def test_input_types(convert):
    A = laplacian2d(10, 11).toarray()
    exact = np.linalg.eigvalsh(A)
    vals, _, info = eigsh(convert(A), k=4, method="chfsi", tol=1e-9)
    assert info.converged
    np.testing.assert_allclose(np.asarray(vals), exact[:4], atol=1e-8)


def _very_ill_conditioned(n=400):
    """κ = 1e13: one eigenvalue at 1e-13, then 39 spaced by 1e-6, then a log-uniform tail up to 1."""
    lam = np.concatenate([[1e-13], 1e-6 * np.arange(1, 40), np.logspace(-4, 0, n - 40)])
    return with_spectrum(lam, seed=1)


@pytest.mark.parametrize("method", BASELINE_METHODS)
def test_budget_stop_on_very_ill_conditioned_matrix(method):
    A = _very_ill_conditioned()
    vals, vecs, info = solve_eigenproblem(A, k=16, method=method, tol=1e-10, max_matvecs=1000, whole_space=False)
    assert not info.converged
    assert info.matvecs <= 1000
    assert vals.shape == (16,) and np.isfinite(vals).all() and np.isfinite(vecs).all()
    assert np.isfinite(info.max_residual) and info.max_residual > 1e-10
    assert "budget" in info.message


def test_lanczos_fallback_completes_a_degenerate_basis(monkeypatch):
    """ARPACK stopped with its stored Lanczos vectors spanning < k directions: Gaussian vectors
    (counted) complete the Rayleigh–Ritz basis, the pairs are orthonormal and not converged."""
    def stuck(A, k, v0, **kwargs):
        for _ in range(40):
            A.matvec(v0)
        raise spla.ArpackNoConvergence("stuck", np.zeros(0), np.zeros((A.shape[0], 0)))

    monkeypatch.setattr(spla, "eigsh", stuck)
    vals, vecs, info = eigsh(laplacian2d(10, 11), k=4, method="lanczos", probe_steps=20)
    assert vals.shape == (4,) and not info.converged and "ARPACK" in info.message
    assert info.matvecs == 20 + 40 + 3
    np.testing.assert_allclose(np.asarray(vecs).T @ np.asarray(vecs), np.eye(4), atol=1e-10)


def test_stagnation_is_detected_and_reported():
    A = laplacian2d(12, 13)
    vals, _, info = eigsh(A, k=4, method="chfsi", tol=1e-18)
    assert info.stagnated and not info.converged and "stagnated" in info.message
    np.testing.assert_allclose(np.asarray(vals), np.linalg.eigvalsh(A.toarray())[:4], atol=1e-12)
    assert info.max_residual < 1e-13  # the best pairs are returned


@pytest.mark.parametrize("A", [np.zeros((30, 30)), np.eye(30), 3.0 * np.eye(30)])
def test_degenerate_spectra_do_not_break(A):
    vals, _vecs, info = eigsh(A, k=3, method="chfsi")
    assert info.converged
    np.testing.assert_allclose(np.asarray(vals), np.diag(A)[:3])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"k": 0}, "k must be"),
        ({"k": -2}, "k must be"),
        ({"k": 20}, "k must be"),
        ({"k": 25}, "k must be"),
        ({"k": 2.5}, "k must be"),
        ({"which": "LM"}, "which"),
        ({"which": "SM"}, "which"),
        ({"method": "arnoldi"}, "unknown method"),
        ({"method": "autospec", "engine": "linsys-cg-d10"}, "eigfilter engine"),
        ({"method": "autospec", "degree": 12}, "degree-15 filters"),
        ({"tol": 0.0}, "tol"),
        ({"tol": float("nan")}, "tol"),
        ({"degree": 0}, "degree"),
        ({"block": 3}, "block"),
        ({"max_matvecs": 0}, "max_matvecs"),
        ({"max_degree": 10}, "max_degree"),
        ({"max_degree": 20.5}, "max_degree"),
        ({"whole_space": "yes"}, "whole_space"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    A = laplacian2d(4, 5)
    args = {"k": 3} | kwargs
    solver = solve_eigenproblem if "whole_space" in kwargs else eigsh  # the evaluation's switch is not eigsh's
    with pytest.raises(errors.InputValueError, match=match):
        solver(A, **args)


def test_bad_matrices_raise():
    rng = np.random.default_rng(0)
    with pytest.raises(errors.NotSymmetricError):
        eigsh(rng.standard_normal((30, 30)), k=3)
    bad = laplacian2d(5, 6).toarray()
    bad[2, 3] = np.nan
    with pytest.raises(errors.InputValueError, match="non-finite"):
        eigsh(bad, k=3)
    with pytest.raises(errors.InputValueError, match="square"):
        eigsh(np.ones((5, 4)), k=2)
    with pytest.raises(errors.InputTypeError):
        eigsh(np.eye(5) * 1j, k=2)
