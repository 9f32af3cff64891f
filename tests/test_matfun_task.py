"""The learned ``matfun`` task: zero corrections are the classical baselines, the scalar-map
training objective matches the real kernels, the shipped engines are registered as method
``"autospec"`` and beat their baselines on held-out cases."""

import math

import numpy as np
import pytest
import torch
from numpy.polynomial import chebyshev as npcheb

from autospec import matfun
from autospec.data import make_batch
from autospec.engine import Engine
from autospec.engines import LearnedEngine, load
from autospec.errors import InputValueError
from autospec.kernels.polar import POLAR_EXPRESS
from autospec.probe import Probe, lanczos
from autospec.spectra import ALL_FAMILIES, sample_spectrum
from autospec.tasks import build_task
from autospec.tasks.matfun import TAYLOR_QUINTIC, MatfunTask, chebyshev_vandermonde, ritz_fit

HELD_OUT = 30_000_000  # distinct from the training (0..2) and validation (10_000_000) seeds


def _untrained(task: MatfunTask, probe_steps: int) -> LearnedEngine:
    return LearnedEngine(Engine(**task.layout), task, {"name": "untrained", "probe": {"steps": probe_steps}})


def _member(probe: Probe, i: int) -> Probe:
    return Probe(probe.ritz[i], probe.residuals[i], probe.upper[i], probe.lower[i], probe.steps, probe.matvecs)


def _spd(lam: np.ndarray, seed: int = 0) -> np.ndarray:
    Q = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(lam), len(lam))))[0]
    A = (Q * lam) @ Q.T
    return (A + A.T) / 2


@pytest.mark.parametrize("f", ["inv_sqrt", "sqrt", "inv"])
def test_action_zero_corrections_are_the_chebyshev_interpolant_of_apply(f):
    task = build_task({"name": "matfun", "function": f, "degree": 12})
    batch = make_batch(3, 4, (200, 300), (1e2, 1e6), ALL_FAMILIES, 30)
    base, _ = task.polynomial(batch["probe"])
    zero = tuple(c.double() for c in Engine(**task.layout)(*task.features(batch["probe"], task.scale(batch["probe"]))))
    learned, _ = task.polynomial(batch["probe"], zero)
    assert torch.equal(learned.c, base.c) and torch.equal(learned.a, base.a)
    for i in range(4):
        ref, interval = matfun.APPLY_METHODS["chebyshev"](torch.zeros(1, dtype=torch.float64), _member(batch["probe"], i),
                                                          f, 12, None)
        assert interval == (float(base.a[i]), float(base.b[i]))
        torch.testing.assert_close(base.c[i], ref.c, rtol=1e-13, atol=1e-13 * float(ref.c.abs().max()))


def test_chebyshev_vandermonde_and_ritz_fit_match_numpy():
    a, b = torch.tensor([0.5]), torch.tensor([3.0])
    x = torch.tensor([[0.4, 0.5, 1.7, 3.0, 3.2]], dtype=torch.float64)
    V = chebyshev_vandermonde(x, a.double(), b.double(), 6)
    np.testing.assert_allclose(V[0].numpy(), npcheb.chebvander((2 * x[0].numpy() - 3.5) / 2.5, 6), rtol=1e-12)
    ritz = torch.tensor([[0.6, 0.9, 2.0, 2.9]], dtype=torch.float64)
    a, b = a.double(), b.double()
    c = ritz_fit(torch.rsqrt, ritz, a, b, 6, torch.tensor([2.0], dtype=torch.float64))
    # reference: weighted lstsq in NumPy on the same points
    nodes = 1.75 + 1.25 * np.cos(np.pi * (np.arange(7) + 0.5) / 7)
    pts = np.concatenate([nodes, ritz[0].numpy()])
    sw = np.sqrt(np.concatenate([np.ones(7), 2.0 * np.ones(4)]))
    ref = np.linalg.lstsq(npcheb.chebvander((2 * pts - 3.5) / 2.5, 6) * sw[:, None], pts**-0.5 * sw, rcond=None)[0]
    np.testing.assert_allclose(c[0].numpy(), ref, rtol=1e-10, atol=1e-12)


def test_dense_zero_corrections_are_the_classical_schedules():
    probe = lanczos(torch.diag(torch.linspace(0.01, 1, 50, dtype=torch.float64)), steps=8)
    coupled, polar = (build_task({"name": "matfun", "function": fn, "form": form, "steps": 5})
                      for fn, form in [("inv_sqrt", "coupled"), ("polar", "polar")])
    for task, classical in [(coupled, [TAYLOR_QUINTIC] * 5), (polar, POLAR_EXPRESS[:5])]:
        zero = Engine(**task.layout)(*task.features(probe, task.scale(probe)))
        schedule, scale = task.polynomial(probe, tuple(c.double() for c in zero))
        torch.testing.assert_close(schedule.q, torch.tensor(classical, dtype=torch.float64), rtol=0, atol=0)
        assert float(scale) == float(probe.upper)


def test_scalar_map_matches_the_coupled_kernel():
    """The training metric (matmuls to tol on the scalar map) is what the kernel spends on a
    rotated diagonal matrix with the same probe."""
    task = build_task({"name": "matfun", "function": "inv_sqrt", "form": "coupled", "steps": 4, "extra_steps": 30})
    lam = sample_spectrum(torch.Generator().manual_seed(HELD_OUT), "log_uniform", 120, 1e4)
    engine = _untrained(task, 10)
    probe = lanczos(torch.diag(lam), steps=10, seed=0)
    predicted = task.iterations(*task.polynomial(probe), {"lam": lam})
    A = _spd(lam.numpy())
    X, info = matfun.inv_sqrt(A, method="autospec", engine=engine, tol=1e-6)
    assert info.converged and info.rel_error <= 1e-6 and info.sketch_matmuls == 10
    assert abs(info.matmuls - float(predicted)) <= 4  # one step either way (rounding, probe of QΛQᵀ vs Λ)
    w, Q = np.linalg.eigh(A)
    np.testing.assert_allclose(X, (w**-0.5 * Q) @ Q.T, atol=1e-5 * np.abs(X).max())


def test_bad_task_configuration():
    with pytest.raises(InputValueError, match="form"):
        MatfunTask(form="rational")
    with pytest.raises(InputValueError, match="polar"):
        MatfunTask(function="inv_sqrt", form="polar")
    with pytest.raises(InputValueError, match="basis"):
        MatfunTask(recurrence="three_term")


# --------------------------------------------------------------------------- shipped engines


@pytest.mark.parametrize("f", ["inv_sqrt", "sqrt", "inv"])
def test_shipped_action_engine_beats_chebyshev_on_held_out_spectra(f):
    gen = torch.Generator().manual_seed(HELD_OUT)
    ratios = []
    for family in ("log_uniform", "clustered", "dense_near_min", "laplacian_2d", "isolated_small", "power_law"):
        lam = sample_spectrum(gen, family, 400, 10 ** (2 + 6 * float(torch.rand(1, generator=gen))))
        z = torch.randn(400, generator=gen, dtype=torch.float64).numpy()
        _, base = matfun.apply(np.diag(lam.numpy()), z, f=f, method="chebyshev")
        _, learned = matfun.apply(np.diag(lam.numpy()), z, f=f, method="autospec")
        assert learned.converged and learned.matvecs == base.matvecs
        ratios.append(learned.rel_error / base.rel_error)
    assert math.exp(np.mean(np.log(ratios))) < 0.95, ratios


def test_apply_autospec_engine_checks():
    A, z = _spd(np.linspace(0.1, 1, 30)), np.ones(30)
    y, info = matfun.apply(A, z, f="inv_sqrt", method="autospec", engine="matfun-inv_sqrt-d20")
    _, chebyshev = matfun.apply(A, z, f="inv_sqrt", method="chebyshev")
    # a well-conditioned matrix (κ = 10) where Chebyshev is already accurate: no accuracy lost
    assert info.rel_error <= 2 * chebyshev.rel_error and info.method == "autospec" and y.shape == (30,)
    with pytest.raises(InputValueError, match="degree"):
        matfun.apply(A, z, f="inv_sqrt", degree=10, method="autospec")
    with pytest.raises(InputValueError, match="not the action form of 'sqrt'"):
        matfun.apply(A, z, f="sqrt", method="autospec", engine=load("matfun-inv_sqrt-d20"))
    with pytest.raises(InputValueError, match="not the coupled form"):
        matfun.inv_sqrt(A, method="autospec", engine="matfun-inv_sqrt-d20")


def test_shipped_dense_inv_sqrt_and_sqrt_converge_with_fewer_matmuls_than_newton_schulz():
    lam = np.logspace(-5, 0, 150) * 7.0
    A = _spd(lam, seed=1)
    X, info = matfun.inv_sqrt(A, method="autospec", tol=1e-6)
    _, ns = matfun.inv_sqrt(A, method="newton_schulz", tol=1e-6)
    assert info.converged and info.rel_error <= 1e-6 and not info.diverged
    assert info.matmuls < 0.8 * ns.matmuls, (info.matmuls, ns.matmuls)
    S, sinfo = matfun.sqrt(A, method="autospec", tol=1e-6)
    w, Q = np.linalg.eigh(A)
    np.testing.assert_allclose(S, (np.sqrt(w) * Q) @ Q.T, atol=1e-5 * np.sqrt(lam.max()))
    assert sinfo.matmuls == info.matmuls


def test_shipped_polar_bf16_beats_polar_express_and_muon():
    gen = torch.Generator().manual_seed(HELD_OUT + 1)
    sigma = torch.logspace(-3, 0, 96, dtype=torch.float64)
    U = torch.linalg.qr(torch.randn(192, 96, generator=gen, dtype=torch.float64)).Q
    V = torch.linalg.qr(torch.randn(96, 96, generator=gen, dtype=torch.float64)).Q
    G = ((U * sigma) @ V.T).bfloat16()
    Q, info = matfun.polar(G, method="autospec", tol=None, max_iters=5)
    errors = {m: matfun.polar(G, method=m, tol=None, max_iters=5)[1] for m in ("polar_express", "muon")}
    assert Q.dtype == torch.bfloat16 and info.matmuls == errors["muon"].matmuls == 16
    assert info.rel_error < min(e.rel_error for e in errors.values()), (info.rel_error, errors)


def test_divergent_schedule_is_reported_not_nan():
    task = build_task({"name": "matfun", "function": "inv_sqrt", "form": "coupled", "steps": 3})
    engine = _untrained(task, 10)
    for head in engine.engine.step_heads:
        torch.nn.init.constant_(head.bias, 50.0)  # every coefficient at e^{+2}× Taylor: overshoots
    with pytest.warns(RuntimeWarning, match="diverged"):
        X, info = matfun.inv_sqrt(_spd(np.linspace(0.5, 1, 20)), method="autospec", engine=engine)
    assert info.diverged and not info.converged and np.isfinite(X).all()
