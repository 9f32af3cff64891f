"""Lanczos and subspace probes against dense eigenvalue references."""

import numpy as np
import pytest
import torch

from autospec import errors
from autospec.core.operators import Diagonal, as_operator
from autospec.core.probe import lanczos, probe, subspace_probe

from conftest import poisson2d, random_spd


def _random_spectrum(rng, n, kappa):
    kind = rng.integers(3)
    if kind == 0:
        lam = np.logspace(0, np.log10(kappa), n)
    elif kind == 1:
        lam = 1 + (kappa - 1) * rng.random(n)
    else:
        lam = np.concatenate([rng.uniform(1, 2, n - 3), [kappa, kappa * 0.999, kappa / 2]])
    return lam * 10.0 ** rng.uniform(-3, 3)


def test_upper_bound_is_safe_on_100_random_spectra():
    rng = np.random.default_rng(7)
    for i in range(100):
        n = int(rng.integers(200, 1200))
        kappa = 10.0 ** rng.uniform(1, 10)
        lam = _random_spectrum(rng, n, kappa)
        m = int(rng.choice([10, 20, 50]))
        pr = lanczos(Diagonal(torch.from_numpy(lam)), steps=m, seed=i)
        assert float(pr.upper) >= lam.max(), (i, m, kappa)
        assert float(pr.theta_max) <= lam.max() * (1 + 1e-12)
        assert float(pr.lower) >= lam.min() * (1 - 1e-12)


def test_full_lanczos_recovers_extremes():
    A = random_spd(80, 1e4, seed=2)
    exact = np.linalg.eigvalsh(A)
    pr = lanczos(A, steps=200, seed=0)
    assert pr.steps == 80 and pr.matvecs == 80
    np.testing.assert_allclose(float(pr.theta_max), exact[-1], rtol=1e-8)
    np.testing.assert_allclose(float(pr.theta_min), exact[0], rtol=1e-8)
    # Ritz residuals bound the distance to the spectrum
    theta = pr.ritz.numpy()
    dist = np.abs(theta[:, None] - exact[None, :]).min(axis=1)
    assert np.all(dist <= pr.residuals.numpy() + 1e-9 * exact[-1])


def test_breakdown_stops_early_on_invariant_subspace():
    lam = np.repeat([1.0, 2.0, 5.0], 30)
    pr = lanczos(np.diag(lam), steps=50, seed=0)
    assert pr.steps == 3 and pr.matvecs == 3
    np.testing.assert_allclose(pr.ritz.numpy(), [1.0, 2.0, 5.0], rtol=1e-10)
    assert float(pr.upper) == pytest.approx(5.0, rel=1e-10)


def test_batched_probe_equals_per_operator_probes_and_restarts_broken_members():
    rng = np.random.default_rng(0)
    lam = torch.from_numpy(np.stack([np.logspace(0, 4, 300), rng.uniform(1, 10, 300)]))
    batch = lanczos(Diagonal(lam), steps=30, seed=5)
    assert batch.ritz.shape == (2, 30)
    for i in range(2):
        single = lanczos(Diagonal(lam[i]), steps=30, seed=5)
        torch.testing.assert_close(batch.ritz[i], single.ritz, rtol=1e-10, atol=1e-10)
        assert float(batch.upper[i]) >= float(lam[i].max())
        assert float(lam[i].min()) <= float(batch.theta_min[i]) <= float(batch.theta_max[i]) <= float(lam[i].max())
    # one member with only 2 distinct eigenvalues breaks down; the other keeps going
    mixed = torch.stack([torch.from_numpy(np.repeat([1.0, 3.0], 150)), lam[0]])
    pr = lanczos(Diagonal(mixed), steps=20, seed=1)
    assert pr.steps == 20
    assert np.all(np.isfinite(pr.ritz.numpy()))
    assert float(pr.upper[0]) >= 3.0 and float(pr.upper[1]) >= 1e4


def test_subspace_probe_finds_the_top():
    A = poisson2d(20)
    exact_max = np.linalg.eigvalsh(A.toarray())[-1]
    pr = subspace_probe(A, block=8, iterations=30, seed=0)
    assert float(pr.upper) >= exact_max
    np.testing.assert_allclose(float(pr.theta_max), exact_max, rtol=1e-2)  # clustered top: slow
    assert pr.matvecs == 8 * 31
    assert float(probe(A, method="subspace", steps=64).upper) >= exact_max


def test_probe_rejects_bad_arguments():
    with pytest.raises(errors.InputValueError, match="at least one"):
        lanczos(np.eye(3), steps=0)
    with pytest.raises(errors.InputValueError, match="unknown probe"):
        probe(np.eye(3), method="power")
    op = as_operator(np.eye(3))
    assert lanczos(op, steps=5).steps == 1
