"""Deflating the probe's smallest Ritz vectors out of CG (DEF1 of Tang, Nabben, Vuik & Erlangga,
J. Sci. Comput. 39, 2009).

With ``W`` (n×k) the Ritz vectors of the k smallest Ritz values, ``E = WᵀAW``, ``Q = W E⁻¹ Wᵀ``
and ``P = I − AQ``: PCG (any SPD ``M``) on the consistent semidefinite system ``PA x̃ = Pb``, then
``x = Qb + Pᵀx̃``. ``PA = A − AW E⁻¹ (AW)ᵀ`` annihilates ``span W``, so CG — and the polynomial
preconditioner — work on the rest of the spectrum: the few small eigenvalues a polynomial can only
leave to CG are taken out, and its interval can start at the (k+1)-th Ritz value. The residual of
the deflated system is that of the original one, ``Pb − PAx̃ = b − Ax``, so stopping rules are
unchanged — in exact arithmetic: in floating point the two part as ``E⁻¹`` grows, so
:func:`autospec.solve` confirms ``converged`` on ``b − Ax`` itself (one product). Cost: ``k`` products for ``AW`` once, then per iteration one k-vector reduction
``(AW)ᵀv`` — no extra products with A. (Preconditioning with ``PᵀM + Q`` instead, A-DEF2,
lets rounding errors grow back into ``span W`` on ill-conditioned matrices; DEF1 does not.)
"""

from __future__ import annotations

import torch

from autospec.core import native
from autospec.core.operators import Operator
from autospec.core.probe import Probe
from autospec.linsys.cg import cg_steps, iterations_to, safe_values


class Deflation:
    """The projections of one deflation space ``W`` (..., n, k), ``AW`` given. Zero columns of
    ``W`` are no deflation (they get a unit diagonal in ``E``), so a batch can mix sizes."""

    def __init__(self, W: torch.Tensor, AW: torch.Tensor):
        self.W, self.AW = W, AW
        self.Wt, self.AWt = W.mT.contiguous(), AW.mT.contiguous()  # a transposed view makes matmul ~1000x slower
        E = self.Wt @ AW
        empty = (W == 0).all(-2).to(W.dtype)
        chol, info = torch.linalg.cholesky_ex((E + E.mT) / 2 + torch.diag_embed(empty))
        self.valid = info == 0  # per space: False where WᵀAW is not numerically positive definite
        self.ok = bool(self.valid.all())
        eye = torch.eye(E.shape[-1], dtype=E.dtype, device=E.device)
        chol = torch.where(self.valid[..., None, None], chol, eye)  # an invalid space is not used
        self.E_inv = torch.cholesky_inverse(chol) * self.valid[..., None, None]  # k×k: a product beats a solve

    @property
    def rank(self) -> int:
        return self.W.shape[-1]

    def coarse(self, V: torch.Tensor) -> torch.Tensor:
        """``Q V = W E⁻¹ Wᵀ V``."""
        return self.W @ (self.E_inv @ (self.Wt @ V))

    def project(self, V: torch.Tensor) -> torch.Tensor:
        """``P V = V − AW E⁻¹ Wᵀ V``."""
        return V - self.AW @ (self.E_inv @ (self.Wt @ V))

    def project_t(self, V: torch.Tensor) -> torch.Tensor:
        """``Pᵀ V = V − W E⁻¹ (AW)ᵀ V``."""
        return V - self.W @ (self.E_inv @ (self.AWt @ V))

    def solution(self, b: torch.Tensor, x_tilde: torch.Tensor) -> torch.Tensor:
        """``x = Qb + Pᵀx̃`` (vectors ``(n,)`` or blocks)."""
        if b.ndim == 1:
            return self.solution(b.unsqueeze(-1), x_tilde.unsqueeze(-1)).squeeze(-1)
        return self.coarse(b) + self.project_t(x_tilde)


def probe_deflation(op: Operator, probe: Probe, k: int) -> Deflation | None:
    """Deflation by the probe's ``k`` smallest Ritz vectors (``k`` counted products for ``AW``);
    ``None`` when ``WᵀAW`` is not numerically positive definite (the vectors are dependent)."""
    W = probe.ritz_vectors(k).to(dtype=op.dtype, device=op.device)
    deflation = Deflation(W, op.matmat(W))
    return deflation if deflation.ok else None


class DeflatedOperator(Operator):
    """``PA`` for an operator A and a :class:`Deflation`; its products with A are counted by A
    (``P(AV) = AV − AW E⁻¹ Wᵀ(AV)`` equals ``PAV`` for symmetric A). :meth:`product_into` is A's
    product in place (the C kernel on CSR) and two k-column passes, so the fused PCG iteration drives it."""

    def __init__(self, op: Operator, deflation: Deflation):
        super().__init__(op.shape, op.dtype, op.device)
        self.inner, self.deflation = op, deflation

    def _matmat(self, V):
        return self.deflation.project(self.inner.matmat(V))

    def product_into(self, V: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out = PAV``: ``AV`` into ``out`` by A's own product (counted by A), then
        ``out −= AW (E⁻¹ Wᵀ out)`` in place."""
        native.product(self.inner, V, out)
        block = out if out.ndim > 1 else out.unsqueeze(-1)
        block.addmm_(self.deflation.AW, self.deflation.E_inv @ (self.deflation.Wt @ block), alpha=-1)
        return out


def padded_ritz_vectors(probe: Probe, ks: list[int]) -> torch.Tensor:
    """``(len(ks), n, max k)``: row c holds the ``ks[c]`` smallest Ritz vectors, zero columns after."""
    K = max(max(ks), 1)
    Y = probe.ritz_vectors(K)
    mask = torch.arange(K) < torch.tensor(ks).unsqueeze(-1)
    return Y.unsqueeze(0) * mask.unsqueeze(-2).to(Y.dtype)


@torch.no_grad()
def deflated_pcg_iterations(lam: torch.Tensor, p: torch.Tensor, weights: torch.Tensor, W: torch.Tensor, rtol: float,
                            max_iters: int) -> torch.Tensor:
    """First k with ``‖r_k‖ <= rtol‖b‖`` for deflated PCG on ``diag(λ)`` with ``M = diag(p(λ))``
    per row of ``p`` (C, n), deflation spaces ``W`` (C, n, j) (zero columns: none) and
    ``b = weights`` (1, n, 1); ``max_iters + 1`` if never, ``-1`` where ``WᵀAW`` is singular."""
    deflation = Deflation(W, lam.unsqueeze(-1) * W)  # an all-zero space projects nothing away
    b = weights.to(lam.dtype).expand(p.shape[0], -1, -1)
    bnorm = b.norm(dim=-2).squeeze(-1)
    pp = safe_values(p).unsqueeze(-1)
    run = cg_steps(lambda V: deflation.project(lam.unsqueeze(-1) * V), deflation.project(b),
                   precond=lambda r: pp * r, freeze_below=rtol / 10)
    iters = iterations_to(run, lambda step: step.r.norm(dim=-2).squeeze(-1) / bnorm <= rtol, bnorm.shape, max_iters)
    iters[(p <= 0).any(-1)] = max_iters + 1
    iters[~deflation.valid] = -1
    return iters
