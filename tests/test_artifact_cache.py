"""The in-process engine cache never serves a stale engine (issue 18, point 5): it is keyed on the
``stat`` of both artifact files, so rewriting either — even within the same second, even to the
same size — is seen by the next ``load``."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file

from autospec import errors, load
from autospec.engine.artifact import shipped_dir, write_artifact


@pytest.fixture
def artifact(tmp_path):
    src = shipped_dir() / "eigfilter-d15"
    for suffix in (".json", ".safetensors"):
        shutil.copy(src.with_suffix(suffix), tmp_path / f"engine{suffix}")
    meta = json.loads((tmp_path / "engine.json").read_text())
    meta["weights"] = "engine.safetensors"
    (tmp_path / "engine.json").write_text(json.dumps(meta))
    return tmp_path / "engine.json"


def test_rewritten_json_is_reloaded(artifact):
    first = load(artifact)
    assert load(artifact) is first  # unchanged: served from the cache
    meta = json.loads(artifact.read_text())
    meta["probe"]["steps"] = first.probe_steps + 1
    stat = artifact.stat()
    artifact.write_text(json.dumps(meta))
    os.utime(artifact, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime: the change is still seen
    again = load(artifact)
    assert again is not first and again.probe_steps == first.probe_steps + 1


def test_rewritten_weights_are_reloaded_and_checked(artifact):
    first = load(artifact)
    state = load_file(str(artifact.with_suffix(".safetensors")))
    meta = {k: v for k, v in json.loads(artifact.read_text()).items() if k in ("task", "engine", "probe")}
    changed = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    write_artifact(changed, meta, artifact.with_suffix(""))  # both files replaced (new inodes)
    again = load(artifact)
    assert again is not first
    key = next(k for k, v in state.items() if v.is_floating_point())
    assert torch.allclose(again.engine.state_dict()[key] - first.engine.state_dict()[key], torch.ones(()))
    artifact.with_suffix(".safetensors").write_bytes(b"tampered")  # weights no longer match the JSON
    with pytest.raises(errors.ArtifactError, match="corrupt or modified"):
        load(artifact)
