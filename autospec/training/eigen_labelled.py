"""Training the ``eigfilter-choice`` engine from its labelled set (:mod:`autospec.eigen.labels`):
the items of :class:`autospec.training.labelled.LabelledSet`, read from the eigen labels and
batched as first-iteration filter contexts (:func:`autospec.eigen.choice.probe_context`), for the
same :class:`autospec.training.labelled.ChoiceSystem`."""

from __future__ import annotations

import torch

from autospec.eigen.choice import probe_context
from autospec.eigen.labels import UNIT, load_labels
from autospec.errors import InputValueError
from autospec.training.labelled import LabelledDataModule, LabelledSet


class EigenLabelledSet(LabelledSet):
    def collate(self, items: list[int]) -> dict:
        i = torch.as_tensor(items)
        t = self.t
        ctx = probe_context(t["ritz"][i], t["residuals"][i], t["upper"][i], t["k"][i].reshape(-1),
                            t["block"][i].reshape(-1))
        return {"probe": ctx, "costs": self.costs[i], "counts": t["counts"][i]}


class EigenLabelledDataModule(LabelledDataModule):
    """A labelled eigen set split (seeded) into training and validation items; ``budget`` (units
    of n) must be the labels' own."""

    def __init__(self, path: str, budget: int = 30, **kwargs):
        super().__init__(path, max_iters=budget * UNIT, **kwargs)
        self.budget = int(budget)

    dataset = EigenLabelledSet

    def read(self) -> dict[str, torch.Tensor]:
        tensors, meta = load_labels(self.path)
        if int(meta["probe_steps"]) != self.probe_steps or int(meta["budget"]) != self.budget:
            raise InputValueError(f"labelled set {self.path} has probe {meta['probe_steps']} / budget {meta['budget']}, "
                                  f"the engine is configured for {self.probe_steps} / {self.budget}")
        return tensors
