"""The Lightning system: probe → engine → coefficients → recurrence → exact task loss.

``training_step`` reads like the algorithm; everything task-specific (how corrections become a
polynomial, the loss, the metric) lives in the task object, so ``matfun`` and ``eigfilter`` plug in
as new tasks without touching this file.
"""

from __future__ import annotations

import lightning as L
import torch

from autospec.engine.model import Engine
from autospec.learned import build_task


class EngineSystem(L.LightningModule):
    """An :class:`Engine` for a task, with plain-valued hyper-parameters (artifact-safe) and
    AdamW with warm-up and cosine decay; subclasses say how the engine is trained."""

    def __init__(self, task: dict, engine: dict, probe: dict, lr: float = 1e-3, weight_decay: float = 0.0,
                 warmup_steps: int = 50, max_steps: int = 1000):
        super().__init__()
        self.save_hyperparameters()
        self.task = build_task(task)
        self.engine = Engine(**self.task.layout, **engine)

    def configure_optimizers(self):
        return adamw_with_warmup_cosine(self.engine.parameters(), self.hparams)


class AutospecSystem(EngineSystem):
    """Trains an :class:`Engine` through the task's exact loss."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._baseline_cache: dict[int, torch.Tensor] = {}

    def forward(self, probe):
        """Polynomial (scaled units) and scale for a batch of probes."""
        poly, scale, _ = self._predict(probe)
        return poly, scale

    def _predict(self, probe):
        scale = self.task.scale(probe)
        corrections = self.engine(*(f.to(self.device) for f in self.task.features(probe, scale)))
        return (*self.task.polynomial(probe, corrections), corrections)

    def training_step(self, batch, batch_idx):
        poly, scale, corrections = self._predict(batch["probe"])
        loss, parts = self.task.loss(poly, scale, batch, corrections)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["lam"]))
        self.log_dict({f"train/{k}": v for k, v in parts.items()}, batch_size=len(batch["lam"]))
        return loss

    def validation_step(self, batch, batch_idx):
        poly, scale = self(batch["probe"])
        loss, _ = self.task.loss(poly, scale, batch)
        if batch_idx not in self._baseline_cache:  # the Chebyshev baseline never changes
            base, base_scale = self.task.polynomial(batch["probe"])
            self._baseline_cache[batch_idx] = self.task.iterations(base, base_scale, batch).double()
        baseline = self._baseline_cache[batch_idx]
        safe = self.task.safe(poly, scale, batch["probe"])  # unsafe polynomials fall back, as at inference
        learned = torch.where(safe, self.task.iterations(poly, scale, batch).double(), baseline)
        self._val_ratios.append(learned / baseline)
        self._val_fallbacks.append(~safe)
        self.log("val/loss", loss, batch_size=len(batch["lam"]))

    def on_validation_epoch_start(self):
        self._val_ratios, self._val_fallbacks = [], []

    def on_validation_epoch_end(self):
        ratios = gathered(self, self._val_ratios)
        self.log("val/log_ratio", ratios.log().mean(), prog_bar=True)  # geometric mean: gains and losses weigh alike
        self.log("val/iter_ratio", ratios.median(), prog_bar=True)
        self.log("val/iter_ratio_mean", ratios.mean())
        self.log("val/worse_5pct", (ratios > 1.05).double().mean())
        self.log("val/fallback_rate", gathered(self, [f.double() for f in self._val_fallbacks]).mean())


def gathered(module: L.LightningModule, parts: list[torch.Tensor]) -> torch.Tensor:
    """A validation epoch's per-batch values, concatenated over every DDP rank (each rank validates
    its shard), so the metrics are those of the whole validation set, as in one process."""
    values = torch.cat(parts)
    if module.trainer is not None and module.trainer.world_size > 1:
        values = module.all_gather(values).reshape(-1)
    return values

def adamw_with_warmup_cosine(parameters, hparams) -> dict:
    """AdamW (``lr``, ``weight_decay``) with a linear warm-up over ``warmup_steps`` and a cosine
    decay to 10 % at ``max_steps`` (Lightning's optimizer dict, stepped every step)."""
    opt = torch.optim.AdamW(parameters, lr=hparams.lr, weight_decay=hparams.weight_decay)
    warmup, total = hparams.warmup_steps, max(hparams.max_steps, 1)

    def schedule(step):
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.1 + 0.45 * (1 + torch.cos(torch.tensor(progress * torch.pi)).item())

    return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, schedule), "interval": "step"}}
