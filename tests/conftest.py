"""Shared fixtures: small generated SPD problems and the matrices shipped in data/."""

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

if not torch.cuda.is_available():  # Triton kernels (autospec.kernels.triton_updates) run on CPU tensors
    os.environ.setdefault("TRITON_INTERPRET", "1")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "suitesparse"


def poisson2d(m: int) -> sp.csr_matrix:
    """5-point Laplacian on an m×m grid (Dirichlet), SPD, n = m²."""
    T = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(m, m))
    I = sp.eye(m)
    return (sp.kron(I, T) + sp.kron(T, I)).tocsr()


def random_spd(n: int, kappa: float, seed: int = 0) -> np.ndarray:
    """Dense SPD with log-uniform eigenvalues in [1/κ, 1] and a random orthogonal basis."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.logspace(-np.log10(kappa), 0, n)
    return (Q * lam) @ Q.T


@pytest.fixture(scope="module")
def single_thread():
    """Run a module single-threaded: on tiny matrices intra-op threads only add synchronisation
    (and oversubscribe a busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_configure(config):
    # SciPy's iterative-solver tests (run against autospec.pcg by test_scipy_conformance.py) carry
    # this marker of the pytest-fail-slow plugin; registered so --strict-markers accepts the import
    config.addinivalue_line("markers", "fail_slow(limit): SciPy's marker for a slow test (no effect here)")


@pytest.fixture(autouse=True)
def _float64_default():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
