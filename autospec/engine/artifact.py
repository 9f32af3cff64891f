"""Engine artifacts: ``<name>.safetensors`` (weights) + ``<name>.json`` (everything else).

No pickle anywhere: weights are safetensors, metadata is JSON holding plain values, and engines
are rebuilt through the task/backbone registries (never ``hydra.utils.instantiate``). The JSON
records the sha256 of the weights file; ``read_artifact`` checks it and the format version.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib import resources
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from autospec.errors import ArtifactError

FORMAT = "autospec-engine"
FORMAT_VERSION = 1


def shipped_dir() -> Path:
    """Folder of the engines shipped with autospec (the repository's ``checkpoints/``)."""
    return Path(str(resources.files("autospec.checkpoints")))


def shipped_names() -> list[str]:
    return sorted(p.stem for p in shipped_dir().glob("*.json"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; artifacts are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_artifact(state_dict: dict[str, torch.Tensor], meta: dict, out: str | Path) -> Path:
    """Write ``out.safetensors`` and ``out.json``; returns the JSON path."""
    base = Path(out)
    base = base.with_suffix("") if base.suffix in (".json", ".safetensors") else base
    base.parent.mkdir(parents=True, exist_ok=True)
    weights, meta_path = base.with_suffix(".safetensors"), base.with_suffix(".json")
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    _atomic_write(weights, lambda tmp: save_file(tensors, tmp, metadata={"format": FORMAT}))
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, "name": base.name, **meta,
              "weights": weights.name, "sha256": _sha256(weights)}
    _atomic_write(meta_path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n"))
    return meta_path


def resolve(name_or_path: str | Path) -> Path:
    """JSON path of an artifact given a shipped name, a path with or without suffix."""
    if not str(name_or_path).strip():
        raise ArtifactError(f"no engine artifact {str(name_or_path)!r}: give a shipped engine name "
                            f"({', '.join(shipped_names()) or 'none shipped'}) or the path of an exported artifact")
    p = Path(name_or_path)
    candidates = [p, p.with_suffix(".json"), Path(str(p) + ".json")] if p.suffix != ".json" else [p]
    if p.suffix == ".safetensors":
        candidates = [p.with_suffix(".json")]
    for c in candidates:
        if c.is_file():
            return c
    shipped = shipped_dir() / f"{p.name}.json"
    if shipped.is_file() and len(p.parts) == 1:
        return shipped
    raise ArtifactError(f"no engine artifact {str(name_or_path)!r}: not a file (.json + .safetensors) and not a "
                        f"shipped engine (shipped: {', '.join(shipped_names()) or 'none'})")


def _check_fields(meta: dict, meta_path: Path) -> None:
    """The shapes of the fields every artifact has: JSON objects, a weights file name beside the
    JSON, a hex digest and a positive integer probe size."""
    wrong = [k for k in ("task", "engine", "probe") if not isinstance(meta[k], dict)]
    wrong += [k for k in ("sha256", "weights") if not isinstance(meta[k], str) or not meta[k]]
    if isinstance(meta["weights"], str) and Path(meta["weights"]).name != meta["weights"]:
        wrong.append("weights")  # a bare file name beside the JSON, never a path elsewhere
    steps = meta["probe"].get("steps") if isinstance(meta["probe"], dict) else None
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        wrong.append("probe.steps")
    if not isinstance(meta["task"], dict) or not isinstance(meta["task"].get("name"), str):
        wrong.append("task.name")
    if wrong:
        raise ArtifactError(f"malformed engine metadata {meta_path}: bad {', '.join(dict.fromkeys(wrong))} "
                            "(task, engine, probe must be objects, probe.steps a positive integer, task.name a "
                            "string, weights a file name beside the JSON, sha256 a hex digest)")


def read_artifact(name_or_path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Load and verify an artifact; returns ``(state_dict, meta)``."""
    meta_path = resolve(name_or_path)
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"corrupt engine metadata {meta_path}: not valid JSON ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ArtifactError(f"{meta_path} is not an autospec engine artifact (format {meta.get('format')!r})"
                            if isinstance(meta, dict) else f"{meta_path} is not an autospec engine artifact")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{meta_path} has format version {meta.get('format_version')!r}; this autospec reads "
                            f"version {FORMAT_VERSION} — re-export it with a matching autospec")
    missing = [k for k in ("task", "engine", "probe", "sha256", "weights") if k not in meta]
    if missing:
        raise ArtifactError(f"corrupt engine metadata {meta_path}: missing {missing}")
    _check_fields(meta, meta_path)
    weights = meta_path.parent / meta["weights"]
    if not weights.is_file():
        raise ArtifactError(f"engine weights {weights} are missing (metadata {meta_path} refers to them)")
    digest = _sha256(weights)
    if digest != meta["sha256"]:
        raise ArtifactError(f"engine weights {weights} are corrupt or modified: sha256 {digest[:12]}… does not match "
                            f"the recorded {str(meta['sha256'])[:12]}…")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise ArtifactError(f"cannot read engine weights {weights}: {err}") from err
    return state, meta
