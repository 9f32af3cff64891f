"""The ``matfun`` inference adapter: the shipped engines as the ``"autospec"`` method of every
function of :mod:`autospec.matfun` — the action ``p(A) z`` (:func:`autospec_apply`), the coupled
``A^{∓1/2}`` iteration and the polar iteration (the task, :mod:`autospec.matfun.task`, explains
what the engines learn)."""

from __future__ import annotations

import torch

from autospec.core.intervals import sigma_interval
from autospec.core.batched import DenseBatch, GramBatch
from autospec.core.probe import Probe, lanczos
from autospec.core.recurrences import ChebyshevBasis
from autospec.errors import InputValueError
from autospec.kernels.common import KernelInfo, accum_dtype, coupled_iteration, polar_iteration
from autospec.kernels.polar import minimax_quintic, residual_form
from autospec.learned import DEFAULT_ENGINES, load
from autospec.matfun.methods import step_keywords
from autospec.matfun.task import Schedule


def _engine(engine, form: str, function: str, degree: int | None = None):
    """Load ``engine`` (name, path or LearnedEngine; None → the shipped default) and check it fits."""
    learned = load(DEFAULT_ENGINES[f"matfun/{form}/{function}"] if engine is None else engine)
    task = learned.task
    if task.name != "matfun" or task.form != form or task.function != function:
        raise InputValueError(f"engine {learned.name!r} computes {getattr(task, 'form', task.name)!r} "
                              f"{getattr(task, 'function', '')!r}, not the {form} form of {function!r}")
    if degree is not None and task.degree != degree:
        raise InputValueError(f"engine {learned.name!r} has degree {task.degree}, the call asked for degree {degree}")
    return learned


def action_engine(engine, f: str, degree: int | None = None):
    """The engine of ``apply(method="autospec")`` for ``f`` (None: the shipped one), checked to fit."""
    return _engine(engine, "action", f, degree)


def autospec_apply(op, probe: Probe, f: str, degree: int, engine):
    """``apply`` method ``autospec``: the engine's polynomial for the probe — or the Chebyshev
    interpolant when :meth:`MatfunTask.safe` rejects it — and its interval."""
    learned = _engine(engine, "action", f, degree)
    poly, _ = learned.coefficients_from_probe(probe)
    if not bool(learned.task.safe(poly, None, probe).all()):
        poly, _ = learned.task.polynomial(probe)
    poly = ChebyshevBasis(poly.c.to(op.dtype), poly.a.to(op.dtype), poly.b.to(op.dtype))
    return poly, (float(poly.a), float(poly.b))


def _gram_probe(learned, G: torch.Tensor, info: KernelInfo) -> tuple[Schedule, torch.Tensor]:
    """Probe ``G Gᵀ`` of every (wide) matrix of the batch through thin products (in float64: the
    Gram squares the dynamic range), count them as sketch matmuls, and return the engine's
    schedule and scale."""
    flat = G.reshape(-1, *G.shape[-2:]).to(torch.float64)
    probe = lanczos(GramBatch(flat), steps=min(learned.probe_steps, flat.shape[-2]), seed=0)
    info.sketch_matmuls += 2 * probe.matvecs
    schedule, scale = learned.coefficients_from_probe(probe)
    lead = G.shape[:-2]
    return Schedule(schedule.q.reshape(*lead, *schedule.q.shape[-2:])), scale.reshape(lead)


def _residual_probe(powers, steps: int, k: int, info: KernelInfo) -> Probe:
    """Lanczos probe (seed k, float64) of ``I − R_k`` (``Z Y`` or ``X Xᵀ``) of every matrix; its
    ``steps`` thin products are counted as sketch matmuls."""
    n = powers.R.shape[-1]
    product = (torch.eye(n, dtype=torch.float64) - powers.R.to(torch.float64)).reshape(-1, n, n)
    probe = lanczos(DenseBatch(product), steps=min(steps, n), seed=k)
    info.sketch_matmuls += probe.matvecs
    return probe


def _residual_step(quintic: torch.Tensor, lead: torch.Size, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Per-matrix ``(g0, g1, g2)`` of a flat batch of quintics ``(B, 3)``."""
    return residual_form(tuple(quintic.reshape(*lead, 3).to(dtype).unbind(-1)))


def _coupled(part: str):
    def run(A, *, tol, max_iters, engine):
        """``Y ← Y g_k(R)``, ``Z ← g_k(R) Z`` from ``Y_0 = A/s``, s the probe's ``θ_max + r_top`` (so
        σ ≤ 1 and the quintics keep O(1) coefficients in residual form — with ``A/‖A‖_F`` they grow
        like ``(‖A‖_F/λmax)^{5/2}`` and cancel in float32); step k probes ``Z_k Y_k = I − R_k`` (step 0
        reuses the probe of A), the engine reads the first probe, and the step is the schedule's
        minimax quintic on the probed interval."""
        learned = _engine(engine, "coupled", "inv_sqrt")
        info, lead, acc = KernelInfo(), A.shape[:-2], accum_dtype(A.dtype)
        flat = A.reshape(-1, *A.shape[-2:]).to(torch.float64)
        probe = lanczos(DenseBatch(flat), steps=min(learned.probe_steps, A.shape[-1]), seed=0)
        info.sketch_matmuls += probe.matvecs
        schedule, _ = learned.coefficients_from_probe(probe)
        s = probe.theta_max + probe.top_residual()

        def coefficients(k, powers):
            if k == 0:
                lo, hi = sigma_interval(probe, s)
            else:
                lo, hi = sigma_interval(_residual_probe(powers, learned.probe_steps, k, info))
            return _residual_step(schedule.quintic(k, lo, hi), lead, acc)

        scale = (s / torch.linalg.matrix_norm(flat)).reshape(lead).to(acc)
        pair = coupled_iteration(A, coefficients, info, scale=scale, **{"max_iters": None, **step_keywords(tol, max_iters)})
        return getattr(pair, part), info

    return run


def _polar(G, *, tol, max_iters, engine):
    """``X ← g_k(R) X`` from ``X_0 = G/√s`` (s: probe bound of ``λmax(G Gᵀ)``): the engine's K-step
    schedule, then (run to ``tol``) minimax quintics on a Lanczos probe of ``X Xᵀ`` per step.
    ``tol=None`` runs ``max_iters`` steps (default: the schedule's K)."""
    learned = _engine(engine, "polar", "polar")
    info = KernelInfo()
    wide = G.mT if G.shape[-2] > G.shape[-1] else G
    schedule, s = _gram_probe(learned, wide, info)
    acc = accum_dtype(G.dtype)
    scale = s.to(acc).sqrt() / torch.linalg.matrix_norm(G.to(acc))
    K = schedule.q.shape[-2]
    scheduled = [tuple(g.to(acc) for g in schedule.residual_coefficients(k)) for k in range(K)]

    def coefficients(k, powers):
        if k < K:
            return scheduled[k]
        probe = _residual_probe(powers, learned.probe_steps, k, info)
        return _residual_step(minimax_quintic(*sigma_interval(probe)), G.shape[:-2], acc)

    steps = {"max_iters": None, **step_keywords(tol, K if tol is None and max_iters is None else max_iters)}
    X = polar_iteration(G, coefficients, info, scale=scale, **steps)
    return X, info


AUTOSPEC_METHODS = {"apply": autospec_apply, "inv_sqrt": _coupled("inv_sqrt"), "sqrt": _coupled("sqrt"),
                    "polar": _polar}
