"""Spectral probes: cheap, matrix-free estimates of an operator's spectrum.

``lanczos`` runs m steps of Lanczos (full or partial reorthogonalisation) from a seeded random start and
returns the Ritz values θ_j of the tridiagonal ``T_m``, their residual norms ``β_m |s_{m j}|`` and a
safe upper bound of λmax, ``θ_max + β_m`` (Zhou & Li 2011: ``‖f_m‖ = β_m`` bounds the distance of
the top of the spectrum from the Ritz values). The same code probes one matrix or a batch of
``Diagonal`` operators, so training sees exactly the probes of inference.

``subspace_probe`` is the second method: block subspace iteration with Rayleigh–Ritz.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from autospec.core import native
from autospec.core.operators import Operator, as_operator
from autospec.core.validate import float_dtype, integer
from autospec.errors import InputValueError

BREAKDOWN_RTOL = 1e-12  # β_j <= BREAKDOWN_RTOL·‖T‖ counts as an invariant subspace
PARTIAL_MIN_N = 20_000  # reorth="auto": partial reorthogonalisation from this size on (one operator)
REORTH_KEEP = 0.5  # a Gram–Schmidt pass that keeps more than this fraction of ‖w‖ needs no second pass
REORTHOGONALISATIONS = ("auto", "full", "partial")
TIMED_STEPS = 3  # plain (unfused) products timed for the SpMV-equivalent unit, their minimum


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
    seconds: float = 0.0  # wall time of the probe
    spmv_equivalents: float | None = None  # its wall time in units of one of its own products with A
    reorthogonalisations: int = 0  # Gram–Schmidt sweeps against the basis (full: two per step)
    basis: torch.Tensor | None = None  # (..., m, n) orthonormal Krylov basis Q as rows (Lanczos only)
    replay: Callable[[], torch.Tensor] | None = None  # rebuilds the basis a partial probe did not keep (m products)
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
        if self.basis is None and self.replay is not None:
            self.basis = self.replay()
        if self.basis is None or self.eigenvectors is None:
            raise InputValueError("this probe kept no Krylov basis (only the Lanczos probe has Ritz vectors)")
        return self.basis.mT @ self.eigenvectors[..., :k]


def _start_vector(op: Operator, batch_shape, generator: torch.Generator, columns: int = 1) -> torch.Tensor:
    """Seeded Gaussian block, shared by every member of a batch (so batching never changes a probe)."""
    v = torch.randn(op.n, columns, generator=generator, dtype=torch.float64)
    return v.to(dtype=op.dtype, device=op.device).expand(*batch_shape, op.n, columns)


def _batch_shape(op: Operator):
    return tuple(getattr(op, "batch_shape", ()))


def lanczos(A, steps: int = 50, seed: int = 0, *, reorth: str = "auto") -> Probe:
    """m-step Lanczos probe from a seeded random start.

    Recurrence ``β_{j+1} q_{j+1} = A q_j − α_j q_j − β_j q_{j−1}`` with ``α_j = q_jᵀ A q_j``.
    ``reorth``: ``"full"`` (two Gram–Schmidt passes against the whole basis every step),
    ``"partial"`` (:func:`_partial_steps`: Simon's ω-recurrence, reorthogonalising only when the
    estimated loss of orthogonality passes √ε, which keeps ``T_m`` the projection of A to working
    accuracy) or ``"auto"`` (partial for one operator with ``n >= PARTIAL_MIN_N``, where the basis
    traffic of full reorthogonalisation costs hundreds of SpMVs; full otherwise, batches included).
    Stops early when ``m >= n`` or when every operator of the batch hits an invariant subspace;
    a batch member that breaks down alone is restarted with a fresh random vector orthogonal to
    its basis (``β_j = 0``, the tridiagonal splits), so all members keep the same m.
    ``weights`` are the Gauss quadrature weights ``τ_j² = (e_1ᵀ s_j)²`` of the start vector's
    spectral measure: ``q_1ᵀ g(A) q_1 ≈ Σ_j τ_j² g(θ_j)``. ``seconds`` is the probe's wall time and
    ``spmv_equivalents`` that time over the fastest of its plain products with A.
    """
    op = as_operator(A)
    float_dtype("the Lanczos probe", op.dtype)
    steps = integer("steps", steps, None)
    if steps < 1:
        raise InputValueError(f"probe needs at least one Lanczos step, got steps={steps}")
    if reorth not in REORTHOGONALISATIONS:
        raise InputValueError(f"reorth must be one of {REORTHOGONALISATIONS}, got {reorth!r}")
    batch = _batch_shape(op)
    m = min(int(steps), op.n)
    partial = not batch and (reorth == "partial" or reorth == "auto" and op.n >= PARTIAL_MIN_N)
    gen = torch.Generator().manual_seed(int(seed))
    start, clock = op.matvecs, time.perf_counter()
    timer = _ProductTimer()
    with torch.no_grad():
        q = _start_vector(op, batch, gen)
        q0 = (q / q.norm(dim=-2, keepdim=True)).squeeze(-1).contiguous()
        alphas, betas, reorths, Q = (_partial_steps if partial else _full_steps)(op, q0, m, gen, timer)
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
    seconds = time.perf_counter() - clock
    return Probe(
        ritz=theta,
        residuals=residuals,
        upper=theta[..., -1] + beta_m,
        lower=theta[..., 0],
        steps=k,
        matvecs=op.matvecs - start,
        weights=S[..., 0, :].square(),
        size=op.n,
        seconds=seconds,
        spmv_equivalents=seconds / max(timer.unit, 1e-12),
        reorthogonalisations=reorths,
        basis=None if Q is None else Q[..., :k, :],
        eigenvectors=S,
        replay=None if Q is not None else (lambda: _replay(op, _ProductTimer(), q0, k, [float(a) for a in alphas[:-1]],
                                                           [float(b) for b in betas[:-1]])),
    )


class _ProductTimer:
    """Times the plain products with A a probe makes; the fastest is its SpMV-equivalent unit."""

    def __init__(self):
        self.unit, self.products = math.inf, 0

    def __call__(self, product, *args):
        clock = time.perf_counter()
        out = product(*args)
        self.unit = min(self.unit, time.perf_counter() - clock)
        self.products += 1
        return out


def _full_steps(op: Operator, q0: torch.Tensor, m: int, gen: torch.Generator, timer: _ProductTimer):
    """Lanczos with two classical Gram–Schmidt passes against the whole basis every step (batched)."""
    batch = q0.shape[:-1]
    # basis stored as rows, Q[..., j, :] = q_jᵀ, so Q[..., :j+1, :] is a contiguous view
    Q = torch.empty(*batch, m, op.n, dtype=op.dtype, device=op.device)
    Q[..., 0, :] = q0
    alphas, betas = [], []
    scale = torch.zeros(batch, dtype=op.dtype, device=op.device)
    for j in range(m):
        basis = Q[..., : j + 1, :]
        w = timer(op.matmat, Q[..., j, :].unsqueeze(-1))
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
    return alphas, betas, (len(alphas) - 1) * 2, Q


def _partial_steps(op: Operator, q0: torch.Tensor, m: int, gen: torch.Generator, timer: _ProductTimer):
    """Lanczos with partial reorthogonalisation (Simon 1984), one operator, in place.

    ``ω_{j,k} ≈ q_jᵀq_k`` follows the recurrence the Lanczos relation implies (with ``b_k`` the
    coupling of ``q_k`` and ``q_{k+1}``)::

        b_j ω_{j+1,k} = b_k ω_{j,k+1} + (α_k − α_j) ω_{j,k} + b_{k−1} ω_{j,k−1} − b_{j−1} ω_{j−1,k} ± ε₁‖T‖

    When ``max_k |ω_{j+1,k}| > √ε`` the new vector, and the one after it, are orthogonalised
    against the whole basis (one Gram–Schmidt pass, a second when the first removed most of w).
    A step is one product accumulated into the next vector, ``w = A q_j − b_{j−1} q_{j−1}``,
    ``α_j = q_jᵀw``, ``w −= α_j q_j``, ``b_j = ‖w‖``. Until the first reorthogonalisation only three
    vectors are kept (no basis: its memory and page faults cost as much as the products); the first
    one rebuilds the basis by replaying the recurrence with the stored α, β (the same vectors up to
    rounding, ``j`` more counted products); without one, :meth:`Probe.ritz_vectors` replays it on
    demand. Each step divides the previous ``w`` by ``b_j`` as it reads it (no pass of its own).
    """
    eps = torch.finfo(op.dtype).eps
    eps1 = eps * math.sqrt(op.n)
    alphas, betas = [], []
    omega, omega_prev = np.ones(1), np.zeros(0)
    scale, pending, reorths = 0.0, False, 0
    # Until a basis is kept, three vectors: q_{j−1}, w_{j−1} = b_{j−1} q_j (not yet divided: the step
    # divides as it reads it, writing q_j over q_{j−1}, whose row it has read), and w's buffer.
    ring, Q, inv = [torch.zeros_like(q0), q0.clone(), torch.empty_like(q0)], None, 1.0
    for j in range(m):
        if Q is None:
            qprev, qt, w = ring
            alpha, beta = _step(op, timer, qt, qprev, betas[-1] if j else 0.0, w, inv=inv, q_out=qprev)
            q = qprev
        else:
            qprev, q = Q[j - 1] if j else ring[0], Q[j]
            w = Q[j + 1] if j + 1 < m else ring[2]
            alpha, beta = _step(op, timer, q, qprev, betas[-1] if j else 0.0, w)
        alphas.append(alpha)
        scale = max(scale, abs(alpha) + beta)
        if j == m - 1 or beta <= BREAKDOWN_RTOL * scale:
            betas.append(0.0 if beta <= BREAKDOWN_RTOL * scale else beta)
            break
        omega_next = _omega_step(omega, omega_prev, np.array(alphas), np.array([*betas, beta]), eps1 * scale)
        if pending or np.abs(omega_next[:-1]).max() > math.sqrt(eps):
            if Q is None:
                Q = _replay(op, timer, q0, m, alphas, betas)
                w = Q[j + 1].copy_(w)
            beta = _orthogonalise(w, Q[: j + 1], beta)
            omega_next[:-1] = eps1
            pending, reorths = not pending, reorths + 1
            if beta <= BREAKDOWN_RTOL * scale:
                betas.append(0.0)
                break
        betas.append(beta)
        omega, omega_prev = omega_next, omega
        if Q is None:
            ring, inv = [q, w, qt], 1.0 / beta
        else:
            w.div_(beta)
    tensor = (lambda values: [torch.tensor(v, dtype=op.dtype, device=op.device) for v in values])
    return tensor(alphas), tensor(betas), reorths, Q


def _step(op: Operator, timer: _ProductTimer, q, qprev, beta_prev: float, w, inv: float = 1.0,
          q_out: torch.Tensor | None = None) -> tuple[float, float]:
    """``w = A q − β_prev q_prev − α q`` in place, ``α = qᵀ(A q − β_prev q_prev)``; returns ``(α, ‖w‖)``.
    With ``q_out`` (which may be ``q_prev``) the step first takes ``q = inv·q`` into ``q_out``.

    CSR operators on CPU take the fused kernels (two passes) after the first ``TIMED_STEPS``, whose
    plain products time the unit of ``spmv_equivalents``; others take in-place torch/NumPy operations."""
    csr = native.csr_of(op, q, qprev, w) if timer.products >= TIMED_STEPS else None
    if csr is not None:
        op.count(1)
        return native.lanczos_step(csr, q, qprev, beta_prev, w, inv, q_out)
    torch.mul(qprev, -beta_prev, out=w)
    if q_out is not None:
        q = torch.mul(q, inv, out=q_out)
    timer(op.matmat_add, q, w)
    alpha = _dot(q, w)
    w.add_(q, alpha=-alpha)
    return alpha, math.sqrt(_dot(w, w))


def _dot(u: torch.Tensor, v: torch.Tensor) -> float:
    """``uᵀv`` (NumPy's BLAS on CPU: about twice torch's speed for one long vector)."""
    return float(u.numpy() @ v.numpy()) if u.device.type == "cpu" else float(torch.dot(u, v))


def _replay(op: Operator, timer: _ProductTimer, q0, m: int, alphas: list, betas: list) -> torch.Tensor:
    """The basis ``Q (m, n)`` with rows ``q_0 … q_j`` (j = len(betas)) rebuilt by the same steps."""
    Q = torch.empty(m, op.n, dtype=op.dtype, device=op.device)
    Q[0] = q0
    for i, (alpha, beta) in enumerate(zip(alphas, betas)):
        _step(op, timer, Q[i], Q[i - 1] if i else torch.zeros_like(q0), betas[i - 1] if i else 0.0, Q[i + 1])
        Q[i + 1].div_(beta)
    return Q


def _omega_step(omega, omega_prev, alpha, b, noise: float) -> np.ndarray:
    """``ω_{j+1,·}`` from ``ω_{j,·}`` (length j+1) and ``ω_{j−1,·}`` (length j); ``b[j]`` the new β."""
    j = len(omega) - 1
    new = np.empty(j + 2)
    k = np.arange(j)
    t = b[k] * omega[k + 1] + (alpha[k] - alpha[j]) * omega[k] - (b[j - 1] * omega_prev[k] if j else 0.0)
    t[1:] += b[k[1:] - 1] * omega[k[1:] - 1]
    new[:j] = (t + np.sign(t) * noise) / b[j]
    new[j] = noise / b[j]  # local orthogonality: what rounding leaves of q_j after w −= α_j q_j
    new[j + 1] = 1.0
    return new


def _orthogonalise(w: torch.Tensor, basis: torch.Tensor, norm: float) -> float:
    """``w −= Bᵀ(B w)`` in place (a second pass when the first removed more than half of w);
    returns the new ‖w‖."""
    for _ in range(2):
        w.addmv_(basis.mT, basis @ w, alpha=-1)
        new = math.sqrt(_dot(w, w))
        if new > REORTH_KEEP * norm:
            return new
        norm = new
    return norm


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
