"""Preconditioned conjugate gradients.

``cg_steps`` is the bare recurrence (batched over leading dims and right-hand-side columns,
differentiable): training unrolls it on ``diag(λ)``, ``pcg`` drives it with SciPy's stopping rule
``‖r_k‖ <= max(rtol‖b‖, atol)`` and turns breakdowns into clear exceptions::

    r_0 = b − A x_0, z_0 = M r_0, p_0 = z_0
    α_k = r_kᵀz_k / p_kᵀA p_k,  x_{k+1} = x_k + α_k p_k,  r_{k+1} = r_k − α_k A p_k
    z_{k+1} = M r_{k+1},  p_{k+1} = z_{k+1} + (r_{k+1}ᵀz_{k+1} / r_kᵀz_k) p_k
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple

import numpy as np
import torch

from autospec.core.results import ResidualHistory, Result
from autospec.errors import BreakdownError, InputValueError, NotPositiveDefiniteError
from autospec.core.operators import Operator, as_operator, as_rhs

Apply = Callable[[torch.Tensor], torch.Tensor]


class CGStep(NamedTuple):
    x: torch.Tensor  # iterate x_{k+1}
    r: torch.Tensor  # recursively updated residual r_{k+1}
    curvature: torch.Tensor  # p_kᵀ A p_k, shape (..., 1, k)
    rz: torch.Tensor  # r_kᵀ z_k used for α_k


def _dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u * v).sum(dim=-2, keepdim=True)


def _safe_div(num: torch.Tensor, den: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """``num/den`` where ``ok``, else 0 — without NaN gradients from the masked entries."""
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def cg_steps(matmat: Apply, b: torch.Tensor, x0: torch.Tensor | None = None, precond: Apply | None = None,
             freeze_below: float = 0.0) -> Iterator[CGStep]:
    """Endless PCG recurrence on blocks ``(..., n, k)``; each column is an independent system.

    A column whose residual drops to ``‖r‖ <= freeze_below·‖b‖`` (or hits an exact zero step)
    takes no further steps, so long unrolled runs never divide by underflowed quantities.
    """
    x = torch.zeros_like(b) if x0 is None else x0
    r = b if x0 is None else b - matmat(x0)
    z = r if precond is None else precond(r)
    p, rz = z, _dot(r, z)
    floor = freeze_below * b.norm(dim=-2, keepdim=True)
    while True:
        live = r.norm(dim=-2, keepdim=True) > floor
        Ap = matmat(p)
        curvature = _dot(p, Ap)
        alpha = _safe_div(rz, curvature, live & (curvature != 0))
        x = x + alpha * p
        r = r - alpha * Ap
        yield CGStep(x, r, curvature, rz)
        z = r if precond is None else precond(r)
        rz_next = _dot(r, z)
        p = z + _safe_div(rz_next, rz, live & (rz != 0)) * p
        rz = rz_next


@dataclass(kw_only=True)
class SolveInfo(ResidualHistory, Result):
    """What a solve did. ``matvecs`` counts every product with A (probe and preconditioner
    included); ``rel_residual`` is the true ``‖b − A x‖/‖b‖`` of the returned x;
    ``residual_history`` (= ``history``) the relative residual after each outer iteration."""

    method: str = "cg"
    outer_iters: int = 0
    rel_residual: float = float("nan")
    degree: int = 0
    probe_steps: int = 0
    bounds: tuple[float, float] | None = None

    @property
    def iterations(self) -> int:
        return self.outer_iters


def pcg(
    A,
    b,
    x0=None,
    *,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    M=None,
    callback: Callable[[torch.Tensor], None] | None = None,
    residual_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, SolveInfo]:
    """Solve ``A x = b`` (A SPD) by PCG with a SciPy-like signature; returns ``(x, info)``.

    ``M`` approximates ``A⁻¹``: a callable on torch blocks ``(n, k)``, or anything
    :func:`autospec.as_operator` accepts. Stops when ``‖W r_k‖ <= max(rtol‖W b‖, atol)`` with
    ``W = diag(residual_weights)`` (default ``I``; a scaled system passes the weights that map its
    residual back to the original one). Raises ``NotPositiveDefiniteError`` on non-positive
    curvature ``pᵀAp <= 0`` and ``BreakdownError`` when ``rᵀMr <= 0`` (M not SPD).
    """
    start = time.perf_counter()
    op = as_operator(A)
    rhs = as_rhs(b, op)
    vector = rhs.ndim == 1
    B = rhs.unsqueeze(-1) if vector else rhs
    X0 = None if x0 is None else as_rhs(x0, op).reshape(B.shape)
    maxiter = 10 * op.n if maxiter is None else int(maxiter)
    if maxiter < 0 or rtol < 0 or atol < 0:
        raise InputValueError(f"maxiter, rtol and atol must be non-negative (got {maxiter}, {rtol}, {atol})")
    precond = _as_preconditioner(M, op)
    W = torch.ones(op.n, 1, dtype=op.dtype) if residual_weights is None else residual_weights.reshape(-1, 1)
    matvecs0 = op.matvecs
    bnorm = (W * B).norm(dim=0)
    target = torch.clamp(rtol * bnorm, min=atol)
    info = SolveInfo()

    x = torch.zeros_like(B) if X0 is None else X0
    r0 = B if X0 is None else B - op.matmat(X0)
    info.residual_history.append(_rel((W * r0).norm(dim=0), bnorm))
    info.converged = bool(((W * r0).norm(dim=0) <= target).all())
    if not info.converged and maxiter > 0:
        for k, step in enumerate(cg_steps(op.matmat, B, X0, precond), start=1):
            _check_breakdown(step, k)
            x = step.x
            info.outer_iters = k
            rnorm = (W * step.r).norm(dim=0)
            info.residual_history.append(_rel(rnorm, bnorm))
            if callback is not None:
                callback(x.squeeze(-1) if vector else x)
            info.converged = bool((rnorm <= target).all())
            if info.converged or k >= maxiter:
                break
    info.matvecs = op.matvecs - matvecs0
    true_res = W * (B - op._matmat(x))
    info.rel_residual = _rel(true_res.norm(dim=0), bnorm)
    info.seconds = time.perf_counter() - start
    return (x.squeeze(-1) if vector else x), info


def _rel(rnorm: torch.Tensor, bnorm: torch.Tensor) -> float:
    safe = torch.where(bnorm > 0, bnorm, torch.ones_like(bnorm))
    return float((rnorm / safe).max())


def _check_breakdown(step: CGStep, k: int) -> None:
    if not (bool(torch.isfinite(step.rz).all()) and bool(torch.isfinite(step.curvature).all())):
        raise BreakdownError(
            f"PCG diverged at iteration {k}: r^T M r or p^T A p is no longer finite; A (or the preconditioner) "
            "is singular or not positive definite"
        )
    if bool((step.rz <= 0).any()):
        raise BreakdownError(
            f"PCG breakdown at iteration {k}: r^T M r = {float(step.rz.min()):.3e} <= 0, "
            "the preconditioner is not symmetric positive definite"
        )
    if bool((step.curvature <= 0).any()):
        raise NotPositiveDefiniteError(
            f"CG breakdown at iteration {k}: p^T A p = {float(step.curvature.min()):.3e} <= 0, "
            "the matrix is not positive definite"
        )


def _as_preconditioner(M, op: Operator) -> Apply | None:
    if M is None or callable(M) and not hasattr(M, "shape"):
        return M
    Mop = as_operator(M)
    if Mop.shape != op.shape:
        raise InputValueError(f"preconditioner of shape {Mop.shape} does not match operator of shape {op.shape}")
    return Mop.matmat


@torch.no_grad()
def iterations_to(steps: Iterator[CGStep], reached: Callable[[CGStep], torch.Tensor], shape, max_iters: int) -> torch.Tensor:
    """First k (1-based) at which ``reached(step)`` holds, per system of a :func:`cg_steps` run
    (``max_iters + 1`` if never within ``max_iters`` steps)."""
    iters = torch.full(tuple(shape), max_iters + 1, dtype=torch.long)
    for k, step in zip(range(1, max_iters + 1), steps):
        iters[reached(step) & (iters > max_iters)] = k
        if bool((iters <= max_iters).all()):
            break
    return iters


def safe_values(p: torch.Tensor) -> torch.Tensor:
    """``max(p, 1e-6·max p)``: what CG on ``diag(λ)`` uses for ``M = diag(p(λ))`` (never NaN)."""
    return torch.maximum(p, 1e-6 * p.amax(-1, keepdim=True).clamp_min(1e-30))


@torch.no_grad()
def pcg_iterations(lam: torch.Tensor, p: torch.Tensor, weights: torch.Tensor, rtol: float, max_iters: int) -> torch.Tensor:
    """First k with ``‖r_k‖ <= rtol‖b‖`` for PCG on each ``diag(λ)`` with ``M = diag(p(λ))`` and
    ``b = weights`` (batched over leading dims; ``max_iters + 1`` if never). A polynomial that is
    not positive on the spectrum (CG breakdown) also counts as never."""
    b = weights.to(lam.dtype)
    bnorm = b.norm(dim=-2).squeeze(-1)
    pp = safe_values(p).unsqueeze(-1)
    run = cg_steps(lambda V: lam.unsqueeze(-1) * V, b, precond=lambda r: pp * r, freeze_below=rtol / 10)
    iters = iterations_to(run, lambda step: step.r.norm(dim=-2).squeeze(-1) / bnorm <= rtol, bnorm.shape, max_iters)
    iters[(p <= 0).any(-1)] = max_iters + 1
    return iters


def scipy_cg_iterations(A, b, rtol: float, maxiter: int, M=None) -> tuple[int, np.ndarray, bool]:
    """Reference: SciPy's ``cg`` iteration count (by callback), solution and its converged flag."""
    import scipy.sparse.linalg as spla

    count = [0]

    def cb(_):
        count[0] += 1

    x, code = spla.cg(A, b, rtol=rtol, maxiter=maxiter, M=M, callback=cb)
    return count[0], x, code == 0
