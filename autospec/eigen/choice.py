"""The ``eigfilter-choice`` task: the engine reads the Lanczos probe of an eigenproblem (and k,
the block) and picks the plan (:mod:`autospec.eigen.plans`: the filter's upper end and ChFSI's or
per-vector degrees) that subspace iteration will need the fewest products with.

Output: one score per plan, ``ŝ_p ≈ log N_p − log N_0`` (N: products to tol; plan 0 is ChFSI),
the choice ``argmin_p ŝ_p`` (:class:`autospec.engine.choice.CostFit`), so a zero-output engine is
ChFSI. Trained on exact labels (:mod:`autospec.eigen.labels`: every plan run to tol on ``diag(λ)``).
Engine input: the filter context of the first outer iteration (:func:`probe_context`), with the
features of the per-iteration ``eigfilter`` task (:func:`autospec.eigen.task.filter_features`).
"""

from __future__ import annotations

import torch

from autospec.core.intervals import unwanted_lower
from autospec.engine.choice import CostFit
from autospec.eigen import plans
from autospec.eigen.task import GLOBAL_FEATURES, TOKEN_FEATURES, EigfilterTask, FilterInput, filter_features
from autospec.errors import InputValueError
from autospec.learned import register_task

_TINY = 1e-300


def probe_context(ritz: torch.Tensor, residuals: torch.Tensor, upper: torch.Tensor, k, block) -> FilterInput:
    """The context of the first outer iteration from probes ``(B, m)`` (absolute residuals): cut
    ``θ_{block+1}``, ``a_L = θ_min``, residuals relative to ``‖A‖_est = max|θ|`` (as
    :func:`autospec.core.intervals.filter_start` and :mod:`autospec.eigen.subspace`)."""
    ritz, residuals, upper = ritz.double(), residuals.double(), upper.double().reshape(-1)
    m = ritz.shape[-1]
    idx = torch.as_tensor(block).reshape(-1, 1).clamp_max(m - 1).expand(ritz.shape[0], 1)
    lowest = ritz[:, 0]
    lower = unwanted_lower(ritz.gather(-1, idx).squeeze(-1), upper, lowest)
    norm = ritz.abs().amax(-1, keepdim=True).clamp_min(_TINY)
    return FilterInput(ritz, residuals / norm, lower, upper, lowest, torch.zeros_like(upper), ritz[:, -1],
                       residuals[:, -1], k, block)


@register_task
class EigfilterChoiceTask(CostFit):
    """A learned choice among eigensolver plans (module docstring)."""

    name = "eigfilter-choice"
    family = "eigfilter"
    scale = staticmethod(EigfilterTask.scale)
    features = staticmethod(filter_features)

    def __init__(self, degree: int = 15, huber: float = 0.1, budget: int = 30):
        if degree < 2:
            raise InputValueError(f"degree must be >= 2, got {degree}")
        if huber <= 0:
            raise InputValueError(f"huber must be > 0, got {huber}")
        self.degree, self.huber, self.budget = int(degree), float(huber), int(budget)

    @property
    def layout(self) -> dict:
        return {"global_outputs": plans.COUNT, "steps": 1, "per_step": 1,
                "token_features": TOKEN_FEATURES, "global_features": GLOBAL_FEATURES}

    @property
    def max_iters(self) -> int:
        """The labels' cap (budget in units of n/1000, :data:`autospec.eigen.labels.UNIT`)."""
        return self.budget * 1000

    @torch.no_grad()
    def choose(self, engine, ctx: FilterInput) -> torch.Tensor:
        """Plan indices, best first, for a batch of contexts."""
        scores = engine(*filter_features(ctx, self.scale(ctx)))[0]
        return self.ranking(scores.double())
