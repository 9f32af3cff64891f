"""The ``linsys`` inference adapter: a trained engine as a CG preconditioner.

Probe an operator, let the engine emit the polynomial, check the safeguard (finite coefficients,
``p > 0`` on ``[0, 1.05·upper]``) and hand out a preconditioner — a SciPy ``LinearOperator`` for
SciPy/NumPy input, a torch callable otherwise. These functions take a
:class:`autospec.learned.LearnedEngine` of the ``linsys`` task; they are its ``preconditioner``,
``preconditioner_from_probe``, ``coefficients`` and ``polynomial`` methods.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from autospec.core.operators import Diagonal, Operator, as_operator
from autospec.core.probe import Probe, lanczos
from autospec.core.recurrences import evaluate
from autospec.core.validate import integer, seed_from
from autospec.linsys.preconditioners import (
    PolynomialPreconditioner,
    check_positive_probe,
    chebyshev_preconditioner,
    polynomial_is_safe,
)

FALLBACK = "learned polynomial not positive on [0, 1.05*upper] or non-finite; used Chebyshev (ritz)"


def coefficients(engine, A, probe_steps: int | None = None, rng=None):
    """Probe ``A`` and return ``(poly, scale, probe)``; ``M = p(A/s)/s``."""
    seed = seed_from(rng)
    probe = lanczos(as_operator(A, symmetric=True, seed=seed), steps=probe_steps or engine.probe_steps, seed=seed)
    return (*engine.coefficients_from_probe(probe), probe)


def polynomial(engine, lam, A=None, probe_steps: int | None = None, rng=None) -> torch.Tensor:
    """``p_A(λ) = p(λ/s)/s`` at the points ``lam`` for the operator ``A`` (default ``diag(λ)``)."""
    lam = torch.as_tensor(np.asarray(lam, dtype=np.float64))
    poly, scale, _ = coefficients(engine, Diagonal(lam) if A is None else A, probe_steps, rng)
    return evaluate(poly, lam / scale) / scale


def preconditioner_from_probe(engine, op: Operator, probe: Probe) -> tuple[PolynomialPreconditioner, str | None]:
    """The learned preconditioner, or Chebyshev (``ritz``) with the reason when the safeguard fails."""
    M, fallback, _ = plan_from_probe(engine, op, probe, deflate=False)
    return M, fallback


def plan_from_probe(engine, op: Operator, probe: Probe, deflate: bool = True):
    """``(M, fallback, k)``: the learned preconditioner and how many of the probe's Ritz vectors
    CG should deflate with it (``k = 0`` for engines that do not choose deflation)."""
    plan = getattr(engine.task, "plan", None)
    if plan is not None and deflate:
        poly, scale, k = plan(probe, engine.outputs(probe))
    else:
        (poly, scale), k = engine.coefficients_from_probe(probe), 0
    if not polynomial_is_safe(poly, upper=float(probe.upper / scale)):
        return chebyshev_preconditioner(op, probe, engine.degree, "ritz"), FALLBACK, 0
    return PolynomialPreconditioner(op, poly, float(scale)), None, k


def preconditioner(engine, A, probe_steps: int | None = None, rng=None):
    """``M ≈ A⁻¹``: a SciPy ``LinearOperator`` for SciPy/NumPy input (use as ``M`` in
    ``scipy.sparse.linalg.cg``), else a callable on torch tensors. ``probe_steps=None``: the
    engine's own. ``M.fallback`` says whether the safeguard replaced the learned polynomial by
    Chebyshev. A that is not SPD fails as in :func:`autospec.solve` (``NotSymmetricError``,
    ``NotPositiveDefiniteError``)."""
    probe_steps = engine.probe_steps if probe_steps is None else integer("probe_steps", probe_steps, 1)
    seed = seed_from(rng)
    op = as_operator(A, symmetric=True, seed=seed)
    probe = lanczos(op, steps=probe_steps, seed=seed)
    check_positive_probe(probe)
    M, fallback = preconditioner_from_probe(engine, op, probe)
    if isinstance(A, (np.ndarray, spla.LinearOperator)) or sp.issparse(A):
        out = M.as_linear_operator()
    else:
        out = TorchPreconditioner(M)
    out.fallback = fallback
    out.probe_matvecs = op.matvecs
    return out


class TorchPreconditioner:
    """Callable ``M(r)`` on torch vectors ``(n,)`` or blocks ``(n, k)``."""

    def __init__(self, M: PolynomialPreconditioner):
        self.M = M

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        r64 = r.to(self.M.op.dtype)
        out = self.M(r64.unsqueeze(-1) if r.ndim == 1 else r64)
        return (out.squeeze(-1) if r.ndim == 1 else out).to(r.dtype)
