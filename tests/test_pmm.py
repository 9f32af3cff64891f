"""The Parametric Matrix Model backbone (issue 20): permutation invariance, finite and well-defined
eigenvalue gradients at (near-)degenerate spectra, the artifact round trip, the Hydra option, and
that it learns from probes (benchmarks/bench_backbones.py trains it on the real tasks)."""

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from autospec import errors
from autospec.engine.artifact import write_artifact
from autospec.core.operators import Diagonal
from autospec.core.probe import lanczos
from autospec.core.spectra import sample_spectra
from autospec.engine.model import Engine, probe_features
from autospec.engine.pmm import PMM, smooth_eigvalsh
from autospec.learned import build_task, load

from conftest import REPO

CHOICE = {"name": "linsys-choice", "degree": 10}
LAYOUT = build_task(CHOICE).layout  # one score per candidate, 5 token and 3 global features
SMALL = {"backbone": "pmm", "width": 16, "depth": 1, "matrix_size": 8, "eigenvalues": 4, "inputs": 8}


def _randomize_heads(engine: Engine, seed: int = 0) -> Engine:
    """Heads start at zero (the untrained engine is the classical start); give them weights."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in engine.global_head.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return engine


@pytest.mark.parametrize("structure", ["dense", "tridiagonal"])
def test_engine_is_permutation_invariant(structure):
    torch.manual_seed(0)
    engine = _randomize_heads(Engine(**LAYOUT, **{**SMALL, "eigenvalues": 2}, structure=structure))
    tokens, glob = torch.randn(6, 50, 5), torch.randn(6, 3)
    out = engine(tokens, glob)[0]
    shuffled = engine(tokens[:, torch.randperm(50)], glob)[0]
    assert out.abs().max() > 1e-3  # not trivially zero
    torch.testing.assert_close(shuffled, out, rtol=1e-10, atol=1e-10)


def _rotated(values: torch.Tensor, seed: int = 0) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(len(values), len(values), generator=torch.Generator().manual_seed(seed)))
    return (q * values) @ q.T


@pytest.mark.parametrize("values", [[1.0, 1.0 + 1e-12, 1.0 + 2e-12, 3.0], [0.0, 0.0, 0.0, 0.0],
                                    [-2.0, 5e-9, -5e-9, 2.0]])
def test_eigenvalue_gradients_are_finite_and_defined_at_near_degeneracy(values):
    matrix = _rotated(torch.tensor(values)).requires_grad_()
    weights = torch.tensor([1.0, -2.0, 0.5, 3.0])
    (smooth_eigvalsh(matrix) * weights).sum().backward()
    grad = matrix.grad
    assert torch.isfinite(grad).all() and grad.abs().max() <= weights.abs().max() + 1e-12
    # inside a degenerate cluster the gradient is the cluster's mean weight on its projector, so it
    # does not depend on the eigenvectors LAPACK happened to return (a second basis, same answer)
    again = _rotated(torch.tensor(values), seed=1).requires_grad_()
    (smooth_eigvalsh(again) * weights).sum().backward()
    v = torch.linalg.eigh(matrix.detach())[1]
    w = torch.linalg.eigh(again.detach())[1]
    torch.testing.assert_close(v.T @ grad @ v, w.T @ again.grad @ w, atol=1e-6, rtol=1e-6)


def test_eigenvalue_gradients_are_exact_on_separated_spectra():
    matrix = _rotated(torch.tensor([-1.0, 0.3, 0.7, 2.0]))
    assert torch.autograd.gradcheck(lambda m: smooth_eigvalsh((m + m.T) / 2), (matrix.requires_grad_(),))
    torch.testing.assert_close(smooth_eigvalsh(matrix), torch.linalg.eigvalsh(matrix))


def test_degenerate_pmm_trains_with_finite_gradients():
    """All matrices zero: M(x) is degenerate but for the level-repulsion ladder."""
    engine = _randomize_heads(Engine(**LAYOUT, **SMALL))
    with torch.no_grad():
        engine.backbone.coeffs.zero_()
    engine(torch.randn(4, 50, 5), torch.randn(4, 3))[0].square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in engine.parameters() if p.grad is not None)
    assert engine.backbone.coeffs.grad.abs().sum() > 0


def test_tridiagonal_levels_repel():
    pmm = PMM(width=4, matrix_size=6, inputs=3, structure="tridiagonal", repulsion=1e-2)
    with torch.no_grad():
        pmm.coeffs.zero_()  # diagonal all zero: without repulsion every level would coincide at 0
    values = torch.linalg.eigvalsh(pmm.matrices(torch.zeros(3)))
    assert values.diff(dim=-1).min() > 1e-3


def test_bad_settings_raise():
    with pytest.raises(errors.InputValueError, match="structure"):
        Engine(**LAYOUT, **SMALL, structure="banded")
    with pytest.raises(errors.InputValueError, match="takes no setting"):
        Engine(**LAYOUT, backbone="deepsets", matrix_size=8)
    with pytest.raises(errors.InputValueError, match="matrix_size"):
        Engine(**LAYOUT, **{**SMALL, "matrix_size": 0})


@pytest.mark.parametrize("structure", ["dense", "tridiagonal"])
def test_export_load_round_trip(tmp_path, structure):
    engine = _randomize_heads(Engine(**LAYOUT, **SMALL, structure=structure))
    meta = {"task": CHOICE, "engine": {**SMALL, "structure": structure}, "probe": {"steps": 50}}
    loaded = load(write_artifact(engine.state_dict(), meta, tmp_path / f"pmm-{structure}")).engine
    tokens, glob = torch.randn(5, 50, 5), torch.randn(5, 3)
    for a, b in zip(engine(tokens, glob), loaded(tokens, glob)):
        assert torch.equal(a, b)


def test_hydra_option_builds_a_tenth_of_deepsets():
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        pmm = compose(config_name="train", overrides=["engine=pmm"])
        deepsets = compose(config_name="train", overrides=["engine=deepsets"])
    counts = [Engine(**LAYOUT, **OmegaConf.to_container(c.engine)).parameter_counts()["total"] for c in (pmm, deepsets)]
    assert counts[0] * 10 <= counts[1]


@pytest.fixture(scope="module")
def spectra_and_probes():
    """Probe features of 320 seeded synthetic spectra and, as the target, their spectral CDF at four
    points (the share of eigenvalues below t·s): what a probe says about a spectrum, in small."""
    lam, _ = sample_spectra(torch.Generator().manual_seed(0), 320, 300, (1e1, 1e6))
    probe = lanczos(Diagonal(lam.double()), steps=20, seed=0)
    tokens, glob = probe_features(probe, probe.upper)
    points = torch.tensor([1e-3, 1e-2, 1e-1, 0.5], dtype=torch.float64)
    cdf = (lam.double().unsqueeze(-1) / probe.upper[:, None, None] < points).double().mean(1)
    return tokens, glob, cdf


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only contend on a busy machine
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("structure", ["dense", "tridiagonal"])
def test_pmm_learns_from_probes(structure, spectra_and_probes, one_thread):
    """Behaviour: 150 Adam steps on 256 probes lower the held-out error (64 probes) of the engine far
    below that of predicting the training mean (and of the untrained engine, which outputs zero)."""
    tokens, glob, cdf = spectra_and_probes
    torch.manual_seed(0)
    engine = Engine(steps=1, per_step=1, global_outputs=4, **SMALL, structure=structure)
    train, held = slice(0, 256), slice(256, None)

    def held_out_error():
        with torch.no_grad():
            return float((engine(tokens[held], glob[held])[0] - cdf[held]).square().mean())

    untrained = held_out_error()
    opt = torch.optim.Adam(engine.parameters(), lr=3e-3)
    for _ in range(150):
        loss = (engine(tokens[train], glob[train])[0] - cdf[train]).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    mean_guess = float((cdf[held] - cdf[train].mean(0)).square().mean())
    assert held_out_error() < 0.5 * mean_guess < 0.5 * untrained
