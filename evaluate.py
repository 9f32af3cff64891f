"""Evaluate autospec against its baselines: ``python evaluate.py [task=linsys] [eval.key=value ...]``.

Writes ``results.csv``, ``results.md`` and PNG plots to ``eval.output_dir`` (default: the Hydra run
directory) and prints a summary; see ``conf/evaluate.yaml`` and :mod:`autospec.evaluation`.
"""

import hydra
from omegaconf import DictConfig, OmegaConf

from autospec.evaluation import evaluate


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(OmegaConf.to_container(cfg, resolve=True))


if __name__ == "__main__":
    main()
