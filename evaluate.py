"""Evaluate autospec against its baselines: ``python evaluate.py [task=linsys] [eval.key=value ...]``.

Writes ``results.csv``, ``results.md`` and PNG plots to ``eval.output_dir`` (default: the Hydra run
directory ``outputs/evaluate/<time>``; given, it is also the run directory, so nothing is written
into the checkout) and prints a summary; see ``conf/evaluate.yaml`` and :mod:`autospec.evaluation`.
``-m`` sweeps (e.g. ``hydra/launcher=joblib eval.shards=4 'eval.shard=range(4)'``) write one folder
per job and merge their ``results.csv`` into the sweep folder (:mod:`autospec.evaluation.sweep`).
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from autospec.evaluation import evaluate

# conf/evaluate.yaml: the run directory is eval.output_dir when given, else outputs/evaluate/<time>
if not OmegaConf.has_resolver("or_else"):
    OmegaConf.register_new_resolver("or_else", lambda value, default: default if value is None else value)


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    plain = OmegaConf.to_container(cfg, resolve=True)
    hydra_cfg = HydraConfig.get()
    if plain["eval"].get("output_dir") is None or hydra_cfg.mode == RunMode.MULTIRUN:  # a sweep's job: its own folder
        plain["eval"]["output_dir"] = hydra_cfg.runtime.output_dir
    evaluate(plain)


if __name__ == "__main__":
    main()
