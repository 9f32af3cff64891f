"""Training pipeline end to end: config composition, train → export → load → solve, resume,
multirun, artifact integrity, and the untrained engine being exactly Chebyshev."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

import autospec
from autospec import errors
from autospec.engine.artifact import read_artifact, write_artifact
from autospec.learned import load
from autospec.training.export import export_checkpoint
from autospec.core.operators import Diagonal
from autospec.core.probe import lanczos
from autospec.core.recurrences import evaluate
from autospec.training.system import AutospecSystem
from autospec.learned import TASKS, build_task
from autospec.linsys.task import LinsysTask
from autospec.training.train import train

from conftest import REPO, poisson2d

CONF = str(REPO / "conf")
EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))


def _cfg(tmp_path: Path, overrides=()):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=smoke", *overrides], return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
        cfg.hydra.runtime.output_dir = str(tmp_path)
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"experiment={experiment}"])
    assert cfg.task.name in TASKS and cfg.trainer.max_steps > 0
    build_task(OmegaConf.to_container(cfg.task, resolve=True))  # every experiment's task is constructible
    assert cfg.data.probe_steps == "${probe.steps}" or cfg.data.probe_steps == cfg.probe.steps


@pytest.mark.parametrize("group, option", [("engine", "transformer"), ("engine", "attention"), ("task.recurrence", "basis"),
                                           ("logger", "wandb"), ("trainer", "ddp"), ("trainer", "gpu")])
def test_config_groups_compose(group, option):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        task = ["task=linsys"] if group == "task.recurrence" else []  # a setting of the gradient-trained task
        cfg = compose(config_name="train", overrides=[*task, f"{group}={option}"])
    if group == "task.recurrence":
        assert cfg.task.recurrence == "basis"
    if group == "logger":
        assert cfg.logger.wandb.offline is True


@pytest.mark.parametrize("task", ["linsys", "eigfilter", "matfun"])
def test_every_task_composes_with_its_own_recurrence(task):
    """The recurrence is a task setting: ``task=matfun`` alone composes to a constructible task."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"task={task}"])
    built = build_task(OmegaConf.to_container(cfg.task, resolve=True))
    assert built.name == task and cfg.task.recurrence == ("three_term" if task == "linsys" else "basis")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    result = train(_cfg(tmp))
    return tmp, result


def test_train_export_load_solve(trained):
    tmp, result = trained
    artifact = Path(result["artifact"])
    assert artifact.is_file() and artifact.with_suffix(".safetensors").is_file()
    assert (tmp / "checkpoints" / "last.ckpt").is_file()
    assert list((tmp / "csv").rglob("metrics.csv"))
    meta = json.loads(artifact.read_text())
    assert meta["task"]["degree"] == 10 and meta["probe"]["steps"] == 12 and "val/iter_ratio" in meta["metrics"]
    engine = load(artifact)
    A = poisson2d(12)
    b = np.ones(A.shape[0])
    x, info = autospec.solve(A, b, method="autospec", engine=str(artifact), probe_steps=12, rtol=1e-10)
    assert info.converged and np.linalg.norm(b - A @ x) <= 1.01e-10 * np.linalg.norm(b)
    M = engine.preconditioner(A, probe_steps=12)
    assert isinstance(M, spla.LinearOperator)
    y, code = spla.cg(A, b, M=M, rtol=1e-10)
    assert code == 0
    Mt = engine.preconditioner(torch.from_numpy(A.toarray()), probe_steps=12)
    r = torch.ones(A.shape[0])
    np.testing.assert_allclose(Mt(r).numpy(), M @ r.numpy(), rtol=1e-10)


def test_resume_from_last_checkpoint(trained, tmp_path):
    tmp, _ = trained
    last = tmp / "checkpoints" / "last.ckpt"
    cfg = _cfg(tmp_path, [f"ckpt_path={last}", "trainer.max_steps=4"])
    result = train(cfg)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 4  # continued from step 2, not restarted
    assert Path(result["artifact"]).is_file()


def test_export_cli_and_bit_exact_round_trip(trained, tmp_path):
    tmp, result = trained
    out = tmp_path / "exported"
    proc = subprocess.run([sys.executable, "-m", "autospec", "export", str(tmp / "checkpoints" / "last.ckpt"), str(out)],
                          capture_output=True, text=True, check=True)
    assert proc.stdout.strip().endswith("exported.json")
    state, meta = read_artifact(out)
    ckpt = torch.load(tmp / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    for k, v in state.items():
        assert torch.equal(v, ckpt[f"engine.{k}"])
    # round trip through write/read is bit-exact
    again = write_artifact(state, {k: meta[k] for k in ("task", "engine", "probe")}, tmp_path / "again")
    state2, _ = read_artifact(again)
    assert all(torch.equal(state[k], state2[k]) for k in state)


def test_corrupt_truncated_and_wrong_version_artifacts_are_rejected(trained, tmp_path):
    _, result = trained
    state, meta = read_artifact(result["artifact"])
    good = write_artifact(state, {k: meta[k] for k in ("task", "engine", "probe")}, tmp_path / "good")
    weights = good.with_suffix(".safetensors")
    data = weights.read_bytes()

    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(errors.ArtifactError, match="corrupt or modified"):
        load(good)
    weights.write_bytes(data)
    record = json.loads(good.read_text())
    good.write_text(json.dumps({**record, "format_version": 99}))
    with pytest.raises(errors.ArtifactError, match="format version 99"):
        load(good)
    good.write_text("{not json")
    with pytest.raises(errors.ArtifactError, match="not valid JSON"):
        load(good)
    with pytest.raises(errors.ArtifactError, match="no engine artifact"):
        load(tmp_path / "missing")
    bad_ckpt = tmp_path / "bad.ckpt"
    bad_ckpt.write_bytes(b"garbage")
    with pytest.raises(errors.ArtifactError, match="cannot read Lightning checkpoint"):
        export_checkpoint(bad_ckpt, tmp_path / "x")


@pytest.mark.parametrize("recurrence, candidates", [("three_term", ()), ("basis", ()), ("three_term", (0, 2, 4))])
def test_untrained_engine_is_chebyshev(recurrence, candidates):
    task = {"name": "linsys", "degree": 10, "recurrence": recurrence, "shift_candidates": candidates}
    system = AutospecSystem(task=task, engine={"backbone": "transformer", "width": 16}, probe={"steps": 30})
    lam = torch.from_numpy(np.logspace(-4, 0, 300))
    probe = lanczos(Diagonal(lam), steps=30)
    poly, scale = system(probe)
    base, base_scale = LinsysTask(degree=10, recurrence=recurrence).polynomial(probe)
    grid = torch.linspace(0, 1.05, 500, dtype=torch.float64)
    assert torch.equal(scale, base_scale)
    np.testing.assert_allclose(evaluate(poly, grid).detach().numpy(), evaluate(base, grid).numpy(), rtol=1e-12, atol=1e-12)


def test_multirun_of_two_tiny_jobs(tmp_path):
    proc = subprocess.run(
        [sys.executable, "train.py", "-m", "experiment=smoke", "engine.width=8,16", "logger=none",
         f"hydra.sweep.dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    artifacts = sorted(tmp_path.glob("*/export/*.json"))
    assert len(artifacts) == 2
    widths = sorted(json.loads(p.read_text())["engine"]["width"] for p in artifacts)
    assert widths == [8, 16]


def test_shift_search_targets_the_fastest_candidate():
    task = LinsysTask(degree=10, pcg_steps=200, shift_candidates=(0, 2, 4))
    lam = torch.from_numpy(np.concatenate([np.logspace(-5, -4, 3), np.linspace(0.05, 1, 400)]))[None]  # isolated small
    batch = {"lam": lam, "weights": torch.ones(1, lam.shape[-1], 1), "probe": lanczos(Diagonal(lam), steps=30)}
    best = int(task.candidate_iterations(batch).argmin(-1)[0])  # fewest PCG iterations (ties → the first)
    iters = []
    for g in (0, 2, 4):
        glob = torch.tensor([[0.0, 0.0, *(1.0 if c == g else 0.0 for c in (0, 2, 4))]])
        poly, scale = task.polynomial(batch["probe"], (glob, torch.zeros(1, 11, 2)))
        iters.append(int(task.iterations(poly, scale, batch)[0]))
    assert iters[best] == min(iters) and iters[best] < iters[0]  # leaving the outliers to CG pays
    with pytest.raises(errors.InputValueError, match="start with 0"):
        LinsysTask(shift_candidates=(1, 2))


def test_sigkill_and_resume_from_the_latest_step(tmp_path):
    """A real training process killed with SIGKILL resumes from its latest step: ``last.ckpt`` is
    refreshed every N steps whatever validation says (issue 18, point 2)."""
    import os
    import signal
    import time

    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(
        [sys.executable, "train.py", "experiment=smoke", "trainer.max_steps=100000", "trainer.val_check_interval=40",
         "callbacks.last_checkpoint.every_n_train_steps=5", "logger=none", f"hydra.run.dir={run}"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    step, deadline = -1, time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if last.is_file():
                step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
                if step >= 60:  # past the first validations: Lightning's save_last would lag here
                    break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL and step >= 60
    killed_at = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert killed_at >= step and killed_at % 5 == 0  # the last periodic save before the kill

    cfg = _cfg(tmp_path / "resumed", [f"ckpt_path={last}", f"trainer.max_steps={killed_at + 6}",
                                      "trainer.val_check_interval=40", "callbacks.last_checkpoint.every_n_train_steps=5"])
    train(cfg)
    resumed = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert resumed["global_step"] == killed_at + 6
    import csv
    rows = [r for f in (tmp_path / "resumed").rglob("metrics.csv") for r in csv.DictReader(f.open())]
    trained = sorted({int(r["step"]) for r in rows if r.get("train/loss")})
    assert trained and trained[0] >= killed_at and len(trained) == 6  # six more steps, not a restart from 0
