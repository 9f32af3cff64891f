"""The layout's rules, checked on the source (issue 17): every import of the package — module-level
or inside a function — goes down the layers, never in a circle; ``core/`` imports no wing and no
neural-network or training library; no module grows past 400 lines; ``import autospec`` pulls in
no training, plotting or network library; the installed package list names every package."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 400

# lower number = lower layer; a module may import its own layer (within its own package) or below.
LAYERS = {
    "autospec.errors": 0,
    "autospec.core": 1,
    "autospec.kernels": 1,
    "autospec.engine": 2,
    "autospec.matrices": 2,
    "autospec.sketch": 2,  # randomized NLA numerics (Nyström, sketched least squares) the wings use
    "autospec.learned": 3,
    # the family wings (and any new top-level package of autospec/): 4
    "autospec.optim": 5,  # Muon/Shampoo: applications of the matfun wing
    "autospec.training": 5,
    "autospec.evaluation": 5,
    "autospec.petsc": 5,  # PETSc integration: the linsys wing's polynomials inside KSP (issue 19)
    "autospec": 6,  # __init__ (re-exports) and __main__ (the command line)
}
WING = 4
CORE_FORBIDDEN = ("lightning", "hydra", "omegaconf", "wandb", "matplotlib", "torch.nn")


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO)
    parts = list(rel.with_suffix("").parts)
    if parts[0] == "kernels":
        parts = ["autospec", *parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    files = [*sorted((REPO / "autospec").rglob("*.py")), *sorted((REPO / "kernels").rglob("*.py"))]
    return {_module_name(p): p for p in files}


SOURCES = _sources()


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import statement in the file, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{module}.{alias.name}"
                found.append((sub if sub in SOURCES else module, node.lineno))
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in SOURCES.items():
        graph[name] = {target for target, _ in _imports(name, path) if target in SOURCES and target != name}
    return graph


def _layer(name: str) -> tuple[int, str]:
    """``(layer, unit)``: the unit is the package the layer rule is about (a wing, core, ...)."""
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if name == prefix or name.startswith(prefix + ".") and prefix != "autospec":
            return LAYERS[prefix], prefix
    parts = name.split(".")
    if len(parts) >= 2 and parts[1] != "__main__":
        return WING, ".".join(parts[:2])
    return LAYERS["autospec"], "autospec"


def test_the_walk_sees_the_whole_package():
    assert {"autospec", "autospec.core.operators", "autospec.learned", "autospec.kernels.common",
            "autospec.linsys.solve", "autospec.eigen.api", "autospec.matfun.api"} <= set(SOURCES)
    graph = _graph()
    assert "autospec.learned" in graph["autospec.linsys.solve"]  # module-level edges
    assert "autospec.training.export" in graph["autospec.__main__"]  # function-level edges too


def test_no_import_cycle():
    graph = _graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_imports_go_down_the_layers():
    wrong = []
    for name, path in SOURCES.items():
        layer, unit = _layer(name)
        for target, line in _imports(name, path):
            if target not in SOURCES or target == name:
                continue
            target_layer, target_unit = _layer(target)
            if target_layer > layer or (target_layer == layer == WING and target_unit != unit):
                wrong.append(f"{path.relative_to(REPO)}:{line}: {name} (layer {layer}) imports {target} "
                             f"(layer {target_layer})")
    assert not wrong, "imports that climb the layers or cross wings:\n" + "\n".join(wrong)


def test_core_imports_no_wing_and_no_training_library():
    wrong = []
    for name, path in SOURCES.items():
        if not name.startswith("autospec.core"):
            continue
        for target, line in _imports(name, path):
            inside = target.startswith("autospec.")
            if (inside and not (target.startswith("autospec.core") or target == "autospec.errors")) or any(
                    target == f or target.startswith(f + ".") for f in CORE_FORBIDDEN):
                wrong.append(f"{path.relative_to(REPO)}:{line}: {target}")
    assert not wrong, "core/ must stay below the wings and free of nn/Lightning:\n" + "\n".join(wrong)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_no_module_is_too_long(name):
    lines = SOURCES[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{SOURCES[name].relative_to(REPO)} has {lines} lines (at most {MAX_LINES}): split it"


def test_import_autospec_pulls_in_no_training_plotting_or_network_library():
    code = """
import sys
import numpy, scipy.sparse, scipy.sparse.linalg, safetensors.torch, torch  # the dependencies themselves
before = set(sys.modules)
import autospec
new = set(sys.modules) - before
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'hydra', 'omegaconf', 'matplotlib', 'wandb'))
network = sorted(m for m in new if m.split('.')[0] in ('urllib', 'http', 'ssl', 'socket'))
mine = sorted(m for m in new if m.startswith(('autospec.training', 'autospec.evaluation', 'autospec.matrices.download')))
print(heavy, network, mine)
assert not heavy and not network and not mine, (heavy, network, mine)
autospec.solve, autospec.pcg, autospec.eigsh, autospec.load, autospec.lanczos, autospec.recurrences.ThreeTerm
autospec.matfun.inv_sqrt, autospec.matfun.sqrt, autospec.matfun.polar, autospec.matfun.apply
autospec.fetch_suite  # the downloader, on first use
assert 'autospec.matrices.download' in sys.modules
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]


def test_pyproject_installs_every_package():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(config["packages"])
    packages = {_module_name(p.parent / "__init__.py") for p in (REPO / "autospec").rglob("__init__.py")}
    assert packages - listed == set(), f"add {sorted(packages - listed)} to [tool.setuptools] packages"
    assert {"autospec.kernels", "autospec.checkpoints"} <= listed
    assert config["package-dir"]["autospec.kernels"] == "kernels"
