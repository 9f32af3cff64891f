"""Evaluation sweeps (issue 19): Hydra multirun jobs over shards of the matrices, run in parallel by
the joblib launcher, merged into one results.csv (autospec/evaluation/sweep.py)."""

from __future__ import annotations

import csv
import subprocess
import sys
from importlib.util import find_spec

import pytest
from conftest import REPO

from autospec.errors import InputValueError
from autospec.evaluation.sweep import job_results, merge_results, shard_of

CONTRACT = ["matrix", "n", "nnz", "method", "degree", "probe_steps", "outer_iters", "matvecs", "seconds",
            "rel_residual", "converged"]


def _read(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_shards_cover_every_matrix_once():
    items = list(range(10))
    parts = [shard_of(items, k, 3) for k in range(3)]
    assert sorted(x for p in parts for x in p) == items and parts[0] == [0, 3, 6, 9]
    for bad in ({"shard": 3, "shards": 3}, {"shard": 0, "shards": 0}, {"shard": -1, "shards": 2}):
        with pytest.raises(InputValueError):
            shard_of(items, **bad)


def test_merge_concatenates_jobs_in_order_and_refuses_mixed_headers(tmp_path):
    for job, rows in ((1, [["b", "2"]]), (0, [["a", "1"]]), (10, [["c", "3"]])):
        (tmp_path / str(job)).mkdir()
        with open(tmp_path / str(job) / "results.csv", "w", newline="") as f:
            csv.writer(f).writerows([["matrix", "n"], *rows])
    assert [p.parent.name for p in job_results(tmp_path)] == ["0", "1", "10"]
    header, rows = _read(merge_results(tmp_path))
    assert header == ["matrix", "n"] and rows == [["a", "1"], ["b", "2"], ["c", "3"]]
    (tmp_path / "11").mkdir()
    (tmp_path / "11" / "results.csv").write_text("matrix,other\nd,4\n")
    with pytest.raises(InputValueError, match="columns"):
        merge_results(tmp_path)
    with pytest.raises(InputValueError, match="no job results"):
        merge_results(tmp_path / "empty")


@pytest.mark.slow  # ~1 min on 2 shared cores: two joblib workers each import torch
@pytest.mark.skipif(find_spec("hydra_plugins.hydra_joblib_launcher") is None,
                    reason="hydra-joblib-launcher absent (the train extra installs it)")
def test_multirun_with_the_joblib_launcher_merges_one_csv(tmp_path):
    out = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "evaluate.py", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "task=linsys",
         "eval.matrix_dir=null", "eval.gallery=[poisson2d_8,poisson2d_10,poisson3d_4]", "eval.shards=2",
         "eval.shard=0,1", f"eval.output_dir={out}", "eval.probe_steps=[12]", "eval.scalings=[none]",
         "eval.plots=false", "eval.oracle_max_n=0"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Joblib" in proc.stdout + proc.stderr  # the joblib launcher ran the jobs
    header, rows = _read(out / "results.csv")
    assert header[: len(CONTRACT)] == CONTRACT
    by_job = [_read(p)[1] for p in job_results(out)]
    assert len(by_job) == 2 and rows == by_job[0] + by_job[1]
    matrices = {r[0] for r in rows}
    assert matrices == {"poisson2d_8", "poisson2d_10", "poisson3d_4"}
    assert {r[0] for r in by_job[0]} == {"poisson2d_8", "poisson3d_4"}  # round-robin shards
    assert all(r[header.index("converged")] == "True" for r in rows)
    assert (out / "results.md").is_file() and "poisson3d_4" in (out / "results.md").read_text()
