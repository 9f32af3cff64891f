"""Evaluations of every family against its baselines (``python evaluate.py task=...``): one shared
skeleton (:mod:`.runner`: matrix sources, rows → CSV, Markdown tables, figures, the case loop) and
one module per family (:mod:`.linsys`, :mod:`.eigen`, :mod:`.matfun`)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from autospec.evaluation import eigen, linsys, matfun
from autospec.evaluation.runner import Evaluation

EVALUATIONS = {"linsys": linsys.evaluate_config, "eigfilter": eigen.evaluate_config, "matfun": matfun.evaluate_config}


def evaluate(cfg: Mapping) -> Evaluation:
    """Run the evaluation of ``cfg["task"]["name"]`` with the settings ``cfg["eval"]`` (plain dicts, as
    ``conf/evaluate.yaml`` composes them; ``torch_threads`` sets torch's intra-op threads) and print
    its summary."""
    task = cfg["task"]["name"]
    if task not in EVALUATIONS:
        raise SystemExit(f"evaluate.py: no evaluation for task={task!r} yet; available: {', '.join(EVALUATIONS)}")
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg["torch_threads"]))
    return EVALUATIONS[task](dict(cfg["eval"]))
