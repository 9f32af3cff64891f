"""Deflation of the probe's Ritz vectors (DEF1): exact eigenvectors remove their eigenvalues from
CG's count, the eigenbasis counter used for labels agrees with real deflated PCG, empty spaces are
no deflation, and ``solve`` with a deflating plan returns the solution of the original system."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

import autospec
from autospec.core.operators import as_operator
from autospec.core.probe import lanczos
from autospec.linsys.cg import pcg, pcg_iterations
from autospec.linsys.deflation import DeflatedOperator, Deflation, deflated_pcg_iterations, probe_deflation

RTOL = 1e-8


def _spectrum(n: int = 400, isolated: int = 4) -> torch.Tensor:
    """A few isolated small eigenvalues under a bulk on [1e-2, 1]: what deflation is for."""
    bulk = torch.linspace(1e-2, 1.0, n - isolated, dtype=torch.float64)
    return torch.cat([torch.logspace(-6, -4, isolated, dtype=torch.float64), bulk])


def _dense(lam: torch.Tensor, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((lam.numel(), lam.numel())))
    return (Q * lam.numpy()) @ Q.T, Q


def test_exact_eigenvectors_remove_their_eigenvalues():
    lam = _spectrum()
    w = torch.randn(1, lam.numel(), 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    p = torch.ones(1, lam.numel(), dtype=torch.float64)
    W = torch.eye(lam.numel(), 4, dtype=torch.float64).unsqueeze(0)
    deflated = int(deflated_pcg_iterations(lam, p, w, W, RTOL, 5000)[0])
    rest = w[:, 4:]  # CG on the remaining spectrum, to the same absolute tolerance
    target = RTOL * float(w.norm()) / float(rest.norm())
    reduced = int(pcg_iterations(lam[4:][None], p[:, 4:], rest, target, 5000)[0])
    plain = int(pcg_iterations(lam[None], p, w, RTOL, 5000)[0])
    assert abs(deflated - reduced) <= 1
    assert deflated < 0.7 * plain


def test_empty_deflation_space_is_plain_pcg():
    lam = _spectrum(300)
    w = torch.randn(1, 300, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    p = torch.stack([torch.ones(300, dtype=torch.float64), 1 / (lam + 0.1)])
    W = torch.zeros(2, 300, 3, dtype=torch.float64)
    assert deflated_pcg_iterations(lam, p, w, W, RTOL, 5000).tolist() == \
        pcg_iterations(lam.expand(2, -1), p, w.expand(2, -1, -1), RTOL, 5000).tolist()


def test_deflated_pcg_solves_the_original_system_and_agrees_with_the_eigenbasis_count():
    lam = _spectrum()
    A, Q = _dense(lam)
    b = np.random.default_rng(3).standard_normal(lam.numel())
    op = as_operator(A)
    probe = lanczos(op, steps=60, seed=0)
    deflation = probe_deflation(op, probe, 4)
    assert deflation is not None and deflation.rank == 4
    bt = torch.from_numpy(b).unsqueeze(-1)
    y, info = pcg(DeflatedOperator(op, deflation), deflation.project(bt).squeeze(-1), rtol=RTOL, maxiter=5000)
    x = deflation.solution(bt.squeeze(-1), y).numpy()
    exact = np.linalg.solve(A, b)
    assert info.converged
    assert np.linalg.norm(b - A @ x) <= 1.01 * RTOL * np.linalg.norm(b)
    assert np.linalg.norm(x - exact) <= 1e-3 * np.linalg.norm(exact)  # κ ≈ 1e6: error ≤ κ·rtol
    _, plain = pcg(A, b, rtol=RTOL, maxiter=5000)
    assert info.outer_iters < 0.85 * plain.outer_iters
    # the same run counted in the eigenbasis (how labels count it)
    W = torch.from_numpy(Q.T) @ probe.ritz_vectors(4)
    w = torch.from_numpy(Q.T @ b).reshape(1, -1, 1)
    counted = int(deflated_pcg_iterations(lam, torch.ones(1, lam.numel(), dtype=torch.float64), w, W[None], RTOL,
                                          5000)[0])
    assert abs(counted - info.outer_iters) <= max(2, 0.03 * counted)


def test_dependent_vectors_are_reported_not_used():
    W = torch.ones(50, 2, dtype=torch.float64)
    assert not Deflation(W, 2 * W).ok
    lam = torch.linspace(0.1, 1, 50, dtype=torch.float64)
    spaces = torch.stack([W, torch.eye(50, 2, dtype=torch.float64)])
    counts = deflated_pcg_iterations(lam, torch.ones(2, 50, dtype=torch.float64), torch.ones(1, 50, 1,
                                     dtype=torch.float64), spaces, RTOL, 500)
    assert counts[0] == -1 and 0 < counts[1] <= 50


@pytest.mark.parametrize("scaling", ["none", "jacobi"])
def test_solve_with_a_deflating_plan(monkeypatch, scaling):
    module = importlib.import_module("autospec.linsys.solve")
    learned = importlib.import_module("autospec.linsys.learned")

    def plan(engine, op, probe, deflate=True):
        M, fallback = learned.preconditioner_from_probe(engine, op, probe)
        return M, fallback, 3

    monkeypatch.setattr(module, "plan_from_probe", plan)
    lam = _spectrum(300, isolated=3)
    A, _ = _dense(lam, seed=4)
    A = A + np.diag(np.linspace(0, 1e-3, 300))  # a non-constant diagonal, so Jacobi scaling does something
    b = np.random.default_rng(5).standard_normal(300)
    seen = []
    x, info = autospec.solve(A, b, scaling=scaling, callback=lambda xk: seen.append(np.linalg.norm(b - A @ xk)))
    assert info.deflated == 3 and info.converged
    assert np.linalg.norm(b - A @ x) <= 1.01 * 1e-8 * np.linalg.norm(b)
    assert seen[-1] <= 1.01 * 1e-8 * np.linalg.norm(b)  # the callback sees iterates of the original system
    xt, tinfo = autospec.solve(torch.from_numpy(A), torch.from_numpy(b), scaling=scaling)
    assert isinstance(xt, torch.Tensor) and tinfo.deflated == 3
    assert np.allclose(xt.numpy(), x, rtol=0, atol=1e-10 * np.abs(x).max())
