"""The ``eigfilter`` inference adapter: a trained engine inside subspace iteration.

Two kinds of engines: ``eigfilter-choice`` engines (the shipped ``eigfilter-d15``) read the probe
once and pick a plan (:class:`LearnedPlan`, :mod:`autospec.eigen.plans`); per-iteration
``eigfilter`` engines (before issue 14) set ChFSI's upper end at every outer iteration
(:class:`LearnedFilter`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from autospec.core.recurrences import ChebyshevBasis
from autospec.eigen import plans
from autospec.eigen.choice import probe_context
from autospec.eigen.filters import Filter, FilterContext, chebyshev_filter
from autospec.eigen.task import FilterInput
from autospec.errors import InputValueError
from autospec.learned import load_for


@dataclass
class LearnedFilter:
    """The filter of a trained ``eigfilter`` engine (:mod:`autospec.eigen.task`): the engine
    reads every outer iteration's context and returns that iteration's polynomial; ChFSI's filter
    replaces a non-finite one (counted in ``fallbacks``). At an escalated degree
    (:func:`filter_degree`) it is ChFSI's polynomial on the engine's interval ``[a', b']``."""

    engine: object  # autospec.learned.LearnedEngine
    degree: int
    fallbacks: int = 0
    escalates: bool = True  # above its degree: ChFSI's polynomial on the engine's interval

    def __call__(self, ctx: FilterContext) -> ChebyshevBasis:
        poly, _ = self.engine.coefficients_from_probe(FilterInput.from_context(ctx))
        if not bool(self.engine.task.safe(poly, None, None).all()):
            self.fallbacks += 1
            return chebyshev_filter(self.degree)(ctx)
        if ctx.degree and ctx.degree != self.degree:
            return chebyshev_filter(ctx.degree)(replace(ctx, lower=float(poly.a[0]), upper=float(poly.b[0])))
        like = {"dtype": ctx.op.dtype, "device": ctx.op.device}
        return ChebyshevBasis(poly.c[0].to(**like), poly.a[0].to(**like), poly.b[0].to(**like))


@dataclass
class LearnedPlan(plans.FixedPlan):
    """A trained ``eigfilter-choice`` engine: scores every plan from the problem's probe, k and
    block and runs the best one (``info.plan`` names it)."""

    engine: object = None  # autospec.learned.LearnedEngine

    def choose(self, probe, k: int, block: int) -> int:
        ctx = probe_context(probe.ritz.double().cpu()[None], probe.residuals.double().cpu()[None],
                            probe.upper.double().cpu().reshape(1), k, block)
        return int(self.engine.task.choose(self.engine.engine, ctx)[0, 0])


def learned_filter(degree: int | None, engine) -> Filter:
    """:class:`LearnedPlan` or :class:`LearnedFilter` of ``engine`` (name, path or loaded engine;
    ``None``: the shipped one)."""
    learned = load_for(engine, "eigfilter", "method='autospec' of eigsh")
    if degree is None:  # the engine's own
        degree = learned.degree
    elif degree != learned.degree:
        raise InputValueError(f"engine {learned.name!r} emits degree-{learned.degree} filters, got degree={degree}; "
                              f"use degree={learned.degree} or train an engine for degree {degree}")
    if hasattr(learned.task, "choose"):
        return LearnedPlan(degree=degree, engine=learned)
    return LearnedFilter(learned, degree)
