"""Trained engines as a library: ``autospec.load(name_or_path)`` and the export step.

``LearnedPolynomial`` wraps an engine and its task: probe an operator, predict the coefficients,
check the safeguard (finite coefficients, ``p > 0`` on ``[0, 1.05·upper]``) and hand out a
preconditioner — a SciPy ``LinearOperator`` for SciPy/NumPy input, a torch callable otherwise.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from autospec.artifact import read_artifact, write_artifact
from autospec.engine import Engine
from autospec.errors import ArtifactError
from autospec.operators import Diagonal, Operator, as_operator
from autospec.preconditioners import PolynomialPreconditioner, chebyshev_preconditioner, polynomial_is_safe
from autospec.probe import Probe, lanczos
from autospec.recurrences import evaluate
from autospec.tasks import build_task


class LearnedEngine:
    """A trained engine and its task: probe-like input → the task's polynomial (any task)."""

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
    def coefficients_from_probe(self, probe):
        """``(poly, scale)``: the task's polynomial (float64) for a probe (or the task's engine input)."""
        scale = self.task.scale(probe)
        corrections = self.engine(*self.task.features(probe, scale))
        return self.task.polynomial(probe, tuple(c.double() for c in corrections))


class LearnedPolynomial(LearnedEngine):
    """A trained engine for the ``linsys`` task, ready to precondition CG."""

    def coefficients(self, A, probe_steps: int | None = None, seed: int = 0):
        """Probe ``A`` and return ``(poly, scale, probe)``; ``M = p(A/s)/s``."""
        probe = lanczos(as_operator(A, symmetric=True, seed=seed), steps=probe_steps or self.probe_steps, seed=seed)
        return (*self.coefficients_from_probe(probe), probe)

    def polynomial(self, lam, A=None, probe_steps: int | None = None, seed: int = 0) -> torch.Tensor:
        """``p_A(λ) = p(λ/s)/s`` at the points ``lam`` for the operator ``A`` (default ``diag(λ)``)."""
        lam = torch.as_tensor(np.asarray(lam, dtype=np.float64))
        poly, scale, _ = self.coefficients(Diagonal(lam) if A is None else A, probe_steps, seed)
        return evaluate(poly, lam / scale) / scale

    def preconditioner_from_probe(self, op: Operator, probe: Probe) -> tuple[PolynomialPreconditioner, str | None]:
        """The learned preconditioner, or Chebyshev (``ritz``) with the reason when the safeguard fails."""
        poly, scale = self.coefficients_from_probe(probe)
        if not polynomial_is_safe(poly, upper=float(probe.upper / scale)):
            reason = "learned polynomial not positive on [0, 1.05*upper] or non-finite; used Chebyshev (ritz)"
            return chebyshev_preconditioner(op, probe, self.degree, "ritz"), reason
        return PolynomialPreconditioner(op, poly, float(scale)), None

    def preconditioner(self, A, probe_steps: int = 50, seed: int = 0):
        """``M ≈ A⁻¹``: a SciPy ``LinearOperator`` for SciPy/NumPy input (use as ``M`` in
        ``scipy.sparse.linalg.cg``), else a callable on torch tensors. ``M.fallback`` says whether
        the safeguard replaced the learned polynomial by Chebyshev."""
        op = as_operator(A, symmetric=True, seed=seed)
        M, fallback = self.preconditioner_from_probe(op, lanczos(op, steps=probe_steps, seed=seed))
        if isinstance(A, (np.ndarray, spla.LinearOperator)) or sp.issparse(A):
            out = M.as_linear_operator()
        else:
            out = _TorchPreconditioner(M)
        out.fallback = fallback
        out.probe_matvecs = op.matvecs
        return out


class _TorchPreconditioner:
    """Callable ``M(r)`` on torch vectors ``(n,)`` or blocks ``(n, k)``."""

    def __init__(self, M: PolynomialPreconditioner):
        self.M = M

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        r64 = r.to(self.M.op.dtype)
        out = self.M(r64.unsqueeze(-1) if r.ndim == 1 else r64)
        return (out.squeeze(-1) if r.ndim == 1 else out).to(r.dtype)


def build_engine(meta: dict) -> tuple[Engine, object]:
    """Rebuild ``(engine, task)`` from artifact metadata through the registries."""
    task = build_task(meta["task"])
    return Engine(**task.layout, **meta["engine"]), task


def load(name_or_path: str | Path) -> LearnedEngine:
    """Load a shipped engine by name (e.g. ``"linsys-cg-d10"``) or an exported artifact by path:
    a :class:`LearnedPolynomial` for ``linsys`` engines, a :class:`LearnedEngine` for other tasks."""
    if isinstance(name_or_path, LearnedEngine):
        return name_or_path
    path = str(name_or_path)
    return _load_cached(path, _mtime(path))


def _mtime(path: str) -> float:
    p = Path(path).with_suffix(".safetensors") if Path(path).suffix else Path(path + ".safetensors")
    return p.stat().st_mtime if p.exists() else 0.0


@lru_cache(maxsize=8)
def _load_cached(path: str, _mtime: float) -> LearnedEngine:
    state, meta = read_artifact(path)
    engine, task = build_engine(meta)
    try:
        engine.load_state_dict(state)
    except RuntimeError as err:
        raise ArtifactError(f"engine weights do not match the architecture in the metadata of {path}: {err}") from err
    return (LearnedPolynomial if task.name == "linsys" else LearnedEngine)(engine, task, meta)


def export_system(system, out: str | Path, extra: dict | None = None) -> Path:
    """Export a trained :class:`autospec.system.AutospecSystem` (its engine and plain hparams)."""
    hp = system.hparams
    meta = {"task": dict(hp["task"]), "engine": dict(hp["engine"]), "probe": dict(hp["probe"]),
            "training": {k: hp[k] for k in ("lr", "weight_decay", "warmup_steps", "max_steps")}, **(extra or {})}
    return write_artifact(system.engine.state_dict(), meta, out)


def export_checkpoint(ckpt: str | Path, out: str | Path) -> Path:
    """Export any Lightning checkpoint of an ``AutospecSystem`` (``python -m autospec export``)."""
    from autospec.system import AutospecSystem

    path = Path(ckpt)
    if not path.is_file():
        raise ArtifactError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated/foreign files
        raise ArtifactError(f"cannot read Lightning checkpoint {path}: {err}") from err
    hp = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not hp or "task" not in hp or "engine" not in hp:
        raise ArtifactError(f"{path} is not a checkpoint of an autospec AutospecSystem (no task/engine hparams)")
    system = AutospecSystem(**hp)
    system.load_state_dict(checkpoint["state_dict"])
    return export_system(system, out, {"source_checkpoint": path.name, "global_step": checkpoint.get("global_step")})
