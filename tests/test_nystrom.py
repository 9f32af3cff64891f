"""Nyström PCG (Frangella–Tropp–Udell): the approximation, the preconditioner's condition number at
the adaptive rank, ``autospec.solve(method="nystrom")`` against a direct solve, the SciPy ``M``,
deflation + polynomial, and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

import autospec
from autospec.core.operators import as_operator
from autospec.errors import InputValueError, NotPositiveDefiniteError
from autospec.sketch import NystromPreconditioner, adaptive_nystrom, nystrom, nystrom_preconditioner


def _spd(eigenvalues: np.ndarray, seed: int = 0) -> np.ndarray:
    n = len(eigenvalues)
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    A = (Q * eigenvalues) @ Q.T
    return (A + A.T) / 2


N = 400
FAST = np.exp(-np.arange(N) / 5.0)  # fast spectral decay: d_eff(1e-6) ≈ 70
MU = 1e-6


def _kappa(A: np.ndarray, P: NystromPreconditioner, mu: float) -> float:
    S = P.sqrt_inverse(torch.eye(A.shape[0], dtype=torch.float64)).numpy()
    ev = np.linalg.eigvalsh(S @ (A + mu * np.eye(A.shape[0])) @ S)
    return float(ev[-1] / ev[0])


def test_nystrom_is_exact_on_a_low_rank_matrix():
    lam = np.zeros(N)
    lam[:12] = np.logspace(0, -3, 12)
    A = _spd(lam)
    approx = nystrom(as_operator(A), 20, rng=0)
    assert approx.rank == 20 and approx.matvecs == 20
    assert len(approx.lam) >= 12
    dense = approx.matmat(torch.eye(N, dtype=torch.float64)).numpy()
    assert np.abs(dense - A).max() < 1e-10
    assert np.allclose(approx.lam[:12].numpy(), lam[:12], rtol=1e-8)


@pytest.mark.parametrize("sketch", ["gaussian", "sparse_sign", "srht"])
def test_adaptive_rank_leaves_a_small_condition_number(sketch):
    A = _spd(FAST)
    approx = adaptive_nystrom(as_operator(A), MU, rng=1, sketch=sketch)
    P = NystromPreconditioner(approx, MU)
    assert approx.rank < N // 2  # the rule stopped well before the whole space
    assert approx.matvecs >= approx.rank
    kappa = _kappa(A, P, MU)
    assert kappa <= 10, (approx.rank, kappa)
    assert kappa < 1e-3 * (FAST[0] + MU) / (FAST[-1] + MU)


@pytest.mark.parametrize("kwargs", [{}, {"rank": 200}, {"scaling": "jacobi"}, {"polynomial": "chebyshev"},
                                    {"polynomial": "autospec"}])
def test_solve_nystrom_agrees_with_a_direct_solve(kwargs):
    A = _spd(FAST, seed=2)
    b = np.random.default_rng(3).standard_normal(N)
    # rtol 1e-9, not 1e-10: κ(A + μI) ≈ 1e6, so 1e-10 sits at the attainable accuracy and a
    # different BLAS can stall just above it (seen on CI: 1.01e-10).
    x, info = autospec.solve(A, b, method="nystrom", mu=MU, rtol=1e-9, rng=4, **kwargs)
    exact = np.linalg.solve(A + MU * np.eye(N), b)
    x = np.asarray(x)
    assert info.converged and info.method == "nystrom"
    assert np.linalg.norm(x - exact) <= 1e-6 * np.linalg.norm(exact)
    assert info.rank > 0
    # matvecs: the sketch (and its error estimates, probe, polynomial) plus one per CG iteration
    assert info.matvecs >= info.rank + info.outer_iters * (info.degree + 1)
    if "polynomial" in kwargs:
        assert info.degree == 10 and info.probe_steps > 0


def test_nystrom_beats_cg_on_fast_decay_and_deflation_cuts_outer_iterations():
    A = _spd(FAST, seed=5)
    b = np.random.default_rng(6).standard_normal(N)
    _, cg = autospec.solve(A, b, method="cg", mu=MU, rtol=1e-8)
    _, ny = autospec.solve(A, b, method="nystrom", mu=MU, rtol=1e-8)
    _, both = autospec.solve(A, b, method="nystrom", mu=MU, rtol=1e-8, polynomial="chebyshev", degree=4)
    assert ny.outer_iters < cg.outer_iters / 5
    assert both.outer_iters < ny.outer_iters


def test_mu_zero_with_a_fixed_rank_and_torch_input():
    lam = np.logspace(0, -4, N)
    A = torch.from_numpy(_spd(lam, seed=7))
    b = torch.randn(N, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x, info = autospec.solve(A, b, method="nystrom", rank=60, rtol=1e-10)
    assert isinstance(x, torch.Tensor) and info.converged and info.rank == 60
    assert torch.allclose(A @ x, b, atol=1e-8 * float(b.norm()))
    x32, info32 = autospec.solve(A.float(), b.float(), method="nystrom", rank=60, rtol=1e-3)
    assert x32.dtype == torch.float32 and info32.converged


def test_scipy_cg_with_the_nystrom_preconditioner():
    A = _spd(FAST, seed=8)
    b = np.random.default_rng(9).standard_normal(N)
    M = nystrom_preconditioner(A, mu=MU, rng=0)
    assert isinstance(M, spla.LinearOperator) and M.shape == (N, N) and M.matvecs >= M.rank > 0
    counts = {}
    for name, pre in [("none", None), ("nystrom", M)]:
        counts[name] = 0

        def count(_, name=name):
            counts[name] += 1

        x, code = spla.cg(A + MU * np.eye(N), b, M=pre, rtol=1e-10, maxiter=5000, callback=count)
        assert code == 0
    assert counts["nystrom"] < counts["none"] / 5
    assert callable(nystrom_preconditioner(torch.from_numpy(A), mu=MU, rank=50, rng=0))


def test_bad_inputs_raise_project_errors():
    A = _spd(FAST[:50])
    b = np.ones(50)
    with pytest.raises(InputValueError, match="mu"):
        autospec.solve(A, b, method="nystrom", mu=-1.0)
    with pytest.raises(InputValueError, match="rank"):
        autospec.solve(A, b, method="nystrom", rank=0)
    with pytest.raises(InputValueError, match="rank"):
        autospec.solve(A, b, method="nystrom", rank=51)
    with pytest.raises(InputValueError, match="polynomial"):
        autospec.solve(A, b, method="nystrom", polynomial="legendre")
    with pytest.raises(InputValueError, match="method='nystrom'"):
        autospec.solve(A, b, method="cg", rank=5)
    with pytest.raises(InputValueError, match="does not match"):
        autospec.solve(A, b[:-1], method="nystrom", mu=1e-3)  # wrong shape
    with pytest.raises(InputValueError, match="rank"):
        nystrom_preconditioner(A, mu=1e-3, rank=51)  # a sketch larger than n
    with pytest.raises(InputValueError, match="unknown sketch"):
        adaptive_nystrom(as_operator(A), 1e-3, sketch="fourier")
    with pytest.raises(InputValueError, match="max_rank"):
        adaptive_nystrom(as_operator(A), 1e-3, max_rank=100)
    indefinite = _spd(np.linspace(-1, 1, 50))
    with pytest.raises(NotPositiveDefiniteError):
        autospec.solve(indefinite, b, method="nystrom", rank=50)
