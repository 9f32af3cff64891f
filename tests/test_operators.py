"""Operator adapters agree with each other, count matvecs, and reject bad input clearly."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from autospec import errors
from autospec.core.batched import DenseBatch, GramBatch
from autospec.core.operators import (
    CallableOperator,
    Diagonal,
    SymmetricScaling,
    TorchMatrix,
    as_operator,
    as_rhs,
)
from autospec.core.probe import lanczos

from conftest import poisson2d, random_spd


def _adapters(A: np.ndarray):
    return {
        "numpy": A,
        "csr": sp.csr_matrix(A),
        "coo": sp.coo_matrix(A),
        "csc": sp.csc_array(A),
        "linear_operator": spla.aslinearoperator(A),
        "torch_dense": torch.from_numpy(A),
        "torch_csr": torch.from_numpy(A).to_sparse_csr(),
        "callable_torch": CallableOperator(lambda V: torch.from_numpy(A) @ V, A.shape[0], torch.float64, numpy=False),
        "callable_numpy": CallableOperator(lambda V: A @ V, A.shape[0], torch.float64, numpy=True),
    }


@pytest.mark.parametrize("kind", list(_adapters(np.eye(2))))
def test_adapters_match_numpy_and_count(kind):
    A = random_spd(30, 1e3, seed=1)
    op = as_operator(_adapters(A)[kind], symmetric=True)
    V = torch.randn(30, 4, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(op.matmat(V).numpy(), A @ V.numpy(), rtol=1e-12, atol=1e-12)
    assert op.matvecs == 4
    batched = torch.randn(2, 3, 30, 2, generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(op.matmat(batched).numpy(), A @ batched.numpy(), rtol=1e-12, atol=1e-12)
    assert op.matvecs == 6
    assert op.shape == (30, 30) and op.dtype == torch.float64


def test_diagonal_is_batched():
    lam = torch.rand(5, 40)
    op = Diagonal(lam)
    V = torch.randn(5, 40, 3)
    torch.testing.assert_close(op.matmat(V), lam.unsqueeze(-1) * V)
    assert op.batch_shape == (5,) and op.matvecs == 3


def test_jacobi_scaling_operator_and_diagonal():
    A = poisson2d(6) + sp.diags(np.arange(36.0))
    d = 1 / np.sqrt(A.diagonal())
    op = SymmetricScaling(as_operator(A), torch.from_numpy(d))
    dense = op.to_dense().numpy()
    np.testing.assert_allclose(dense, (d[:, None] * A.toarray()) * d[None, :], rtol=1e-14)
    np.testing.assert_allclose(op.diagonal().numpy(), np.ones(36), rtol=1e-14)
    for adapter in ("numpy", "csr", "torch_dense", "torch_csr"):
        np.testing.assert_allclose(as_operator(_adapters(A.toarray())[adapter]).diagonal().numpy(), A.diagonal())


@pytest.mark.parametrize(
    "matrix, exc, message",
    [
        (np.ones((3, 4)), errors.InputValueError, "square"),
        (np.ones((2, 2, 2)), errors.InputValueError, "2-D"),
        (np.zeros((0, 0)), errors.InputValueError, "empty"),
        (np.array([[1.0, np.nan], [np.nan, 1.0]]), errors.InputValueError, "non-finite"),
        (sp.csr_matrix(np.array([[1.0, np.inf], [np.inf, 1.0]])), errors.InputValueError, "non-finite"),
        (np.eye(3) * (1 + 1j), errors.InputTypeError, "complex"),
        (torch.eye(3, dtype=torch.complex128), errors.InputTypeError, "complex"),
        ("not a matrix", errors.InputTypeError, "unsupported"),
        (lambda v: v, errors.InputTypeError, "callable has no size"),
        (np.array([[1.0, 2.0], [0.0, 1.0]]), errors.NotSymmetricError, "not symmetric"),
        (torch.tensor([[1.0, 2.0], [0.0, 1.0]]), errors.NotSymmetricError, "not symmetric"),
        (spla.aslinearoperator(np.array([[1.0, 2.0], [0.0, 1.0]])), errors.NotSymmetricError, "random x, y"),
    ],
)
def test_bad_operators_raise_specific_errors(matrix, exc, message):
    with pytest.raises(exc, match=message):
        as_operator(matrix, symmetric=True)
    assert issubclass(exc, errors.AutospecError)


def test_nonsymmetric_allowed_when_not_required():
    op = as_operator(np.array([[1.0, 2.0], [0.0, 1.0]]))
    assert op.shape == (2, 2)


def test_randomised_symmetry_check_accepts_symmetric_matrix_free():
    A = random_spd(50, 1e6, seed=3)
    as_operator(spla.aslinearoperator(A), symmetric=True)


@pytest.mark.parametrize(
    "b, exc, message",
    [
        (np.ones(4), errors.InputValueError, "does not match"),
        (np.ones((3, 2, 2)), errors.InputValueError, "does not match"),
        (np.array([1.0, np.nan, 0.0]), errors.InputValueError, "non-finite"),
        (np.ones(3) * 1j, errors.InputTypeError, "complex"),
    ],
)
def test_bad_right_hand_sides(b, exc, message):
    op = as_operator(np.eye(3))
    with pytest.raises(exc, match=message):
        as_rhs(b, op)


def test_block_of_wrong_height_is_rejected():
    op = as_operator(np.eye(3))
    with pytest.raises(errors.InputValueError, match="cannot be applied"):
        op.matmat(torch.ones(4, 1))


def test_dense_batch_probe_equals_the_probes_of_its_members():
    gen = torch.Generator().manual_seed(7)
    B = torch.randn(3, 40, 40, generator=gen, dtype=torch.float64)
    A = B @ B.mT
    batched = lanczos(DenseBatch(A), steps=8, seed=3)
    for i in range(3):
        single = lanczos(TorchMatrix(A[i]), steps=8, seed=3)
        torch.testing.assert_close(batched.ritz[i], single.ritz, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(DenseBatch(A).diagonal(), A.diagonal(dim1=-2, dim2=-1))
    with pytest.raises(errors.InputValueError, match="square"):
        DenseBatch(torch.ones(3, 4, 5))


def test_gram_batch_applies_g_gt_without_forming_it():
    G = torch.randn(2, 5, 9, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    V = torch.randn(2, 5, 3, dtype=torch.float64)
    op = GramBatch(G)
    torch.testing.assert_close(op.matmat(V), G @ G.mT @ V)
    assert op.n == 5 and op.matvecs == 3
    torch.testing.assert_close(lanczos(op, steps=5, seed=1).ritz, lanczos(DenseBatch(G @ G.mT), steps=5, seed=1).ritz)


@pytest.mark.parametrize("layout", ["csr", "coo"])
def test_cpu_torch_sparse_runs_on_scipys_product_and_keeps_its_dtype(layout, recwarn):
    A = torch.from_numpy(poisson2d(8).toarray()).float()
    T = A.to_sparse_csr() if layout == "csr" else A.to_sparse()
    op = as_operator(T, symmetric=True)
    assert op.dtype == torch.float32 and type(op).__name__ == "ScipyMatrix"
    V = torch.randn(64, 3, dtype=torch.float32)
    torch.testing.assert_close(op.matmat(V), A @ V)
    np.testing.assert_allclose(op.diagonal().numpy(), A.diagonal().numpy())
    assert not [w for w in recwarn if "Sparse" in str(w.message)]  # no beta-state warnings from autospec
