"""Preconditioned conjugate gradients.

``cg_steps`` is the bare recurrence (batched over leading dims and right-hand-side columns,
differentiable): training unrolls it on ``diag(λ)``. ``pcg`` drives the same recurrence — fused and
in place (:mod:`autospec.kernels.cg`) for real CSR operators on CPU and anything on CUDA — with
SciPy's stopping rule ``‖r_k‖ <= max(rtol‖b‖, atol)`` and turns breakdowns into clear exceptions::

    r_0 = b − A x_0, z_0 = M r_0, p_0 = z_0
    α_k = r_kᵀz_k / p_kᵀA p_k,  x_{k+1} = x_k + α_k p_k,  r_{k+1} = r_k − α_k A p_k
    z_{k+1} = M r_{k+1},  p_{k+1} = z_{k+1} + (r_{k+1}ᵀz_{k+1} / r_kᵀz_k) p_k
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import scipy.sparse.linalg as spla
import torch

from autospec.core.operators import Operator, as_operator, as_rhs, to_caller, torch_native
from autospec.core.results import ResidualHistory, Result
from autospec.core.validate import float_dtype, integer, tolerances
from autospec.errors import BreakdownError, InputTypeError, InputValueError, NotPositiveDefiniteError, ToleranceWarning
from autospec.kernels.cg import CGStep, fusable, fused_cg_steps
from autospec.linsys.preconditioners import PolynomialPreconditioner

Apply = Callable[[torch.Tensor], torch.Tensor]


def _dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``uᴴv`` per column (its real part: Hermitian quantities are real)."""
    d = (u.conj() * v).sum(dim=-2, keepdim=True)
    return d.real if d.is_complex() else d


def _safe_div(num: torch.Tensor, den: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """``num/den`` where ``ok``, else 0 — without NaN gradients from the masked entries."""
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def cg_steps(matmat: Apply, b: torch.Tensor, x0: torch.Tensor | None = None, precond: Apply | None = None,
             freeze_below: float = 0.0, r0: torch.Tensor | None = None) -> Iterator[CGStep]:
    """Endless PCG recurrence on blocks ``(..., n, k)``; each column is an independent system.

    ``r0``: the residual ``b − A x0`` when the caller has it (no product spent on it here). A column
    whose residual drops to ``‖r‖ <= freeze_below·‖b‖`` (or hits an exact zero step) takes no
    further steps, so long unrolled runs never divide by underflowed quantities.
    """
    x = torch.zeros_like(b) if x0 is None else x0
    r = r0 if r0 is not None else (b if x0 is None else b - matmat(x0))
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
    """What a solve did. ``matvecs`` counts every product with A (probe, preconditioner, ``b − A x0``
    and the true-residual checks included); ``rel_residual`` is the true ``‖b − A x‖/‖b‖`` of the
    returned x — ``converged`` is only ever true when it meets the tolerance; ``residual_history``
    (= ``history``) the recursively updated relative residual after each outer iteration;
    ``residual_checks`` the true residuals computed (one whenever the recursive residual passed the
    tolerance, or at the end); ``restarts`` the times CG restarted from the true residual because
    the recursive one had drifted below the tolerance without it; ``message`` why it stopped."""

    method: str = "cg"
    outer_iters: int = 0
    rel_residual: float = float("nan")
    degree: int = 0
    probe_steps: int = 0
    bounds: tuple[float, float] | None = None
    deflated: int = 0  # Ritz vectors of the probe deflated out of CG (autospec.linsys.deflation)
    residual_checks: int = 0
    restarts: int = 0
    message: str = ""

    @property
    def iterations(self) -> int:
        return self.outer_iters


WORKING_DTYPES = (torch.float64, torch.float32, torch.complex128, torch.complex64)  # half precision cannot converge
UNREACHABLE_FACTOR = 10  # a relative tolerance below 10·eps of the working dtype gets a ToleranceWarning
RESTART_GAIN = 0.5  # restart from the true residual only while each check gains at least 2x on the last


def pcg(
    A,
    b,
    x0=None,
    *,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    M=None,
    callback: Callable | None = None,
    residual_weights: torch.Tensor | None = None,
) -> tuple[np.ndarray | torch.Tensor, SolveInfo]:
    """Solve ``A x = b`` (A Hermitian definite) by PCG with SciPy's signature; returns ``(x, info)``.

    ``x`` (and what ``callback(xk)`` receives after every iteration) is a NumPy array for
    NumPy/SciPy input and a torch tensor for torch (or :class:`autospec.Operator`) input. Real
    symmetric and complex Hermitian A, positive or negative definite, as SciPy's ``cg``; a NumPy
    float32 matrix with a float64 ``b`` works in float64 (SciPy's type rule). ``x0``: a start, or
    ``"Mb"`` (``M`` applied to b). ``M`` approximates ``A⁻¹``: a callable on torch blocks ``(n, k)``,
    or anything :func:`autospec.as_operator` accepts; without it, ``A.psolve`` when A has one.
    ``b = 0`` returns ``x = 0`` at once.

    Stops when ``‖W r_k‖ <= max(rtol‖W b‖, atol)`` with ``W = diag(residual_weights)`` (default
    ``I``; a scaled system passes the weights that map its residual back to the original one) —
    first on the recursively updated residual, then confirmed on the true ``b − A x`` (one counted
    product). When the recursive residual has drifted below the tolerance and the true one has not,
    CG restarts from the true residual (PETSc's and SciPy's remedy) for as long as each check gains
    at least 2x; ``converged`` means the true residual met the tolerance. A tolerance below ~10·eps
    of the working dtype gets a :class:`autospec.errors.ToleranceWarning`.

    Raises ``InputValueError`` on bad arguments (non-numeric or negative ``rtol``/``atol``, ``maxiter``
    not a non-negative integer), ``NotPositiveDefiniteError`` when ``pᴴAp`` is zero or changes sign
    (A indefinite or singular) and ``BreakdownError`` when ``rᴴMr <= 0`` (M not positive definite).
    """
    start = time.perf_counter()
    rtol, atol = tolerances(rtol, atol)
    maxiter = integer("maxiter", maxiter, 0, none=True)
    if callback is not None and not callable(callback):
        raise InputTypeError(f"callback must be callable, got {type(callback).__name__}")
    numpy_out = not torch_native(A, b)
    op = as_operator(A, dtype=_scipy_dtype(A, b), complex_ok=True)
    float_dtype("CG", op.dtype, WORKING_DTYPES)
    rhs = as_rhs(b, op)
    vector = rhs.ndim == 1
    B = rhs.unsqueeze(-1) if vector else rhs
    precond = _as_preconditioner(_psolve(A) if M is None else M, op)
    X0 = _start(x0, B, op, precond)
    maxiter = 10 * op.n if maxiter is None else maxiter
    W = torch.ones(op.n, 1, dtype=op.dtype) if residual_weights is None else residual_weights.reshape(-1, 1)
    W = W.to(dtype=op.dtype, device=op.device)
    matvecs0 = op.matvecs
    bnorm = (W * B).norm(dim=0)
    info = SolveInfo()
    out = (lambda X: to_caller(X.squeeze(-1) if vector else X, numpy_out))
    if not bool(bnorm.any()):  # b = 0: x = 0, as SciPy (no product; an x0 is not even looked at)
        info.converged, info.rel_residual, info.history = True, 0.0, [0.0]
        info.message = "b = 0: x = 0"
        info.seconds = time.perf_counter() - start
        return out(torch.zeros_like(B)), info
    target = torch.clamp(rtol * bnorm, min=atol)
    _warn_if_unreachable(target, bnorm, op.dtype)

    x = torch.zeros_like(B) if X0 is None else X0
    x[:, bnorm == 0] = 0  # a zero column of b has the solution 0
    r = B - op.matmat(x) if bool(x.any()) else B.clone()
    true = (W * r).norm(dim=0)
    info.residual_history.append(_rel(true, bnorm))
    info.converged = bool((true <= target).all())
    fused = fusable(op, B)
    while not info.converged and info.outer_iters < maxiter:
        rnorm, sign = true, None
        steps = (fused_cg_steps(op, B, x, precond, r, residual_weights) if fused
                 else cg_steps(op.matmat, B, x, precond, r0=r))
        for step in steps:
            info.outer_iters += 1
            sign = _check_breakdown(step, info.outer_iters, rnorm > 0, sign)
            x, r = step.x, step.r
            rnorm = (W * r).norm(dim=0) if step.rnorm is None else step.rnorm
            info.residual_history.append(_rel(rnorm, bnorm))
            if callback is not None:
                callback(out(x.clone() if fused else x))  # the fused iteration updates x in place
            if bool((rnorm <= target).all()) or info.outer_iters >= maxiter:
                break
        r = B - op.matmat(x)  # the true residual: the recursive one may have drifted
        info.residual_checks += 1
        previous, true = true, (W * r).norm(dim=0)
        info.converged = bool((true <= target).all())
        if info.converged or info.outer_iters >= maxiter:
            break
        if not bool((true <= RESTART_GAIN * previous).all()) and info.restarts:
            info.message = (f"stagnated: the true residual {_rel(true, bnorm):.2e} stopped improving after "
                            f"{info.restarts} restarts, above the tolerance (attainable accuracy reached)")
            break
        info.restarts += 1
    info.matvecs = op.matvecs - matvecs0
    info.rel_residual = _rel(true, bnorm)
    if not info.message:
        info.message = ("converged: true residual within the tolerance" if info.converged
                        else f"not converged: maxiter = {maxiter} reached")
    info.seconds = time.perf_counter() - start
    return out(x), info


def _scipy_dtype(A, b) -> torch.dtype | None:
    """SciPy's working dtype for NumPy/SciPy input (``result_type(A, b)``, at least float64 when
    either is float64); ``None`` (the operator's own) for torch input."""
    if torch_native(A, b) or not hasattr(A, "dtype"):
        return None
    try:
        kind = np.result_type(np.dtype(A.dtype), np.asarray(b).dtype)
    except TypeError:
        return None
    return {np.dtype(np.float32): torch.float32, np.dtype(np.complex64): torch.complex64,
            np.dtype(np.complex128): torch.complex128}.get(kind, torch.float64 if kind.kind in "biuf" else None)


def _psolve(A):
    """SciPy's convention: an A with a ``psolve(v)`` method brings its own preconditioner."""
    psolve = getattr(A, "psolve", None)
    if psolve is None or not callable(psolve):
        return None
    return spla.LinearOperator(A.shape, matvec=psolve, dtype=getattr(A, "dtype", np.float64))


def _start(x0, B: torch.Tensor, op: Operator, precond: Apply | None) -> torch.Tensor | None:
    """The start block: ``None`` (zero), ``"Mb"`` (M applied to b, as SciPy) or the given x0 (copied)."""
    if x0 is None:
        return None
    if isinstance(x0, str):
        if x0 != "Mb":
            raise InputValueError(f"x0 must be an array, None or 'Mb', got {x0!r}")
        return B.clone() if precond is None else precond(B).to(B.dtype)
    return as_rhs(x0, op).reshape(B.shape).clone()


def _warn_if_unreachable(target: torch.Tensor, bnorm: torch.Tensor, dtype: torch.dtype) -> None:
    floor = UNREACHABLE_FACTOR * torch.finfo(dtype).eps
    relative = float((target / bnorm).min())
    if relative < floor:
        warnings.warn(f"the tolerance asks for a relative residual of {relative:.1e}, below 10·eps = {floor:.1e} of "
                      f"{str(dtype).replace('torch.', '')}: it is unlikely to be reached (converged is only reported "
                      "if the true residual meets it); use a looser rtol/atol or a wider dtype",
                      ToleranceWarning, stacklevel=3)


def _rel(rnorm: torch.Tensor, bnorm: torch.Tensor) -> float:
    safe = torch.where(bnorm > 0, bnorm, torch.ones_like(bnorm))
    return float((rnorm / safe).max())


def _check_breakdown(step: CGStep, k: int, live: torch.Tensor, sign: torch.Tensor | None) -> torch.Tensor:
    """Raise on a breakdown of the columns still moving (``live``: non-zero residual); returns the
    sign of the curvature ``pᴴAp`` per column, which must keep the sign of the first step."""
    if not (bool(torch.isfinite(step.rz).all()) and bool(torch.isfinite(step.curvature).all())):
        raise BreakdownError(
            f"PCG diverged at iteration {k}: r^T M r or p^T A p is no longer finite; A (or the preconditioner) "
            "is singular or not positive definite"
        )
    live = live.reshape(step.rz.shape)
    if bool(((step.rz <= 0) & live).any()):
        raise BreakdownError(
            f"PCG breakdown at iteration {k}: r^T M r = {float(step.rz.min()):.3e} <= 0, "
            "the preconditioner is not symmetric positive definite"
        )
    new = torch.sign(step.curvature)
    sign = torch.where(live, new, torch.zeros_like(new)) if sign is None else torch.where(sign == 0, new, sign)
    if bool(((step.curvature * sign <= 0) & live).any()):
        raise NotPositiveDefiniteError(
            f"CG breakdown at iteration {k}: p^T A p = {float(step.curvature.min()):.3e} is zero or changed sign, "
            "the matrix is not positive definite (nor negative definite)"
        )
    return sign


def _as_preconditioner(M, op: Operator) -> Apply | None:
    if M is None or callable(M) and not hasattr(M, "shape") or isinstance(M, PolynomialPreconditioner):
        return M
    Mop = as_operator(M, dtype=op.dtype, complex_ok=op.dtype.is_complex)
    if Mop.shape != op.shape:
        raise InputValueError(f"preconditioner of shape {Mop.shape} does not match operator of shape {op.shape}")
    return lambda R: Mop.matmat(R).to(R.dtype)


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
