"""Fused kernels (issue 16) against the unfused reference recurrences: polynomial application, the
PCG iteration, the partially reorthogonalised probe and the in-place CSR products (float64, 1e-12)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import autospec
from autospec.core import native
from autospec.core.operators import SymmetricScaling, as_operator
from autospec.core.probe import lanczos
from autospec.core.recurrences import chebyshev_basis_preconditioner, chebyshev_three_term
from autospec.kernels import cg as fused_cg
from autospec.kernels import polynomial
from autospec.linsys.cg import cg_steps

from conftest import poisson2d


def random_sparse_spd(n: int, seed: int) -> sp.csr_matrix:
    """Random symmetric sparse matrix, diagonally dominant (SPD), unsorted structure."""
    rng = np.random.default_rng(seed)
    B = sp.random(n, n, density=5 / n, random_state=rng, format="csr")
    A = B + B.T
    return (A + sp.diags(np.asarray(abs(A).sum(axis=1)).ravel() + rng.uniform(0.1, 1.0, n))).tocsr()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(params=["native", "torch"])
def path(request, monkeypatch):
    """Run a test on the C kernels and on the in-place torch fallback."""
    if request.param == "native":
        if native.library() is None:
            pytest.skip("no C compiler: the native kernels are off")
    else:
        monkeypatch.setattr(native, "csr_of", lambda *args: None)
    return request.param


@pytest.mark.parametrize("form", ["three_term", "basis"])
@pytest.mark.parametrize("shape", [(), (1,), (3,), (9,)])  # 9 > the C kernels' BLOCK of 8 columns
@pytest.mark.parametrize("degree, seed", [(9, 0), (9, 1), (1, 2), (2, 3), (0, 4)])
def test_polynomial_application_matches_the_reference_recurrence(path, form, shape, degree, seed):
    A = random_sparse_spd(400, seed)
    op = as_operator(A)
    s = float(abs(A).sum(axis=1).max())
    a, b = torch.tensor(0.01), torch.tensor(1.0)
    poly = chebyshev_three_term(a, b, degree) if form == "three_term" else chebyshev_basis_preconditioner(a, b, degree)
    r = torch.randn(400, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    block = r if r.ndim == 2 else r.unsqueeze(-1)
    reference = (poly.apply(lambda V: op.matmat(V) / s, block) / s).reshape(r.shape)
    before, kept = op.matvecs, r.clone()
    fast = polynomial.apply(poly, op, r, s)
    assert op.matvecs - before == degree * block.shape[-1]
    assert _rel(fast, reference) <= 1e-12
    assert torch.equal(r, kept)  # the input is not modified


def random_banded_spd(n: int, width: int, seed: int, index=np.int32) -> sp.csr_matrix:
    """Random symmetric matrix with |i − j| ≤ width, diagonally dominant (SPD)."""
    A = random_sparse_spd(n, seed).tocoo()
    keep = np.abs(A.row - A.col) <= width
    B = sp.coo_matrix((A.data[keep], (A.row[keep], A.col[keep])), shape=(n, n)).tocsr()
    B = B + sp.eye(n, k=width) + sp.eye(n, k=-width)  # the full bandwidth, also where the random draw is sparse
    B = (B + sp.diags(np.asarray(abs(B).sum(axis=1)).ravel() + 0.5)).tocsr()
    B.indptr, B.indices = B.indptr.astype(index), B.indices.astype(index)
    return B


@pytest.mark.parametrize("form", ["three_term", "basis"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("index", [np.int32, np.int64])
@pytest.mark.parametrize("n, width, degree", [(5000, 20, 10), (5000, 300, 3), (529, 23, 2), (300, 299, 10),
                                              (120_000, 40, 6)])  # n >= PARALLEL_ROWS: the threads share the levels
@pytest.mark.parametrize("threads", [1, 2])
def test_wavefront_application_is_the_step_by_step_one(monkeypatch, form, dtype, index, n, width, degree, threads):
    """The one-sweep (matrix-powers) application computes every row as the per-step kernels do: equal bits."""
    if native.library() is None:
        pytest.skip("no C compiler: the native kernels are off")
    monkeypatch.setattr(native, "threads", lambda: threads)
    A = random_banded_spd(n, width, seed=n + width, index=index).astype(np.float64 if dtype == torch.float64 else np.float32)
    op = as_operator(A, dtype=dtype)
    a, b = torch.tensor(0.05), torch.tensor(1.0)
    poly = chebyshev_three_term(a, b, degree) if form == "three_term" else chebyshev_basis_preconditioner(a, b, degree)
    r = torch.randn(n, generator=torch.Generator().manual_seed(degree), dtype=dtype)
    s = float(abs(A).sum(axis=1).max())
    out = {}
    for budget in (1 << 40, 0):
        monkeypatch.setattr(native, "WAVE_CACHE_BYTES", budget)
        assert (native.wave(op, native.csr_of(op, r), degree) is not None) == (budget > 0)
        before = op.matvecs
        out[budget] = polynomial.apply(poly, op, r, s)
        assert op.matvecs - before == degree
    assert torch.equal(out[1 << 40], out[0])


def test_wavefront_needs_a_window_that_fits_the_cache(monkeypatch):
    if native.library() is None:
        pytest.skip("no C compiler: the native kernels are off")
    op = as_operator(random_banded_spd(5000, 40, seed=0))
    csr = native.csr_of(op, torch.zeros(5000, dtype=torch.float64))
    monkeypatch.setattr(native, "threads", lambda: 1)
    layout = native.wave(op, csr, 10)
    assert layout.lag == 40 + layout.block and layout.cap >= 3 * layout.lag
    monkeypatch.setattr(native, "WAVE_CACHE_BYTES", 3 * layout.lag * 60)  # a row: 4-5 entries of 12 bytes + 3 vectors
    assert native.wave(op, csr, 2) == layout  # the window grows with the degree: 2·lag rows fit, 10·lag do not
    assert native.wave(op, csr, 10) is None
    assert native.wave(op, csr, 1) is None  # one step: nothing to overlap


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("degrees", [[1, 2, 3], [5, 5, 5, 5], [12, 3, 7, 1, 9, 9, 2, 4, 15]])
def test_column_filter_kernel_matches_the_recurrence(dtype, degrees):
    """Per-column Chebyshev degrees (ChASE-style) in C, the rescaling folded into the next pass,
    against the torch recurrence of autospec.eigen.columns (1e-12 float64)."""
    if native.library() is None:
        pytest.skip("no C compiler: the native kernels are off")
    from autospec.eigen.columns import column_filter
    A = random_sparse_spd(600, len(degrees))
    op = as_operator(A, dtype=dtype)
    V = torch.randn(600, len(degrees), generator=torch.Generator().manual_seed(1), dtype=dtype)
    AV = op.matmat(V)
    a, b, m = 2.0, float(abs(A).sum(axis=1).max()), torch.tensor(degrees)
    reference = column_filter(op.matmat, V, AV, a, b, m)
    before = op.matvecs
    fast = polynomial.column_chebyshev(op, V, AV, a, b, m)
    assert op.matvecs - before == int((m - 1).sum())
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    assert float(((fast - reference).abs().amax(0) / reference.abs().amax(0)).max()) <= tol
    assert polynomial.column_chebyshev(as_operator(A.toarray(), dtype=dtype), V, AV, a, b, m) is None  # dense: no kernel


def _cg_run(steps, k: int):
    """``(x, r, pᵀAp, rᵀz)`` of the first k steps (copies: the fused iteration works in place)."""
    return [tuple(t.clone() for t in step[:4]) for _, step in zip(range(k), steps)]


@pytest.mark.parametrize("preconditioned", [False, True])
@pytest.mark.parametrize("columns", [1, 3])
def test_fused_cg_matches_the_reference_iteration(path, preconditioned, columns):
    A = random_sparse_spd(500, 3)
    op = as_operator(A)
    b = torch.randn(500, columns, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    M = None
    if preconditioned:
        poly, s = chebyshev_three_term(torch.tensor(0.05), torch.tensor(1.0), 4), float(abs(A).sum(axis=1).max())
        M = (lambda R: poly.apply(lambda V: op.matmat(V) / s, R) / s)
    weights = torch.rand(500, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64) + 0.5
    reference = _cg_run(cg_steps(op.matmat, b, torch.zeros_like(b), M, r0=b.clone()), 25)
    fused = _cg_run(fused_cg.fused_cg_steps(op, b, torch.zeros_like(b), M, b.clone(), weights), 25)
    # normwise, against each quantity's first value (r, rᵀz and pᵀAp shrink by orders of magnitude)
    for i in range(4):
        scale = reference[0][i].abs().max()
        error = max(float((f[i] - ref[i]).abs().max()) for f, ref in zip(fused, reference))
        assert error <= 1e-12 * float(scale), (i, error / float(scale))
    for _, step in zip(range(5), fused_cg.fused_cg_steps(op, b, torch.zeros_like(b), M, b.clone(), weights)):
        torch.testing.assert_close(step.rnorm, (weights * step.r).norm(dim=0), rtol=1e-12, atol=0)


@pytest.mark.parametrize("method", ["cg", "chebyshev"])
def test_solve_is_the_same_fused_or_not(method, monkeypatch):
    A = poisson2d(24)
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    x_fused, info_fused = autospec.solve(A, b, method=method, rtol=1e-10, scaling="jacobi")
    monkeypatch.setattr("autospec.linsys.cg.fusable", lambda *args: False)
    monkeypatch.setattr(polynomial, "supported", lambda *args: False)
    x_ref, info_ref = autospec.solve(A, b, method=method, rtol=1e-10, scaling="jacobi")
    assert info_fused.outer_iters == info_ref.outer_iters and info_fused.matvecs == info_ref.matvecs
    assert np.abs(x_fused - x_ref).max() <= 1e-12 * np.abs(x_ref).max()
    assert info_fused.converged and abs(info_fused.rel_residual - info_ref.rel_residual) <= 1e-12
    if method == "chebyshev":
        assert info_fused.probe_seconds > 0 and info_fused.probe_spmv_equivalents > 0


def test_callbacks_get_a_snapshot_of_x_not_the_buffer():
    A = torch.from_numpy(poisson2d(10).toarray()).to_sparse_csr()
    b = torch.ones(100, dtype=torch.float64)
    seen = []
    autospec.pcg(A, b, rtol=1e-10, callback=seen.append)
    assert len(seen) > 3 and not torch.equal(seen[0], seen[-1])


def _outlier_spectrum(n: int) -> sp.csr_matrix:
    """Bulk in [1, 2] and ten large outliers: Ritz values converge fast, orthogonality is lost early."""
    return sp.diags(np.concatenate([np.linspace(1, 2, n - 10), np.logspace(3, 5, 10)])).tocsr()


@pytest.mark.parametrize("A", [poisson2d(40), random_sparse_spd(1500, 5), _outlier_spectrum(3000)],
                         ids=["poisson", "random", "outliers"])
def test_partial_reorthogonalisation_keeps_the_ritz_values(A):
    full, partial = lanczos(A, 50, seed=3, reorth="full"), lanczos(A, 50, seed=3, reorth="partial")
    assert partial.steps == full.steps and partial.matvecs >= full.matvecs
    assert float((partial.ritz - full.ritz).abs().max() / full.ritz[-1]) <= 1e-10
    assert float((partial.weights - full.weights).abs().max()) <= 1e-8
    assert partial.seconds > 0 and partial.spmv_equivalents > 0


def test_partial_probe_rebuilds_its_basis_for_ritz_vectors():
    A = poisson2d(30)
    full, partial = lanczos(A, 30, seed=1, reorth="full"), lanczos(A, 30, seed=1, reorth="partial")
    assert partial.basis is None and partial.reorthogonalisations == 0
    Y = partial.ritz_vectors(3)
    residual = torch.from_numpy(A @ Y.numpy()) - Y * partial.ritz[:3]
    torch.testing.assert_close(residual.norm(dim=0), full.residuals[:3], rtol=1e-6, atol=1e-10)


def test_reorthogonalising_probe_builds_the_basis_by_replay():
    pr = lanczos(_outlier_spectrum(3000), 40, seed=0, reorth="partial")
    assert pr.reorthogonalisations > 0 and pr.basis is not None
    Q = pr.basis
    assert float((Q @ Q.mT - torch.eye(Q.shape[0], dtype=Q.dtype)).abs().max()) <= 1e-7


def test_in_place_products_and_the_scaled_csr():
    A = random_sparse_spd(300, 7)
    op = as_operator(A)
    V = torch.randn(300, 2, dtype=torch.float64)
    out = torch.ones(300, 2, dtype=torch.float64)
    op.matmat_add(V, out)
    assert op.matvecs == 2
    torch.testing.assert_close(out, 1 + torch.from_numpy(A @ V.numpy()), rtol=1e-14, atol=1e-14)
    d = torch.rand(300, dtype=torch.float64) + 0.5
    crow, col, values = SymmetricScaling(op, d).csr()
    scaled = sp.csr_matrix((values.numpy(), col.numpy(), crow.numpy()), shape=A.shape)
    np.testing.assert_allclose(scaled.toarray(), (d.numpy()[:, None] * A.toarray()) * d.numpy(), rtol=1e-15)


def test_dtype_policy_is_explicit_and_never_downcasts():
    from autospec import errors
    from autospec.kernels.policy import DtypePolicy

    with pytest.raises(errors.InputTypeError, match="downcast"):
        DtypePolicy(torch.float64, torch.float32)
    with pytest.raises(errors.InputTypeError):
        DtypePolicy(torch.float32, torch.bfloat16)
    op = as_operator(poisson2d(8))  # float64
    b = torch.ones(64, 1, dtype=torch.float32)
    with pytest.raises(errors.InputTypeError, match="explicitly"):
        next(fused_cg.fused_cg_steps(op, b, torch.zeros_like(b), None, b.clone(), policy=DtypePolicy.native(torch.float32)))


@pytest.mark.parametrize("storage", [torch.float32, torch.bfloat16])
def test_low_precision_storage_with_wide_accumulation_converges(storage):
    from autospec.kernels.policy import DtypePolicy

    A64 = torch.from_numpy(random_sparse_spd(200, 9).toarray())
    op = as_operator(A64.to(storage))  # the caller's explicit conversion
    b = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    policy = DtypePolicy(storage, torch.float64)
    steps = fused_cg.fused_cg_steps(op, b.to(storage), torch.zeros(200, 2, dtype=storage), None, b.to(storage),
                                    policy=policy)
    for _, step in zip(range(40), steps):
        assert step.x.dtype == storage and step.rz.dtype == torch.float64
    x = step.x.double()
    floor = 1e-5 if storage == torch.float32 else 3e-2  # the storage's rounding of A, b and x
    assert float((b - A64 @ x).norm() / b.norm()) <= floor


def test_native_kernels_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("AUTOSPEC_NATIVE", "0")
    assert native.library.__wrapped__() is None
