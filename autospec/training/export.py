"""Export trained engines: a Lightning system or checkpoint → ``<name>.safetensors`` + ``<name>.json``
(``python -m autospec export CKPT OUT``)."""

from __future__ import annotations

from pathlib import Path

import torch

from autospec.engine.artifact import write_artifact
from autospec.errors import ArtifactError
from autospec.training.labelled import system_class


def export_system(system, out: str | Path, extra: dict | None = None) -> Path:
    """Export a trained system (``AutospecSystem`` or ``ChoiceSystem``: its engine and plain hparams)."""
    hp = system.hparams
    meta = {"task": dict(hp["task"]), "engine": dict(hp["engine"]), "probe": dict(hp["probe"]),
            "training": {k: hp[k] for k in ("lr", "weight_decay", "warmup_steps", "max_steps")}, **(extra or {})}
    return write_artifact(system.engine.state_dict(), meta, out)


def export_checkpoint(ckpt: str | Path, out: str | Path) -> Path:
    """Export any Lightning checkpoint of an autospec system (``python -m autospec export``)."""
    path = Path(ckpt)
    if not path.is_file():
        raise ArtifactError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated/foreign files
        raise ArtifactError(f"cannot read Lightning checkpoint {path}: {err}") from err
    hp = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not hp or "task" not in hp or "engine" not in hp:
        raise ArtifactError(f"{path} is not a checkpoint of an autospec system (no task/engine hparams)")
    system = system_class(hp["task"])(**hp)
    system.load_state_dict(checkpoint["state_dict"])
    return export_system(system, out, {"source_checkpoint": path.name, "global_step": checkpoint.get("global_step")})
