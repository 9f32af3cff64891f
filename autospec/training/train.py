"""``train(cfg)``: build everything from the Hydra config, fit, export the engine.

``train.py`` is a thin ``@hydra.main`` wrapper around this function; tests call it directly.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from autospec.training.export import export_system
from autospec.training.labelled import system_class


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)


def _instantiate_group(group) -> list:
    return [instantiate(node) for node in (group or {}).values() if node is not None and "_target_" in node]


def train(cfg: DictConfig) -> dict:
    """Fit an engine as configured; returns ``{"artifact": Path, "metrics": {...}, "best_checkpoint": str}``."""
    os.environ.setdefault("WANDB_MODE", "offline")  # never prompt or touch the network
    os.environ.setdefault("WANDB_SILENT", "true")
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    system = system_class(_plain(cfg.task))(
        task=_plain(cfg.task),
        engine=_plain(cfg.engine),
        probe=_plain(cfg.probe),
        max_steps=int(cfg.trainer.max_steps),
        **_plain(cfg.optim),
    )
    counts = system.engine.parameter_counts()
    print(f"engine: {cfg.engine.backbone} backbone, {counts['total']:,} parameters "
          f"({counts['backbone']:,} in the backbone)", flush=True)
    loggers = _instantiate_group(cfg.get("logger"))
    callbacks = [c for c in _instantiate_group(cfg.get("callbacks"))
                 if loggers or not isinstance(c, L.pytorch.callbacks.LearningRateMonitor)]  # it needs a logger
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    # resume with weights_only=True: a checkpoint is never unpickled beyond tensors and plain values
    trainer.fit(system, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    step = int(trainer.global_step)
    if best:  # export the best validated weights, not merely the last ones
        checkpoint = torch.load(best, map_location="cpu", weights_only=True)
        system.load_state_dict(checkpoint["state_dict"])
        step = int(checkpoint.get("global_step", step))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.as_tensor(v).numel() == 1}
    if best and trainer.checkpoint_callback.best_model_score is not None:
        metrics["best/val_log_ratio"] = float(trainer.checkpoint_callback.best_model_score)
    target = Path(cfg.export_dir) / cfg.name
    artifact = target.with_suffix(".json")  # the path export_system returns
    if trainer.is_global_zero:  # DDP: every rank holds the same weights; one writes the artifact
        artifact = export_system(system, target, {"metrics": metrics, "global_step": step, "seed": int(cfg.seed),
                                                  "data": _plain(cfg.data)})
    trainer.strategy.barrier("export")
    for logger in trainer.loggers:
        if hasattr(logger, "experiment") and type(logger).__name__ == "WandbLogger":
            logger.experiment.finish()
    return {"artifact": artifact, "metrics": metrics, "best_checkpoint": best}
