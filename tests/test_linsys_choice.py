"""The learned linsys choice: the candidate menu, exact labels, the task, training from labels,
and the shipped engine's behaviour on held-out spectra."""

import math

import numpy as np
import pytest
import torch

import autospec
from autospec import errors
from autospec.core.intervals import chebyshev_bounds
from autospec.core.operators import Diagonal
from autospec.core.probe import lanczos
from autospec.core.recurrences import evaluate
from autospec.core.spectra import sample_spectrum
from autospec.learned import build_task, load
from autospec.linsys import candidates
from autospec.linsys.cg import pcg_iterations
from autospec.linsys.choice import LinsysChoiceTask, quadrature_features
from autospec.linsys.labels import LabelSettings, build_labels, label_costs, label_spectrum, load_labels, save_labels
from autospec.linsys.preconditioners import chebyshev_preconditioner, polynomial_is_safe
from autospec.matrices.random_spd import KINDS, random_operator

from conftest import poisson2d


def _spectrum(family="power_law", n=600, kappa=1e5, seed=0):
    return sample_spectrum(torch.Generator().manual_seed(seed), family, n, kappa)


def _count(lam, poly, scale, w, max_iters=3000):
    x = lam / scale
    return int(pcg_iterations(x[None], evaluate(poly, x)[None], w, 1e-8, max_iters)[0])


def test_candidate_zero_and_one_are_the_classical_chebyshev_preconditioners():
    lam = _spectrum()
    probe = lanczos(Diagonal(lam), steps=30, seed=1)
    s = float(LinsysChoiceTask.scale(probe))
    grid = torch.logspace(-6, 0, 50, dtype=torch.float64)
    for index, bounds in ((0, "ritz"), (1, "petsc")):
        a, b = chebyshev_bounds(probe, bounds)
        reference = chebyshev_preconditioner(Diagonal(lam), probe, 10, bounds).polynomial(grid * s)
        ours = evaluate(candidates.candidate(probe, index, 10), grid) / s
        torch.testing.assert_close(ours, reference, rtol=1e-10, atol=0)


def test_lower_grid_spans_the_stated_range_and_menu_size():
    probe = lanczos(Diagonal(_spectrum()), steps=30, seed=1)
    g = candidates.lower_grid(probe)
    s = LinsysChoiceTask.scale(probe)
    assert g.shape == (candidates.GRID,) and bool((g.diff() > 0).all())
    assert math.isclose(float(g[0]), 0.3 * float(probe.theta_min / s), rel_tol=1e-12)
    assert math.isclose(float(g[-1]), 0.5, rel_tol=1e-12)
    assert candidates.COUNT == (2 + candidates.GRID + len(candidates.SHAPED_LOWERS)
                                + len(candidates.DEFLATIONS) * len(candidates.DEFLATED_LOWERS))


def test_resolved_top_finds_isolated_large_ritz_values_only():
    theta = np.array([0.01, 0.02, 0.03, 0.5, 0.8, 1.0])
    residuals = np.array([0.01, 0.01, 0.01, 1e-6, 1e-6, 1e-6])
    assert candidates.resolved_top(theta, residuals) == [5, 4, 3]
    residuals[4] = 0.1  # no longer resolved: the scan stops there
    assert candidates.resolved_top(theta, residuals) == [5]


def test_shaped_candidate_is_safe_and_wins_on_isolated_top_eigenvalues():
    """A power-law spectrum (isolated large eigenvalues): the probe-shaped minimax polynomial is
    positive on the safeguard grid and needs fewer PCG iterations than Chebyshev on the same lower end."""
    lam = _spectrum("power_law", 800, 1e4, seed=3)
    probe = lanczos(Diagonal(lam), steps=50, seed=0)
    s = LinsysChoiceTask.scale(probe)
    w = torch.randn(1, lam.numel(), 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert candidates.resolved_top((probe.ritz / s).numpy(), (probe.residuals / s).numpy())
    wins = 0
    for k, lower_index in enumerate(candidates.SHAPED_LOWERS):
        shaped = candidates.candidate(probe, candidates.CHEBYSHEV_COUNT + k, 10)
        assert shaped is not None and polynomial_is_safe(shaped, float(probe.upper / s))
        chebyshev = candidates.candidate(probe, 2 + lower_index, 10)
        wins += _count(lam, shaped, s, w) < _count(lam, chebyshev, s, w)
    assert wins >= len(candidates.SHAPED_LOWERS) - 1


def test_labels_are_exact_pcg_counts_and_round_trip(tmp_path):
    settings = LabelSettings(probe_steps=20, max_iters=800)
    lam = _spectrum("uniform", 300, 1e3)
    w = torch.randn(1, 300, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    probe = lanczos(Diagonal(lam), steps=20, seed=2)
    counts = label_spectrum(lam, w, probe, settings)
    assert counts.shape == (candidates.COUNT,)
    s = LinsysChoiceTask.scale(probe)
    for index in (0, 1, 7):
        assert int(counts[index]) == _count(lam, candidates.candidate(probe, index, 10), s, w, 800)

    labelled = build_labels([("uniform", lam), ("clustered", _spectrum("clustered", 200, 1e4))], settings, seed=5)
    path = save_labels(tmp_path / "l.safetensors", labelled, settings)
    tensors, meta = load_labels(path)
    assert meta["families"] == ["uniform", "clustered"] and meta["probe_steps"] == 20
    assert tensors["counts"].shape == (2, candidates.COUNT) and tensors["n"].tolist() == [300, 200]
    costs = label_costs(torch.tensor([[10, 801]]), 800)
    assert torch.allclose(costs, torch.tensor([[math.log(10), math.log(1600)]], dtype=torch.float64))


def test_bad_labelled_sets_raise(tmp_path):
    with pytest.raises(errors.ArtifactError, match="does not exist"):
        load_labels(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(errors.ArtifactError, match="not readable"):
        load_labels(junk)


def test_zero_output_engine_is_the_ritz_chebyshev_start():
    task = build_task({"name": "linsys-choice"})
    probe = lanczos(Diagonal(_spectrum()), steps=30, seed=0)
    zero = (torch.zeros(candidates.COUNT, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64))
    poly, s = task.polynomial(probe, zero)
    start, s0 = task.polynomial(probe)
    x = torch.logspace(-5, 0, 40, dtype=torch.float64)
    torch.testing.assert_close(evaluate(poly, x), evaluate(start, x), rtol=1e-12, atol=0)
    assert float(s) == float(s0)


def test_choice_loss_ranking_and_chosen_cost():
    task = LinsysChoiceTask()
    costs = torch.tensor([[3.0, 2.0, 1.0], [1.0, 1.0, 4.0]], dtype=torch.float64)
    perfect = costs - costs[:, :1]
    assert float(task.loss(perfect, costs)) == 0.0
    assert task.ranking(torch.zeros(3)).tolist() == [0, 1, 2]  # ties keep index order: zero output → candidate 0
    assert task.chosen(perfect, costs).tolist() == [1.0, 1.0]
    with pytest.raises(errors.InputValueError):
        LinsysChoiceTask(huber=0)


def test_quadrature_features_need_a_lanczos_probe():
    probe = lanczos(Diagonal(_spectrum()), steps=20, seed=0)
    tokens, glob = quadrature_features(probe, LinsysChoiceTask.scale(probe))
    assert tokens.shape == (20, 5) and glob.shape == (3,) and bool(torch.isfinite(tokens).all())
    assert math.isclose(float(glob[1]), math.log(600) / 10, rel_tol=1e-6)
    probe.weights = None
    with pytest.raises(errors.InputValueError, match="Lanczos probe"):
        quadrature_features(probe, LinsysChoiceTask.scale(probe))


@pytest.mark.parametrize("kind", KINDS)
def test_random_operators_are_sparse_spd(kind):
    name, A = random_operator(11, kind, n_range=(100, 200))
    assert name.startswith(kind) and abs(A - A.T).max() <= 1e-10 * abs(A).max()
    assert np.linalg.eigvalsh(A.toarray())[0] > 0 and A.nnz < 0.2 * A.shape[0] ** 2


def test_shipped_engine_is_a_choice_engine_and_solves():
    engine = load("linsys-cg-d10")
    assert engine.task.name == "linsys-choice" and engine.degree == 10 and engine.probe_steps == 50
    A = poisson2d(20)
    b = np.ones(A.shape[0])
    x, info = autospec.solve(A, b, method="autospec", rtol=1e-10)
    assert info.converged and np.linalg.norm(b - A @ np.asarray(x)) <= 1.01e-10 * np.linalg.norm(b)


def test_shipped_engine_beats_its_chebyshev_start_on_held_out_spectra():
    """Behaviour, not frozen numbers: on held-out spectra (seeds never used in training, n above
    the training range) the learned choice needs fewer PCG iterations than its zero-output start
    (Chebyshev, ritz bounds) in the median, and is never far worse."""
    engine = load("linsys-cg-d10")
    task = engine.task
    ratios = []
    gen = torch.Generator().manual_seed(31_000_000)
    for i, family in enumerate(["uniform", "isolated_small", "power_law", "clustered", "marchenko_pastur", "mixture",
                                "laplacian_2d", "power_law", "uniform", "isolated_small"]):
        lam = sample_spectrum(gen, family, 2500, 10 ** (2 + 5 * float(torch.rand(1, generator=gen))))
        w = torch.randn(1, lam.numel(), 1, generator=gen, dtype=torch.float64)
        probe = lanczos(Diagonal(lam), steps=50, seed=i)
        poly, s = engine.coefficients_from_probe(probe)
        start, s0 = task.polynomial(probe)
        ratios.append(_count(lam, poly, s, w) / _count(lam, start, s0, w))
    assert float(np.median(ratios)) <= 0.9 and max(ratios) <= 1.5


def test_train_from_labels_exports_a_loadable_engine(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from autospec.linsys.labels import spectra_source
    from autospec.training.train import train
    from conftest import REPO

    settings = LabelSettings(probe_steps=12, max_iters=500)
    path = save_labels(tmp_path / "labels.safetensors", build_labels(spectra_source(16, 0, 3), settings, 3), settings)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True,
                      overrides=[f"data.path={path}", "data.batch_size=4", "probe.steps=12", "task.max_iters=500",
                                 "trainer.max_steps=4", "trainer.val_check_interval=2", "logger=csv"])
    with open_dict(cfg):
        cfg.paths.output_dir = cfg.hydra.runtime.output_dir = str(tmp_path)
    HydraConfig.instance().set_config(cfg)
    result = train(cfg)
    assert "val/vs_best_classical" in result["metrics"]
    engine = load(result["artifact"])
    assert engine.task.name == "linsys-choice" and engine.probe_steps == 12
    A = poisson2d(12)
    b = np.ones(A.shape[0])
    x, info = autospec.solve(A, b, method="autospec", engine=str(result["artifact"]), probe_steps=12, rtol=1e-10)
    assert info.converged
    with pytest.raises(errors.InputValueError, match="probed with 12 steps"):
        from autospec.training.labelled import LabelledDataModule
        LabelledDataModule(str(path), probe_steps=50).setup()
