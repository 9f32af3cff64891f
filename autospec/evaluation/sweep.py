"""Evaluations over many matrices in parallel: Hydra multirun jobs, merged into one ``results.csv``.

    python evaluate.py -m hydra/launcher=joblib hydra.launcher.n_jobs=2 \\
        eval.shards=4 'eval.shard=range(4)' eval.matrix_dir=DIR eval.output_dir=OUT

Every job evaluates its share of the matrices (sources ``shard, shard + shards, ...`` of the
evaluation's list, :func:`shard_of`) into its own job folder ``OUT/<job>/`` (results.csv,
results.md, plots); any launcher works (``hydra/launcher=joblib``: the joblib launcher plugin,
processes on this machine; the default: one job after another). When the sweep ends,
:class:`MergeResults` (a Hydra callback, ``conf/evaluate.yaml``) concatenates the jobs' CSV files
into ``OUT/results.csv`` — the same columns, the rows in job order — and, for ``linsys``, writes
``OUT/results.md`` from the merged rows. :func:`merge_results` does the same by hand.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from autospec.errors import InputValueError
from autospec.evaluation.runner import shard_of  # noqa: F401  (re-exported: the jobs' share)


def job_results(sweep_dir: str | Path) -> list[Path]:
    """The jobs' ``results.csv`` files under ``sweep_dir`` (``<job>/results.csv``), in job order."""
    found = [p for p in Path(sweep_dir).glob("*/results.csv") if p.parent.name.isdigit()]
    return sorted(found, key=lambda p: int(p.parent.name))


def merge_results(sweep_dir: str | Path, task: str | None = None, meta: Mapping | None = None) -> Path:
    """Concatenate the jobs' ``results.csv`` into ``sweep_dir/results.csv`` (every job must have
    the same header); with ``task="linsys"`` also write ``sweep_dir/results.md`` from the merged
    rows (``meta``: the evaluation's engine, degree, rtol, maxiter, seed). Returns the merged CSV."""
    files = job_results(sweep_dir)
    if not files:
        raise InputValueError(f"no job results (<job>/results.csv) under {sweep_dir}")
    header, rows = None, []
    for path in files:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            head = next(reader, None)
            if header is None:
                header = head
            elif head != header:
                raise InputValueError(f"{path} has columns {head}, the first job {header}: not one evaluation")
            rows += list(reader)
    out = Path(sweep_dir) / "results.csv"
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    if task == "linsys":
        _linsys_markdown(header, rows, Path(sweep_dir) / "results.md", meta or {})
    return out


def _linsys_markdown(header: list[str], rows: list[list[str]], path: Path, meta: Mapping) -> None:
    from autospec.evaluation.linsys import Row
    from autospec.evaluation.linsys_report import summarize, write_markdown

    def value(text: str, kind):
        if text == "":
            return None
        return text == "True" if kind is bool else kind(text)

    kinds = {"n": int, "nnz": int, "degree": int, "probe_steps": int, "outer_iters": int, "matvecs": int,
             "seconds": float, "rel_residual": float, "converged": bool}
    parsed = [Row(**{c: value(v, kinds.get(c, str)) if c in kinds else v for c, v in zip(header, r)}) for r in rows]
    for row in parsed:
        row.converged = bool(row.converged)
    info = {"engine": meta.get("engine", "?"), "degree": meta.get("degree", "?"), "rtol": float(meta.get("rtol", math.nan)),
            "maxiter": meta.get("maxiter", "?"), "seed": meta.get("seed", "?"), "engine_error": ""}
    write_markdown(parsed, summarize(parsed), path, info)


try:  # the callback needs Hydra (the train extra); merge_results does not
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object


class MergeResults(Callback):
    """Hydra callback: at the end of a multirun, :func:`merge_results` over the sweep folder."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not job_results(sweep_dir):
            return
        task = config.task.name
        meta = {k: config.eval.get(k) for k in ("engine", "degree", "rtol", "maxiter", "seed")} if task == "linsys" else {}
        merged = merge_results(sweep_dir, task, meta)
        print(f"merged {len(job_results(sweep_dir))} jobs into {merged}")
