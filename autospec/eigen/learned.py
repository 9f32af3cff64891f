"""The ``eigfilter`` inference adapter: a trained engine as the filter of subspace iteration."""

from __future__ import annotations

from dataclasses import dataclass, replace

from autospec.core.recurrences import ChebyshevBasis
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


def learned_filter(degree: int, engine) -> Filter:
    """:class:`LearnedFilter` of ``engine`` (name, path or loaded engine; ``None``: the shipped one)."""
    learned = load_for(engine, "eigfilter", "method='autospec' of eigsh")
    if degree != learned.degree:
        raise InputValueError(f"engine {learned.name!r} emits degree-{learned.degree} filters, got degree={degree}; "
                              f"use degree={learned.degree} or train an engine for degree {degree}")
    return LearnedFilter(learned, degree)
