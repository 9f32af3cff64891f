"""The matrix functions the optimizers call, on batches ``(B, m, n)`` through the kernels of
:mod:`autospec.matfun` (its :data:`~autospec.matfun.METHODS` calling convention, without the
API's per-call validation and float64 error measurement, which would cost more than the step).

* :func:`orthogonalize` — Muon's polar factor ``U Vᵀ`` of each update: ``autospec`` (the shipped
  ``matfun-polar-bf16`` engine: a probe of ``G Gᵀ``, then a learned 5-step quintic schedule),
  ``polar_express``, ``muon`` (Newton–Schulz quintic ``(3.4445, −4.7750, 2.0315)``),
  ``newton_schulz`` (cubic), ``prism``, ``eigh`` (exact, SVD in float64).
* :func:`inverse_fourth_root` — Shampoo's ``A^{−1/4}`` of each SPD statistic: ``eigh`` (float64)
  and ``inverse_newton`` (coupled inverse Newton with p = 4) directly; ``autospec`` (the shipped
  ``matfun-coupled-inv_sqrt`` engine), ``newton_schulz`` and ``prism`` as ``(A^{1/2})^{−1/2}``: one
  coupled square root, then one coupled inverse square root of it (condition number √κ).
"""

from __future__ import annotations

import torch

from autospec.kernels import reference
from autospec.kernels.common import KernelInfo
from autospec.kernels.inverse_newton import inverse_newton
from autospec.matfun.api import METHODS
from autospec.matfun.methods import step_keywords

ORTHOGONALIZERS = ("autospec", "polar_express", "muon", "newton_schulz", "prism", "eigh")
ROOTS = ("autospec", "newton_schulz", "prism", "inverse_newton", "eigh")

# tolerance of the iterative roots on their own residual, by dtype (about the floor of each)
ROOT_TOL = {torch.float64: 1e-8, torch.float32: 1e-4, torch.bfloat16: 1e-2}
ROOT_MAX_ITERS = 100


def orthogonalize(G: torch.Tensor, method: str, *, steps: int, tol: float | None = None,
                  engine: str | None = None) -> tuple[torch.Tensor, KernelInfo]:
    """Polar factors of ``G (..., m, n)`` in G's dtype: exactly ``steps`` iterations when ``tol`` is
    None, else iterate to ``tol`` (at most ``steps``). ``eigh`` is the exact SVD answer."""
    if method == "eigh":
        return reference.polar(G).to(G.dtype), KernelInfo(converged=True)
    return METHODS["polar"][method](G, tol=tol, max_iters=steps, engine=engine)


def inverse_fourth_root(A: torch.Tensor, method: str, *, tol: float | None = None, max_iters: int | None = None,
                        engine: str | None = None) -> tuple[torch.Tensor, KernelInfo, int]:
    """``A^{−1/4}`` of SPD ``A (..., n, n)`` in A's dtype; ``tol=None``: :data:`ROOT_TOL` of the dtype.

    A matrix whose iterative root is not finite, or a batch whose iteration diverged, is recomputed
    exactly (``eigh``); returns ``(X, info, fallbacks)``, info summing both halves' GEMMs for the
    two-stage methods, fallbacks the number of matrices recomputed.
    """
    tol = ROOT_TOL[A.dtype] if tol is None else tol
    max_iters = ROOT_MAX_ITERS if max_iters is None else max_iters
    if method == "eigh":
        return _exact_root(A), KernelInfo(converged=True), 0
    if method == "inverse_newton":
        X, info = inverse_newton(A, 4, **step_keywords(tol, max_iters))
    else:
        S, first = METHODS["sqrt"][method](A, tol=tol, max_iters=max_iters, engine=engine)
        X, info = METHODS["inv_sqrt"][method]((S + S.mT) / 2, tol=tol, max_iters=max_iters, engine=engine)
        info.iters += first.iters
        info.matmuls += first.matmuls
        info.sketch_matmuls += first.sketch_matmuls
        info.diverged = info.diverged or first.diverged
        info.converged = info.converged and first.converged
    X = (X + X.mT) / 2
    bad = ~torch.isfinite(X).flatten(-2).all(-1)
    if info.diverged:
        bad = torch.ones_like(bad)
    fallbacks = int(bad.sum())
    if fallbacks:
        X = torch.where(bad[..., None, None], _exact_root(A), X)
    return X, info, fallbacks


def _exact_root(A: torch.Tensor) -> torch.Tensor:
    lam, V = torch.linalg.eigh(A.to(torch.float64))
    floor = (lam.amax(-1, keepdim=True) * torch.finfo(torch.float64).eps).clamp_min(torch.finfo(torch.float64).tiny)
    lam = torch.maximum(lam, floor)
    return ((V * lam.pow(-0.25).unsqueeze(-2)) @ V.mT).to(A.dtype)
