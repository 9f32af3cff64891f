"""Sketching operators (autospec.kernels.sketch): the subspace-embedding property on random
subspaces, exact agreement of the fast and dense SRHT, both sides, batches, dtypes, seeds, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from autospec.errors import InputTypeError, InputValueError
from autospec.kernels.sketch import SRHT, GaussianSketch, SparseSignSketch, fwht, make_sketch, torch_generator

# Distortion allowed beyond the Marchenko–Pastur edges 1 ± √(k/d): over 20 seeds at n=2048, k=10,
# d=200 the worst excess was 0.01 (Gaussian, sparse sign s=1 and s=8) and 0.05 (SRHT).
SLACK = 0.1

SKETCHES = {
    "gaussian": lambda d, n, seed, **kw: GaussianSketch(d, n, rng=seed, **kw),
    "countsketch": lambda d, n, seed, **kw: SparseSignSketch(d, n, 1, rng=seed, **kw),
    "sparse_sign": lambda d, n, seed, **kw: SparseSignSketch(d, n, 8, rng=seed, **kw),
    "srht": lambda d, n, seed, **kw: SRHT(d, n, rng=seed, **kw),
}


def _orthonormal(n: int, k: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    G = torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.linalg.qr(G).Q.to(dtype)


@pytest.mark.parametrize("kind", sorted(SKETCHES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_subspace_embedding_within_marchenko_pastur(kind, seed):
    n, k, d = 2048, 10, 200
    U = _orthonormal(n, k, 100 + seed)
    sv = torch.linalg.svdvals(SKETCHES[kind](d, n, seed).apply_left(U))
    edge = math.sqrt(k / d)
    assert 1 - edge - SLACK <= float(sv.min()) and float(sv.max()) <= 1 + edge + SLACK


@pytest.mark.parametrize("kind", sorted(SKETCHES))
def test_float32_embedding(kind):
    n, k, d = 1024, 8, 160
    S = SKETCHES[kind](d, n, 3, dtype=torch.float32)
    SU = S.apply_left(_orthonormal(n, k, 7, torch.float32))
    assert SU.dtype == torch.float32
    sv = torch.linalg.svdvals(SU.double())
    edge = math.sqrt(k / d)
    assert 1 - edge - SLACK <= float(sv.min()) and float(sv.max()) <= 1 + edge + SLACK


@pytest.mark.parametrize("n", [1, 2, 7, 64, 100, 1000])
def test_fast_srht_equals_its_dense_form(n):
    S = SRHT(min(n, 5), n, rng=n)
    A = torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    dense = S.dense_form()
    assert torch.allclose(S.to_dense(), dense, rtol=0, atol=1e-12)
    assert torch.allclose(S.apply_left(A), dense @ A, rtol=0, atol=1e-12)
    H = S.hadamard()
    assert torch.allclose(H @ H, torch.eye(S.padded, dtype=H.dtype), atol=1e-12)  # orthonormal and symmetric


def test_fwht_is_the_sylvester_hadamard_transform_and_batched():
    X = torch.randn(4, 2, 32, 3, dtype=torch.float64)
    H = SRHT(1, 32, rng=0).hadamard()
    assert torch.allclose(fwht(X), H @ X, atol=1e-12)
    with pytest.raises(InputValueError, match="power-of-2"):
        fwht(torch.ones(6, 1))


@pytest.mark.parametrize("kind", sorted(SKETCHES))
def test_left_and_right_agree_with_the_dense_matrix_and_batch(kind):
    n, d = 300, 40
    S = SKETCHES[kind](d, n, 5)
    D = S.to_dense()
    assert D.shape == (d, n) == S.shape
    A = torch.randn(2, 3, n, 4, dtype=torch.float64)
    assert torch.allclose(S.apply_left(A), D @ A, atol=1e-12)
    B = torch.randn(2, 5, n, dtype=torch.float64)
    assert torch.allclose(S.apply_right(B), B @ D.T, atol=1e-12)
    v = torch.randn(n, dtype=torch.float64)
    assert torch.allclose(S @ v, D @ v, atol=1e-12)


def test_sparse_sign_structure():
    S = SparseSignSketch(30, 50, 4, rng=0)
    D = S.to_dense()
    assert ((D != 0).sum(0) == 4).all()  # s distinct rows per column
    assert torch.allclose(D.abs()[D != 0], torch.full_like(D[D != 0], 0.5))
    assert torch.allclose((D * D).sum(0), torch.ones(50, dtype=D.dtype))


def test_seeds_reproduce_and_generators_are_accepted():
    a = make_sketch("sparse_sign", 20, 100, rng=4).to_dense()
    assert torch.equal(a, make_sketch("sparse_sign", 20, 100, rng=4).to_dense())
    assert not torch.equal(a, make_sketch("sparse_sign", 20, 100, rng=5).to_dense())
    g1, g2 = np.random.default_rng(0), np.random.default_rng(0)
    assert torch.equal(GaussianSketch(5, 9, rng=g1).to_dense(), GaussianSketch(5, 9, rng=g2).to_dense())
    assert GaussianSketch(5, 9, rng=None).shape == (5, 9)
    assert isinstance(torch_generator(torch.Generator()), torch.Generator)


def test_bad_inputs_raise_project_errors():
    with pytest.raises(InputValueError, match="sketch size"):
        GaussianSketch(0, 10)
    with pytest.raises(InputValueError, match="s <= d"):
        SparseSignSketch(3, 10, 4)
    with pytest.raises(InputValueError, match="d <= N"):
        SRHT(17, 10)
    with pytest.raises(InputValueError, match="unknown sketch"):
        make_sketch("fourier", 3, 10)
    with pytest.raises(InputTypeError, match="float64 or float32"):
        GaussianSketch(3, 10, dtype=torch.float16)
    with pytest.raises(InputTypeError, match="rng"):
        GaussianSketch(3, 10, rng="seed")
    S = SRHT(3, 10, rng=0)
    with pytest.raises(InputValueError, match="needs 10 rows"):
        S.apply_left(torch.ones(9, 2))
    with pytest.raises(InputValueError, match="needs 10 columns"):
        S.apply_right(torch.ones(2, 9))
