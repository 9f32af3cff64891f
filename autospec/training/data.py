"""On-the-fly synthetic training data: spectra, right-hand-side weights and their probes.

Each item is a whole batch of ``batch_size`` spectra of one size ``n`` (drawn per batch), with
Gaussian weights (the right-hand side in the eigenbasis) and the Lanczos probe of ``diag(λ)`` —
computed by the same code, with the same number of steps, as at inference. A task with a
``prepare(batch, generator)`` method then turns it into its own training batch (e.g. the
``eigfilter`` task's subspace-iteration contexts).
"""

from __future__ import annotations

import math

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from autospec.core.operators import Diagonal
from autospec.core.probe import lanczos
from autospec.core.spectra import ALL_FAMILIES, sample_spectra
from autospec.learned import build_task


def make_batch(seed: int, batch_size: int, n_range: tuple[int, int], kappa_range, families, probe_steps: int,
               task: dict | None = None) -> dict:
    """One reproducible batch: ``lam (B, n)``, ``weights (B, n, 1)``, ``probe``, ``families``
    (then ``task.prepare``, when the task ``{"name": ..., ...}`` has one)."""
    gen = torch.Generator().manual_seed(int(seed))
    lo, hi = (math.log(v) for v in n_range)
    n = int(round(math.exp(lo + (hi - lo) * float(torch.rand(1, generator=gen, dtype=torch.float64)))))
    lam, names = sample_spectra(gen, batch_size, n, tuple(kappa_range), tuple(families))
    weights = torch.randn(batch_size, n, 1, generator=gen, dtype=torch.float64)
    probe = lanczos(Diagonal(lam), steps=probe_steps, seed=seed)
    batch = {"lam": lam, "weights": weights, "probe": probe, "families": names}
    prepare = getattr(build_task(task), "prepare", None) if task is not None else None
    return prepare(batch, gen) if prepare is not None else batch


class SpectraStream(IterableDataset):
    """Endless stream of batches; batch i of worker w on rank r (of ``world`` DDP ranks) uses seed
    ``base + (i·world + r)·workers + w``, starting at ``i = start`` (the global step, so a resumed run
    continues the stream instead of replaying it). Distinct seeds on every rank and worker: no two
    processes train on the same spectra (one process: ``base + i·workers + w``, as before DDP)."""

    def __init__(self, seed: int, start: int = 0, rank: int = 0, world: int = 1, **batch_kwargs):
        super().__init__()
        self.seed, self.start, self.batch_kwargs = seed, start, batch_kwargs
        self.rank, self.world = int(rank), int(world)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        workers, wid = (info.num_workers, info.id) if info else (1, 0)
        i = self.start
        while True:
            yield make_batch(self.seed + ((i * self.world + self.rank) * workers + wid), **self.batch_kwargs)
            i += 1


class FixedBatches(torch.utils.data.Dataset):
    """A fixed, seeded list of batches (the validation set)."""

    def __init__(self, seed: int, batches: int, **batch_kwargs):
        self.items = [make_batch(seed + i, **batch_kwargs) for i in range(batches)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _keep(batch):
    return batch


class SpectraDataModule(L.LightningDataModule):
    """Synthetic spectra for training (a fresh stream) and validation (fixed seed)."""

    def __init__(self, batch_size: int = 32, n_range=(256, 2048), kappa_range=(1e1, 1e8),
                 families=ALL_FAMILIES, probe_steps: int = 50, seed: int = 0, val_seed: int = 10_000_000,
                 val_batches: int = 4, val_batch_size: int = 64, val_n_range=(500, 4000), num_workers: int = 0,
                 task: dict | None = None):
        super().__init__()
        self.common = {"kappa_range": tuple(kappa_range), "families": tuple(families), "probe_steps": int(probe_steps),
                       "task": None if task is None else dict(task)}
        self.batch_size, self.n_range = int(batch_size), tuple(n_range)
        self.seed, self.val_seed, self.val_batches = int(seed), int(val_seed), int(val_batches)
        self.val_batch_size, self.val_n_range = int(val_batch_size), tuple(val_n_range)
        self.num_workers = int(num_workers)
        self.val_set = None

    def setup(self, stage: str | None = None):
        if self.val_set is None:
            self.val_set = FixedBatches(self.val_seed, self.val_batches, batch_size=self.val_batch_size,
                                        n_range=self.val_n_range, **self.common)

    def train_dataloader(self):
        trainer = self.trainer
        start, rank, world = (trainer.global_step, trainer.global_rank, trainer.world_size) if trainer else (0, 0, 1)
        stream = SpectraStream(self.seed, start, rank, world, batch_size=self.batch_size, n_range=self.n_range,
                               **self.common)
        return DataLoader(stream, batch_size=None, num_workers=self.num_workers, collate_fn=_keep,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=None, collate_fn=_keep)
