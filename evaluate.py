"""Evaluate autospec against its baselines: ``python evaluate.py [task=linsys] [eval.key=value ...]``.

Writes ``results.csv``, ``results.md`` and PNG plots to ``eval.output_dir`` (default: the Hydra run
directory) and prints a summary; see ``conf/evaluate.yaml`` and :mod:`autospec.evaluation`.
"""

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from autospec import eigen_evaluation, evaluation, matfun_evaluation

TASKS = {"linsys": evaluation.evaluate_config, "eigfilter": eigen_evaluation.evaluate_config,
         "matfun": matfun_evaluation.evaluate_config}


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    task = cfg.task.name
    if task not in TASKS:
        raise SystemExit(f"evaluate.py: no evaluation for task={task!r} yet; available: {', '.join(TASKS)}")
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    TASKS[task](OmegaConf.to_container(cfg.eval, resolve=True))


if __name__ == "__main__":
    main()
