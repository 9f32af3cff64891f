"""The menu a learned ``eigfilter`` engine chooses from: how one eigenproblem's filtered subspace
iteration is run, decided from the Lanczos probe alone.

A plan is ``(g, step)``:

* ``g`` — the filter's upper end ``b' = θ_top + (b − θ_top)e^{g}`` between the probe's top Ritz
  value ``θ_top`` and its safe bound ``b = θ_top + β_m`` (``g = 0``: ChFSI's ``b``). The safe bound
  overshoots λmax by about a quarter of the spread on typical spectra, and a Chebyshev filter on a
  too-wide interval wastes degree; a ``b'`` below λmax amplifies the top eigenvalues instead —
  which is why the choice reads the top Ritz pair's residual.
* ``step`` — ``"chfsi"``: ChFSI's outer iteration (:func:`autospec.eigen.subspace._subspace_iteration`,
  one degree for the block, escalated by :func:`autospec.eigen.filters.filter_degree`);
  ``"column"``: ChASE-style degrees per Ritz vector from the current residuals
  (:mod:`autospec.eigen.columns`: each unconverged wanted vector gets the degree that should bring
  its residual to tol, the guard vectors the largest of those; a cut above a degenerate block
  edge) with the Rayleigh–Ritz product reused as the filter's first one.
Every plan filters ChFSI's block (:func:`autospec.eigen.filters.default_block`). Plans with fewer
guard columns (½ or ¾ of them) gave the menu a hindsight of 0.75× ChFSI's products on the labels
against 0.83×, but a learned choice among them was > 1.1× ChFSI on small or dense-ended problems
(benchmarks/RESULTS.md, issue 14, session 2), so they are not in the menu; nor is the per-vector
plan with g = −9 (> 1.1× ChFSI on 3.4 % of the labels, against 0.2 % at g = −5).

Plan 0 is ``(0, "chfsi")``: today's ChFSI, so an engine whose scores are all equal *is* ChFSI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from autospec.eigen.filters import DEFAULT_DEGREE, MAX_DEGREE, FilterContext, chebyshev_filter
from autospec.eigen.columns import ColumnPlan, column_iteration
from autospec.eigen.subspace import _Problem, _subspace_iteration

CHFSI_SHIFTS = (0.0, -2.0, -5.0)
COLUMN_SHIFTS = (-2.0, -3.0, -5.0)


@dataclass(frozen=True)
class Plan:
    shift: float  # g
    step: str  # "chfsi" | "column"

    def label(self) -> str:
        return f"{self.step}, b' = θ_top + (b − θ_top)·e^{self.shift:g}"

    def upper(self, probe) -> float:
        top, b = float(probe.theta_max), float(probe.upper)
        return top + max(b - top, 0.0) * math.exp(self.shift)


PLANS = (*(Plan(g, "chfsi") for g in CHFSI_SHIFTS), *(Plan(g, "column") for g in COLUMN_SHIFTS))
COUNT = len(PLANS)


@dataclass(frozen=True)
class _UpperFilter:
    """ChFSI's filter with the plan's upper end ``b'`` (escalating, as ChFSI's)."""

    upper: float
    degree: int = DEFAULT_DEGREE
    escalates: bool = True

    def __call__(self, ctx: FilterContext):
        return chebyshev_filter(self.degree)(replace(ctx, upper=self.upper))


@dataclass
class FixedPlan:
    """Plan ``index`` for every problem, as a filter argument of :func:`autospec.eigen.api.filtered_subspace_iteration`
    (``FixedPlan(0)`` is ChFSI); learned engines subclass it with a choice (:class:`autospec.eigen.learned.LearnedPlan`)."""

    index: int = 0
    degree: int = DEFAULT_DEGREE
    escalates: bool = True

    def choose(self, probe, k: int, block: int) -> int:
        return self.index

    def run(self, prob: _Problem, reprobe: bool, max_degree: int, whole_space: bool):
        index = self.choose(prob.probe, prob.k, prob.block)
        theta, V, res, info = run_plan(prob, index, degree=self.degree, max_degree=max_degree, reprobe=reprobe,
                                       whole_space=whole_space)
        info.plan = PLANS[index].label()
        return theta, V, res, info

    def __call__(self, ctx: FilterContext):
        """The plan's first filter (for plots): ChFSI's on ``[a, b']``."""
        plan = PLANS[self.choose(ctx.probe, ctx.wanted, ctx.block)]
        return _UpperFilter(plan.upper(ctx.probe), self.degree)(ctx)


def run_plan(prob: _Problem, index: int, *, degree: int = DEFAULT_DEGREE, max_degree: int | None = None,
             reprobe: bool = True, whole_space: bool = True):
    """Plan ``index`` on ``prob``: ``(θ, V, residuals, info)`` as the subspace iteration returns them."""
    plan = PLANS[index]
    top = max(degree, MAX_DEGREE if max_degree is None else int(max_degree))
    if plan.step == "chfsi":
        return _subspace_iteration(prob, _UpperFilter(plan.upper(prob.probe), degree), reprobe, top, whole_space)
    # T_{m+1} per column costs m + 1 products (the Rayleigh–Ritz product is its first), as ChFSI's degree m
    columns = ColumnPlan(base=degree + 1, upper=plan.upper(prob.probe), max_degree=top + 1)
    return column_iteration(prob, columns, whole_space)
