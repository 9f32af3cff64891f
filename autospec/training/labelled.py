"""Training from a labelled set: probe → engine scores → fit of the measured cost curve.

For tasks with ``trained_on_labels`` (the ``linsys-choice`` task): every training item is a probe
and the exact cost of every candidate the task can choose from (``python -m autospec labels``), so
no step recounts PCG iterations. :class:`ChoiceSystem` reads like the algorithm:

    scores = engine(features(probe));  loss = task.loss(scores, log-costs)

and validates on what a user gets: the chosen candidate's cost against candidate 0 (the task's
classical start) and against the better of the two classical candidates (0 and 1).
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from autospec.core.probe import Probe
from autospec.errors import InputValueError
from autospec.learned import build_task
from autospec.linsys.labels import label_costs, load_labels
from autospec.training.system import AutospecSystem, EngineSystem, gathered


class LabelledSet(Dataset):
    """Items ``(probe tensors, costs)`` of a labelled safetensors file; batches via :func:`collate`."""

    def __init__(self, tensors: dict, index: torch.Tensor, max_iters: int, probe_steps: int):
        self.t = {k: v[index] for k, v in tensors.items()}
        self.costs = label_costs(self.t["counts"], max_iters)
        self.probe_steps = probe_steps

    def __len__(self):
        return len(self.costs)

    def __getitem__(self, i):
        return i

    def collate(self, items: list[int]) -> dict:
        i = torch.as_tensor(items)
        ritz = self.t["ritz"][i]
        probe = Probe(ritz=ritz, residuals=self.t["residuals"][i], upper=self.t["upper"][i], lower=ritz[:, 0],
                      steps=self.probe_steps, matvecs=self.probe_steps, weights=self.t["weights"][i],
                      size=self.t["n"][i].double())
        return {"probe": probe, "costs": self.costs[i], "counts": self.t["counts"][i]}


class LabelledDataModule(L.LightningDataModule):
    """A labelled set split (seeded) into training and validation items."""

    def __init__(self, path: str, batch_size: int = 128, val_fraction: float = 0.15, seed: int = 0,
                 max_iters: int = 3000, probe_steps: int = 50):
        super().__init__()
        self.path, self.batch_size, self.val_fraction = str(path), int(batch_size), float(val_fraction)
        self.seed, self.max_iters, self.probe_steps = int(seed), int(max_iters), int(probe_steps)
        self.train_set = self.val_set = None

    dataset = LabelledSet  # the item type a subclass's labels batch into

    def read(self) -> dict[str, torch.Tensor]:
        """The labelled tensors, checked against this configuration."""
        tensors, meta = load_labels(self.path)
        if int(meta["probe_steps"]) != self.probe_steps:
            raise InputValueError(f"labelled set {self.path} was probed with {meta['probe_steps']} steps, "
                                  f"the engine is configured for {self.probe_steps}")
        return tensors

    def setup(self, stage: str | None = None):
        if self.train_set is not None:
            return
        tensors = self.read()
        order = torch.randperm(len(tensors["counts"]), generator=torch.Generator().manual_seed(self.seed))
        cut = int(round(len(order) * self.val_fraction))
        self.val_set = self.dataset(tensors, order[:cut], self.max_iters, self.probe_steps)
        self.train_set = self.dataset(tensors, order[cut:], self.max_iters, self.probe_steps)

    def train_dataloader(self):
        gen = torch.Generator().manual_seed(self.seed + (self.trainer.global_step if self.trainer else 0))
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, drop_last=True,
                          generator=gen, collate_fn=self.train_set.collate)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=1024, collate_fn=self.val_set.collate)


class ChoiceSystem(EngineSystem):
    """Trains an :class:`Engine` to score a task's candidates from their labelled costs."""

    def forward(self, probe: Probe) -> torch.Tensor:
        scale = self.task.scale(probe)
        return self.engine(*(f.to(self.device) for f in self.task.features(probe, scale)))[0]

    def training_step(self, batch, batch_idx):
        loss = self.task.loss(self(batch["probe"]), batch["costs"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["costs"]))
        return loss

    def validation_step(self, batch, batch_idx):
        costs, scores = batch["costs"], self(batch["probe"])
        chosen = self.task.chosen(scores, costs)
        self._vs_start.append((chosen - costs[:, 0]).exp())
        self._vs_best.append((chosen - costs[:, :2].amin(-1)).exp())
        self.log("val/loss", self.task.loss(scores, costs), batch_size=len(costs))

    def on_validation_epoch_start(self):
        self._vs_start, self._vs_best = [], []

    def on_validation_epoch_end(self):
        vs_start, vs_best = gathered(self, self._vs_start), gathered(self, self._vs_best)  # all DDP ranks
        self.log("val/log_ratio", vs_start.log().mean(), prog_bar=True)  # geometric mean vs the classical start
        self.log("val/iter_ratio", vs_start.median(), prog_bar=True)
        self.log("val/vs_best_classical", vs_best.median(), prog_bar=True)
        self.log("val/worse_5pct", (vs_best > 1.05).double().mean())


def system_class(task: dict) -> type:
    """The Lightning system that trains ``task``: from labels, or through its exact loss."""
    return ChoiceSystem if getattr(build_task(task), "trained_on_labels", False) else AutospecSystem
