"""Spectral probes: cheap, matrix-free estimates of an operator's spectrum.

``lanczos`` runs m steps of Lanczos with full reorthogonalisation from a seeded random start and
returns the Ritz values θ_j of the tridiagonal ``T_m``, their residual norms ``β_m |s_{m j}|`` and a
safe upper bound of λmax, ``θ_max + β_m`` (Zhou & Li 2011: ``‖f_m‖ = β_m`` bounds the distance of
the top of the spectrum from the Ritz values). The same code probes one matrix or a batch of
``Diagonal`` operators, so training sees exactly the probes of inference.

``subspace_probe`` is the second method: block subspace iteration with Rayleigh–Ritz.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from autospec.core.operators import Operator, as_operator
from autospec.core.validate import float_dtype, integer
from autospec.errors import InputValueError

BREAKDOWN_RTOL = 1e-12  # β_j <= BREAKDOWN_RTOL·‖T‖ counts as an invariant subspace


@dataclass
class Probe:
    """Result of a spectral probe; tensors carry the operator's batch shape in front."""

    ritz: torch.Tensor  # (..., m) Ritz values, ascending
    residuals: torch.Tensor  # (..., m) residual norms ‖A y_j − θ_j y_j‖
    upper: torch.Tensor  # (...) safe upper bound of λmax
    lower: torch.Tensor  # (...) estimate of λmin (smallest Ritz value; λmin <= lower)
    steps: int  # Krylov steps actually taken (m, or fewer after breakdown / m >= n)
    matvecs: int  # matvecs spent per operator
    weights: torch.Tensor | None = None  # (..., m) Gauss quadrature weights τ_j² (Lanczos only; sum 1)
    size: int | torch.Tensor | None = None  # n, the operator's dimension
    basis: torch.Tensor | None = None  # (..., m, n) orthonormal Krylov basis Q as rows (Lanczos only)
    eigenvectors: torch.Tensor | None = None  # (..., m, m) eigenvectors S of T_m, T_m = S diag(θ) Sᵀ

    @property
    def theta_max(self) -> torch.Tensor:
        return self.ritz[..., -1]

    @property
    def theta_min(self) -> torch.Tensor:
        return self.ritz[..., 0]

    def top_residual(self) -> torch.Tensor:
        return self.residuals[..., -1]

    def ritz_vectors(self, k: int) -> torch.Tensor:
        """``(..., n, k)`` Ritz vectors ``Y = Qᵀ S[:, :k]`` of the k smallest Ritz values."""
        if self.basis is None or self.eigenvectors is None:
            raise InputValueError("this probe kept no Krylov basis (only the Lanczos probe has Ritz vectors)")
        return self.basis.mT @ self.eigenvectors[..., :k]


def _start_vector(op: Operator, batch_shape, generator: torch.Generator, columns: int = 1) -> torch.Tensor:
    """Seeded Gaussian block, shared by every member of a batch (so batching never changes a probe)."""
    v = torch.randn(op.n, columns, generator=generator, dtype=torch.float64)
    return v.to(dtype=op.dtype, device=op.device).expand(*batch_shape, op.n, columns)


def _batch_shape(op: Operator):
    return tuple(getattr(op, "batch_shape", ()))


def lanczos(A, steps: int = 50, seed: int = 0) -> Probe:
    """m-step Lanczos probe with full reorthogonalisation (two Gram–Schmidt passes).

    Recurrence ``β_{j+1} q_{j+1} = A q_j − α_j q_j − β_j q_{j−1}`` with ``α_j = q_jᵀ A q_j``.
    Stops early when ``m >= n`` or when every operator of the batch hits an invariant subspace;
    a batch member that breaks down alone is restarted with a fresh random vector orthogonal to
    its basis (``β_j = 0``, the tridiagonal splits), so all members keep the same m.
    ``weights`` are the Gauss quadrature weights ``τ_j² = (e_1ᵀ s_j)²`` of the start vector's
    spectral measure: ``q_1ᵀ g(A) q_1 ≈ Σ_j τ_j² g(θ_j)``.
    """
    op = as_operator(A)
    float_dtype("the Lanczos probe", op.dtype)
    steps = integer("steps", steps, None)
    if steps < 1:
        raise InputValueError(f"probe needs at least one Lanczos step, got steps={steps}")
    batch = _batch_shape(op)
    m = min(int(steps), op.n)
    gen = torch.Generator().manual_seed(int(seed))
    start = op.matvecs
    with torch.no_grad():
        # basis stored as rows, Q[..., j, :] = q_jᵀ, so Q[..., :j+1, :] is a contiguous view
        Q = torch.empty(*batch, m, op.n, dtype=op.dtype, device=op.device)
        q = _start_vector(op, batch, gen)
        Q[..., 0, :] = (q / q.norm(dim=-2, keepdim=True)).squeeze(-1)
        alphas, betas = [], []
        scale = torch.zeros(batch, dtype=op.dtype, device=op.device)
        for j in range(m):
            basis = Q[..., : j + 1, :]
            w = op.matmat(Q[..., j, :].unsqueeze(-1))
            alphas.append((Q[..., j, :].unsqueeze(-1) * w).sum(dim=(-2, -1)))
            for _ in range(2):
                w = w - basis.mT @ (basis @ w)
            beta = w.norm(dim=(-2, -1))
            scale = torch.maximum(scale, alphas[-1].abs() + beta)
            broke = beta <= BREAKDOWN_RTOL * scale
            if j == m - 1 or bool(broke.all()):
                betas.append(torch.where(broke, torch.zeros_like(beta), beta))
                break
            if bool(broke.any()):
                fresh = _start_vector(op, batch, gen)
                for _ in range(2):
                    fresh = fresh - basis.mT @ (basis @ fresh)
                w = torch.where(broke[..., None, None], fresh / fresh.norm(dim=-2, keepdim=True), w / beta[..., None, None])
                beta = torch.where(broke, torch.zeros_like(beta), beta)
            else:
                w = w / beta[..., None, None]
            betas.append(beta)
            Q[..., j + 1, :] = w.squeeze(-1)
        k = len(alphas)
        T = torch.diag_embed(torch.stack(alphas, -1))
        if k > 1:
            off = torch.stack(betas[:-1], -1)
            T = T + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
        if not bool(torch.isfinite(T).all()):
            raise InputValueError("the Lanczos probe met non-finite values (NaN or Inf): the operator's products "
                                  "overflow or are not finite")
        theta, S = torch.linalg.eigh(T)
        beta_m = betas[-1]
        residuals = beta_m[..., None] * S[..., -1, :].abs()
    return Probe(
        ritz=theta,
        residuals=residuals,
        upper=theta[..., -1] + beta_m,
        lower=theta[..., 0],
        steps=k,
        matvecs=op.matvecs - start,
        weights=S[..., 0, :].square(),
        size=op.n,
        basis=Q[..., :k, :],
        eigenvectors=S,
    )


def subspace_probe(A, block: int = 8, iterations: int = 6, seed: int = 0) -> Probe:
    """Block subspace-iteration probe: ``V ← orth(A V)`` ``iterations`` times, then Rayleigh–Ritz.

    Captures the top of the spectrum (upper bound ``θ_max + max_j r_j``); the Ritz values are
    those of ``VᵀAV``, residuals ``‖A V s_j − θ_j V s_j‖``.
    """
    op = as_operator(A)
    if block < 1 or iterations < 1:
        raise InputValueError(f"subspace probe needs block >= 1 and iterations >= 1, got {block}, {iterations}")
    batch = _batch_shape(op)
    b = min(block, op.n)
    gen = torch.Generator().manual_seed(int(seed))
    start = op.matvecs
    with torch.no_grad():
        V = torch.linalg.qr(_start_vector(op, batch, gen, columns=b)).Q
        for _ in range(iterations):
            V = torch.linalg.qr(op.matmat(V)).Q
        AV = op.matmat(V)
        H = V.mT @ AV
        theta, S = torch.linalg.eigh((H + H.mT) / 2)
        residuals = (AV @ S - (V @ S) * theta[..., None, :]).norm(dim=-2)
    return Probe(
        ritz=theta,
        residuals=residuals,
        upper=theta[..., -1] + residuals.max(dim=-1).values,
        lower=theta[..., 0],
        steps=iterations,
        matvecs=op.matvecs - start,
        size=op.n,
    )


PROBES = {"lanczos": lanczos, "subspace": subspace_probe}


def probe(A, method: str = "lanczos", steps: int = 50, seed: int = 0) -> Probe:
    """Run the named probe (``lanczos``: ``steps`` Krylov steps; ``subspace``: ``steps`` matvecs
    budget split as 8-column blocks)."""
    if method == "lanczos":
        return lanczos(A, steps=steps, seed=seed)
    if method == "subspace":
        block = min(8, steps)
        return subspace_probe(A, block=block, iterations=max(1, steps // block - 1), seed=seed)
    raise InputValueError(f"unknown probe method {method!r}; choose one of {sorted(PROBES)}")
