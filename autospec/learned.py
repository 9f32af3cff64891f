"""Trained engines at inference: ``autospec.load(name_or_path)`` → one :class:`LearnedEngine`.

The registries live here, below the family wings:

* :data:`TASKS` maps a task name (as stored in artifacts and Lightning hparams) to its class. Each
  family registers its task where it defines it (``@register_task``, in ``linsys/task.py``,
  ``eigen/task.py``, ``matfun/task.py``); ``import autospec`` imports every family, so the table is
  complete before anything can be loaded. Tasks are only ever built from plain dicts through
  :func:`build_task` (never ``hydra.utils.instantiate``).
* :data:`DEFAULT_ENGINES` names the shipped engine each family uses by default — the only place
  those names are written in the library.

A task provides ``name``, ``degree``, ``layout`` (engine shape), ``features(probe, scale)`` (engine
input), ``scale(probe)``, ``polynomial(probe, corrections=None)`` (``None`` → its classical
baseline), ``loss(poly, scale, batch)``, ``iterations(poly, scale, batch)`` (validation cost) and
``safe(poly, scale, probe)``; optionally ``prepare(batch, generator)`` (its own training batches),
``retired`` (artifact keys accepted only at their old fixed value and dropped) and ``inference``
(a namespace of the family's adapter functions, exposed as :class:`LearnedEngine` methods, e.g. the
``linsys`` preconditioner).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import torch

from autospec.engine.artifact import read_artifact, resolve
from autospec.core.validate import seed_renamed
from autospec.engine.model import Engine
from autospec.errors import ArtifactError, AutospecError, InputTypeError, InputValueError

TASKS: dict[str, type] = {}

DEFAULT_ENGINES = {
    "linsys": "linsys-cg-d10",
    "eigfilter": "eigfilter-d15",
    "matfun/action/inv_sqrt": "matfun-inv_sqrt-d20",
    "matfun/action/sqrt": "matfun-sqrt-d20",
    "matfun/action/inv": "matfun-inv-d20",
    "matfun/coupled/inv_sqrt": "matfun-coupled-inv_sqrt",
    "matfun/polar/polar": "matfun-polar-bf16",
}


def register_task(cls: type) -> type:
    """Class decorator: make a task buildable by its ``name`` (artifacts, hparams)."""
    TASKS[cls.name] = cls
    return cls


def build_task(spec: dict):
    """Build a task from a plain dict ``{"name": ..., **kwargs}`` (as stored in artifacts)."""
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in TASKS:
        raise InputValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    cls = TASKS[name]
    for key, value in getattr(cls, "retired", {}).items():
        if key in spec and spec.pop(key) != value:
            raise InputValueError(f"task {name!r}: setting {key!r} was retired (it only ever took the value {value!r})")
    return cls(**spec)


class LearnedEngine:
    """A trained engine and its task: probe-like input → the task's polynomial (any task).

    ``preconditioner``, ``preconditioner_from_probe``, ``coefficients`` and ``polynomial`` are the
    ``linsys`` adapter (:mod:`autospec.linsys.learned`); other tasks raise ``InputValueError``."""

    def __init__(self, engine: Engine, task, meta: dict):
        self.engine = engine.eval()
        self.task = task
        self.meta = meta
        self.name = meta.get("name", "engine")
        self.probe_steps = int(meta["probe"]["steps"])

    @property
    def degree(self) -> int:
        return self.task.degree

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, task={self.task.name!r}, degree={self.degree})"

    @torch.no_grad()
    def outputs(self, probe) -> tuple[torch.Tensor, ...]:
        """The engine's raw outputs (float64, on the probe's device) for a probe (or the task's
        engine input); the engine may live on another device."""
        features = self.task.features(probe, self.task.scale(probe))
        home = next(f.device for f in features if isinstance(f, torch.Tensor))
        device = next(self.engine.parameters()).device
        moved = [f.to(device) if isinstance(f, torch.Tensor) else f for f in features]
        return tuple(c.to(home, torch.float64) for c in self.engine(*moved))

    def coefficients_from_probe(self, probe):
        """``(poly, scale)``: the task's polynomial (float64) for a probe (or the task's engine input)."""
        return self.task.polynomial(probe, self.outputs(probe))

    def _adapter(self, what: str):
        fn = getattr(getattr(self.task, "inference", None), what, None)
        if fn is None:
            raise InputValueError(f"engine {self.name!r} is a {self.task.name!r} engine: it has no {what}()")
        return fn

    @seed_renamed
    def coefficients(self, A, *, probe_steps: int | None = None, rng=None):
        """``linsys``: probe ``A`` and return ``(poly, scale, probe)``; ``M = p(A/s)/s``."""
        return self._adapter("coefficients")(self, A, probe_steps, rng)

    @seed_renamed
    def polynomial(self, lam, A=None, *, probe_steps: int | None = None, rng=None) -> torch.Tensor:
        """``linsys``: ``p_A(λ) = p(λ/s)/s`` at the points ``lam`` for ``A`` (default ``diag(λ)``)."""
        return self._adapter("polynomial")(self, lam, A, probe_steps, rng)

    def preconditioner_from_probe(self, op, probe):
        """``linsys``: the learned preconditioner, or Chebyshev (``ritz``) with the reason when the safeguard fails."""
        return self._adapter("preconditioner_from_probe")(self, op, probe)

    @seed_renamed
    def preconditioner(self, A, *, probe_steps: int | None = None, rng=None):
        """``linsys``: ``M ≈ A⁻¹``, a SciPy ``LinearOperator`` for SciPy/NumPy input (use as ``M`` in
        ``scipy.sparse.linalg.cg``), else a callable on torch tensors; ``M.fallback`` says whether
        the safeguard replaced the learned polynomial by Chebyshev. ``probe_steps=None``: the
        engine's own; ``rng`` (None: seed 0, an integer seed or a NumPy ``Generator``) seeds the probe."""
        return self._adapter("preconditioner")(self, A, probe_steps, rng)


LearnedPolynomial = LearnedEngine  # the name linsys engines had before there was one class


def build_engine(meta: dict) -> tuple[Engine, object]:
    """Rebuild ``(engine, task)`` from artifact metadata through the registries."""
    task = build_task(meta["task"])
    return Engine(**task.layout, **meta["engine"]), task


def load(name_or_path: str | Path | LearnedEngine) -> LearnedEngine:
    """Load a shipped engine by name (e.g. ``"linsys-cg-d10"``) or an exported artifact by path
    (a loaded :class:`LearnedEngine` is returned as it is).

    Loaded engines are cached in-process, keyed on the artifact's path and the ``stat`` of both of
    its files (JSON and weights: inode, size, modification and change times), so an artifact
    rewritten in place is read again."""
    if isinstance(name_or_path, LearnedEngine):
        return name_or_path
    if not isinstance(name_or_path, (str, Path)):
        raise InputTypeError(f"load() takes an engine name or a path (str or Path), got {type(name_or_path).__name__}")
    meta_path = resolve(name_or_path)
    return _load_cached(str(meta_path), _fingerprint(meta_path))


def load_for(engine, task: str, user: str, default: str | None = None) -> LearnedEngine:
    """:func:`load` ``engine`` (``None``: ``DEFAULT_ENGINES[default or task]``) and check that it was
    trained for ``task`` (a task's ``family``, when it has one: ``linsys-choice`` engines are ``linsys``
    engines); ``user`` names the caller in the error (e.g. ``"method='autospec' of eigsh"``)."""
    learned = load(DEFAULT_ENGINES[default or task] if engine is None else engine)
    if getattr(learned.task, "family", learned.task.name) != task:
        raise InputValueError(f"engine {learned.name!r} was trained for task {learned.task.name!r}, "
                              f"{user} needs {'an' if task[0] in 'aeiou' else 'a'} {task} engine")
    return learned


def _stat(path: Path) -> tuple[int, ...] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _fingerprint(meta_path: Path) -> tuple:
    """What makes a cached engine stale: the ``stat`` of the JSON and of the weights it names."""
    weights = meta_path.with_suffix(".safetensors")
    try:
        named = json.loads(meta_path.read_text()).get("weights")
        if isinstance(named, str) and named:
            weights = meta_path.parent / named
    except (OSError, ValueError, AttributeError):
        pass  # read_artifact reports a corrupt JSON properly
    return _stat(meta_path), _stat(weights)


@lru_cache(maxsize=8)
def _load_cached(path: str, _fingerprint: tuple) -> LearnedEngine:
    state, meta = read_artifact(path)
    try:
        engine, task = build_engine(meta)
    except AutospecError as err:
        raise ArtifactError(f"engine metadata {path} does not describe a buildable engine: {err}") from err
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise ArtifactError(f"malformed engine metadata {path}: the task or engine settings do not build "
                            f"({type(err).__name__}: {err})") from err
    try:
        engine.load_state_dict(state)
    except RuntimeError as err:
        raise ArtifactError(f"engine weights do not match the architecture in the metadata of {path}: {err}") from err
    return LearnedEngine(engine, task, meta)
