"""DDP training (issue 19): ``python train.py trainer=ddp trainer.devices=2 trainer.accelerator=cpu``
(gloo) runs, writes one artifact, and validates as one process does at the same total batch; each
rank draws its own data (no duplicated spectra, no duplicated labelled items)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autospec.training.data import SpectraStream

REPO = Path(__file__).resolve().parents[1]
BATCH = {"batch_size": 2, "n_range": (32, 48), "kappa_range": (10.0, 1e4), "families": ("uniform", "log_uniform"),
         "probe_steps": 6}


def _first(stream: SpectraStream, count: int) -> list[torch.Tensor]:
    it = iter(stream)
    return [next(it)["lam"] for _ in range(count)]


def test_ranks_draw_distinct_spectra():
    ranks = [_first(SpectraStream(7, 0, rank, 2, **BATCH), 3) for rank in range(2)]
    seen = [lam for batches in ranks for lam in batches]
    for i in range(len(seen)):
        for j in range(i + 1, len(seen)):
            assert seen[i].shape != seen[j].shape or not torch.equal(seen[i], seen[j]), (i, j)


def test_ranks_interleave_the_one_process_stream():
    """Rank r of 2 takes batches r, r+2, r+4, ... of the one-process stream: together they draw
    exactly the spectra one process would, none twice."""
    single = _first(SpectraStream(7, 0, **BATCH), 4)
    rank0, rank1 = (_first(SpectraStream(7, 0, rank, 2, **BATCH), 2) for rank in range(2))
    for got, want in zip([rank0[0], rank1[0], rank0[1], rank1[1]], single):
        assert torch.equal(got, want)


def _train(tmp_path: Path, name: str, *overrides: str) -> dict:
    out = tmp_path / name
    cmd = [sys.executable, "train.py", "logger=none", "trainer.max_steps=300", "trainer.val_check_interval=100",
           f"hydra.run.dir={out}", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    artifact = Path(proc.stdout.strip().splitlines()[-1])
    assert artifact.is_file() and artifact.parent == out / "export", proc.stdout[-2000:]
    return {"meta": json.loads(artifact.read_text()), "stdout": proc.stdout, "stderr": proc.stderr}


@pytest.mark.slow
def test_ddp_two_processes_validate_as_one(tmp_path):
    """2 gloo processes × batch 64 against 1 process × batch 128 (equal total batch), 300 steps of the
    default labelled training: the best validation geometric-mean iteration ratio agrees within 2 %."""
    one = _train(tmp_path, "one", "data.batch_size=128")
    ddp = _train(tmp_path, "ddp", "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "data.batch_size=64")
    assert "GLOBAL_RANK: 1" in ddp["stdout"] + ddp["stderr"]  # two processes really ran
    a, b = one["meta"]["metrics"]["best/val_log_ratio"], ddp["meta"]["metrics"]["best/val_log_ratio"]
    assert a < -0.05 and b < -0.05  # both learned to beat the Chebyshev start
    assert abs(a - b) <= 0.02, (a, b)  # log units: the geometric-mean ratios agree within ~2 %


@pytest.mark.slow
def test_ddp_on_the_synthetic_stream(tmp_path):
    """The gradient-trained task on on-the-fly spectra (rank-strided seeds) runs under DDP too."""
    out = _train(tmp_path, "smoke", "experiment=smoke", "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu",
                 "trainer.max_steps=4", "trainer.val_check_interval=2")
    assert "GLOBAL_RANK: 1" in out["stdout"] + out["stderr"]
    assert out["meta"]["global_step"] >= 2 and "val/log_ratio" in out["meta"]["metrics"]
