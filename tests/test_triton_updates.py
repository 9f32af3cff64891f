"""The Triton update kernels of the CUDA path (issue 16), run on CPU by Triton's interpreter
(``TRITON_INTERPRET=1``, set by conftest without a GPU): PCG and polynomial application with them
agree with the in-place torch path to 1e-12 (float64)."""

import os

import numpy as np
import pytest
import torch

from autospec.core import native
from autospec.core.operators import as_operator
from autospec.core.recurrences import chebyshev_basis_preconditioner, chebyshev_three_term
from autospec.kernels import polynomial, triton_updates
from autospec.kernels.cg import fused_cg_steps
from autospec.kernels.policy import DtypePolicy

from test_fused import random_sparse_spd

pytestmark = pytest.mark.skipif(not triton_updates.available(), reason="Triton is not installed (the [gpu] extra)")


@pytest.fixture
def triton_on_cpu(monkeypatch):
    """Run the CUDA path's Triton updates on CPU tensors (the interpreter); the C kernels off."""
    if not torch.cuda.is_available():
        assert os.environ.get("TRITON_INTERPRET") == "1"
    monkeypatch.setattr(native, "csr_of", lambda *args: None)
    return lambda on: monkeypatch.setattr(triton_updates, "runs_on", lambda t: on)


def _rel(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("form", ["three_term", "basis"])
@pytest.mark.parametrize("degree", [1, 2, 9])
def test_polynomial_with_triton_updates_matches_torch(triton_on_cpu, form, degree):
    A = random_sparse_spd(700, degree)
    op, s = as_operator(A), float(abs(A).sum(axis=1).max())
    a, b = torch.tensor(0.02), torch.tensor(1.0)
    poly = chebyshev_three_term(a, b, degree) if form == "three_term" else chebyshev_basis_preconditioner(a, b, degree)
    r = torch.randn(700, generator=torch.Generator().manual_seed(degree), dtype=torch.float64)
    out = {}
    for on in (True, False):
        triton_on_cpu(on)
        before = op.matvecs
        out[on] = polynomial.apply(poly, op, r, s)
        assert op.matvecs - before == degree
    assert _rel(out[True], out[False]) <= 1e-12


@pytest.mark.parametrize("columns", [1, 3])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_pcg_with_triton_updates_matches_torch(triton_on_cpu, columns, weighted, dtype):
    A = random_sparse_spd(1500, 7).astype(np.float64)
    op = as_operator(A, dtype=dtype)
    rng = torch.Generator().manual_seed(columns)
    b = torch.randn(1500, columns, generator=rng, dtype=dtype)
    weights = torch.rand(1500, 1, generator=rng, dtype=dtype) + 0.5 if weighted else None
    runs = {}
    for on in (True, False):
        triton_on_cpu(on)
        steps = fused_cg_steps(op, b, torch.zeros_like(b), None, b.clone(), weights, DtypePolicy.native(dtype))
        runs[on] = [(step.x.clone(), step.rnorm.clone()) for step, _ in zip(steps, range(25))]
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for (x1, n1), (x0, n0) in zip(runs[True], runs[False]):
        assert _rel(x1, x0) <= tol and _rel(n1, n0) <= tol
    assert float(runs[True][-1][1].max()) < 0.1 * float(torch.linalg.vector_norm(b, dim=0).min())  # it converges


def test_triton_updates_only_take_cuda_tensors():
    assert not triton_updates.runs_on(torch.zeros(3))
