"""The wheel (issue 18, point 7): built from a copy of the sources, it raises no deprecation
warning (SPDX ``license``, ``license-files``) and ships LICENSE, ``py.typed``, the kernels and the
shipped engines."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "autospec", "kernels", "checkpoints")


def test_wheel_builds_without_deprecation_warnings_and_ships_license_and_py_typed(tmp_path):
    setuptools = pytest.importorskip("setuptools")  # built without isolation: this environment's backend
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(f"setuptools {setuptools.__version__} < 77 (pyproject's build requirement)")
    src = tmp_path / "src"  # a copy: the build writes build/ and *.egg-info next to the sources
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                           "--no-index", "-v", "-w", str(tmp_path / "dist")], capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "deprecat" not in log.lower(), [line for line in log.splitlines() if "eprecat" in line]
    (wheel,) = (tmp_path / "dist").glob("autospec-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"autospec/py.typed", "autospec/kernels/__init__.py", "autospec/checkpoints/linsys-cg-d10.json",
            "autospec/checkpoints/linsys-cg-d10.safetensors"} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: BSD-3-Clause" in metadata
