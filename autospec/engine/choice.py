"""What every learned *choice* shares, whatever it chooses among (preconditioners, filter plans):
the engine scores each candidate with ``ŝ_c ≈ log cost_c − log cost_0`` (relative to candidate 0,
the classical start), the choice is the lowest score (ties → the lowest index, so an engine with
zero output *is* the classical start), and training fits the whole labelled cost curve with a
smooth-L1 loss — a near miss costs little, a far miss much, as they do."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from autospec.errors import ArtifactError


def read_labelled(path: str | Path, fmt: str, make: str) -> tuple[dict[str, torch.Tensor], dict]:
    """``(tensors, metadata)`` of a labelled set (safetensors + JSON metadata under ``"autospec"``,
    no pickle); ``ArtifactError`` for a missing, unreadable or foreign (``format != fmt``) file.
    ``make``: the command that makes one, for the error."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"labelled set {path} does not exist (make it with `{make} {path}`)")
    try:
        with safe_open(str(path), "pt") as f:
            meta = json.loads((f.metadata() or {}).get("autospec", "{}"))
        tensors = load_file(str(path))
    except Exception as err:  # noqa: BLE001 - any parse failure is a corrupt file
        raise ArtifactError(f"labelled set {path} is not readable: {err}") from err
    if meta.get("format") != fmt:
        raise ArtifactError(f"{path} is not a labelled set of format {fmt!r}")
    return tensors, meta


class CostFit:
    """Mixin for choice tasks: needs ``self.huber`` (the smooth-L1 width, log units)."""

    huber: float = 0.1
    trained_on_labels = True

    @staticmethod
    def ranking(scores: torch.Tensor) -> torch.Tensor:
        """Candidate indices from the lowest predicted cost up (stable: ties keep index order)."""
        return torch.sort(scores, dim=-1, stable=True).indices

    def loss(self, scores: torch.Tensor, costs: torch.Tensor) -> torch.Tensor:
        """Smooth-L1 fit of the relative log-costs ``log cost_c − log cost_0`` of every candidate."""
        target = costs - costs[..., :1]
        return torch.nn.functional.smooth_l1_loss(scores.to(target.dtype), target, beta=self.huber)

    def chosen(self, scores: torch.Tensor, costs: torch.Tensor) -> torch.Tensor:
        """The labelled cost of the choice."""
        return costs.gather(-1, self.ranking(scores)[..., :1]).squeeze(-1)
