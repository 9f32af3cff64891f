"""Checkpoint and progress callbacks that make resuming lose no work.

Lightning's ``ModelCheckpoint(save_last=True)`` with a monitor refreshes ``last.ckpt`` only when a
top-k checkpoint is written, so after a kill ``last.ckpt`` may be hundreds of steps old.
:class:`LastCheckpoint` keeps ``<dirpath>/last.ckpt`` at the latest step on its own: every
``every_n_train_steps`` steps and when training ends, written to a temporary file and renamed (a
kill during the write leaves the previous ``last.ckpt`` intact). ``python train.py
ckpt_path=<run>/checkpoints/last.ckpt`` resumes from it. :class:`StepProgressBar` shows the step
out of ``max_steps`` (the training stream is endless, so Lightning's bar has no total), resumed
runs included.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

LAST = "last.ckpt"


class LastCheckpoint(L.Callback):
    """``<dirpath>/last.ckpt`` = the latest step (every ``every_n_train_steps`` and at the end)."""

    def __init__(self, dirpath: str | os.PathLike, every_n_train_steps: int = 50):
        if int(every_n_train_steps) < 1:
            raise ValueError(f"every_n_train_steps must be >= 1, got {every_n_train_steps}")
        self.dirpath = Path(dirpath)
        self.every = int(every_n_train_steps)
        self._saved_step = -1

    @property
    def path(self) -> Path:
        return self.dirpath / LAST

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every == 0:
            self.save(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self.save(trainer)

    def save(self, trainer) -> None:
        """Write ``last.ckpt`` for the trainer's current step (once per step), atomically."""
        if trainer.global_step == self._saved_step or trainer.sanity_checking:
            return
        self._saved_step = trainer.global_step
        tmp = self.dirpath / f".{LAST}.partial"
        trainer.save_checkpoint(tmp, weights_only=False)  # full state (to resume); every rank takes part
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
        trainer.strategy.barrier()


class StepProgressBar(TQDMProgressBar):
    """TQDM bar over optimisation steps: ``global_step / max_steps``, also after a resume."""

    def on_train_epoch_start(self, trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        if trainer.max_steps and trainer.max_steps > 0:
            bar = self.train_progress_bar
            bar.reset(total=trainer.max_steps)
            bar.initial = 0
            bar.n = trainer.global_step
            bar.set_description(f"steps {trainer.global_step}→{trainer.max_steps}" if trainer.global_step else "steps")
            bar.refresh()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.max_steps and trainer.max_steps > 0:
            bar = self.train_progress_bar
            if trainer.global_step % max(self.refresh_rate, 1) == 0 or trainer.global_step >= trainer.max_steps:
                bar.n = trainer.global_step
                bar.set_postfix(self.get_metrics(trainer, pl_module))
                bar.refresh()
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
