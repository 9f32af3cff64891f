"""Fused vector updates for CUDA as Triton kernels: each is one launch and one pass over its vectors
where the in-place torch update takes three or four launches and reads every vector two or three times::

    cg_update:    x += α_c p,  r −= α_c q,  rr_c = Σ_i w_i² r_ic²       (partial sums per program)
    direction:    p = z + β_c p
    three_term:   ρ −= t/s,  d ← a d + b ρ,  x += d                      (t = A d, the SpMV's output)
    basis:        w = (t/s − θ u)/δ,  v ← w (first) or 2w − v,  y += c v  (t = A u)

Blocks are ``(n, k)`` row-major; ``α``, ``β`` are per-column tensors on the device, so nothing syncs
with the host. Reductions accumulate in the :class:`~autospec.kernels.policy.DtypePolicy`'s dtype.
The kernels are built on first use (Triton is imported then, and reads ``TRITON_INTERPRET`` then: with
``TRITON_INTERPRET=1`` they run on CPU tensors, which is how the tests check them without a GPU).
:func:`runs_on` says whether a tensor takes them: CUDA and Triton installed.
"""

from __future__ import annotations

import functools
import importlib.util
from types import SimpleNamespace

import torch

BLOCK = 1024


@functools.cache
def available() -> bool:
    """Whether Triton is installed (looked up once)."""
    return importlib.util.find_spec("triton") is not None


def runs_on(t: torch.Tensor) -> bool:
    """Whether the updates for ``t`` run here: a CUDA tensor of a float dtype, Triton installed."""
    return t.is_cuda and t.dtype in (torch.float64, torch.float32, torch.bfloat16) and available()


@functools.cache
def _kernels() -> SimpleNamespace:
    import triton
    import triton.language as tl

    @triton.jit
    def cg_update(alpha, p, q, x, r, w2, partial, n, k, HAS_W: tl.constexpr, ACC: tl.constexpr,
                  BLOCK: tl.constexpr):
        pid, c = tl.program_id(0), tl.program_id(1)
        rows = pid * BLOCK + tl.arange(0, BLOCK)
        mask = rows < n
        offs = rows * k + c
        a = tl.load(alpha + c).to(ACC)
        xi = tl.load(x + offs, mask=mask).to(ACC) + a * tl.load(p + offs, mask=mask).to(ACC)
        ri = (tl.load(r + offs, mask=mask).to(ACC) - a * tl.load(q + offs, mask=mask).to(ACC)).to(r.dtype.element_ty)
        tl.store(x + offs, xi.to(x.dtype.element_ty), mask=mask)
        tl.store(r + offs, ri, mask=mask)
        rd = ri.to(ACC) * ri.to(ACC)
        if HAS_W:
            rd = rd * tl.load(w2 + offs, mask=mask, other=0).to(ACC)
        tl.store(partial + pid * k + c, tl.sum(tl.where(mask, rd, 0), axis=0))

    @triton.jit
    def direction(beta, z, p, n, k, BLOCK: tl.constexpr):
        pid, c = tl.program_id(0), tl.program_id(1)
        rows = pid * BLOCK + tl.arange(0, BLOCK)
        mask = rows < n
        offs = rows * k + c
        b = tl.load(beta + c)
        pi = tl.load(z + offs, mask=mask).to(b.dtype) + b * tl.load(p + offs, mask=mask).to(b.dtype)
        tl.store(p + offs, pi.to(p.dtype.element_ty), mask=mask)

    @triton.jit
    def three_term(t, d, rho, x, size, inv_s, a, b, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < size
        ri = tl.load(rho + offs, mask=mask) - tl.load(t + offs, mask=mask) * inv_s
        di = a * tl.load(d + offs, mask=mask) + b * ri
        tl.store(rho + offs, ri, mask=mask)
        tl.store(d + offs, di, mask=mask)
        tl.store(x + offs, tl.load(x + offs, mask=mask) + di, mask=mask)

    @triton.jit
    def basis(t, u, v, y, size, inv_s, theta, inv_delta, c, FIRST: tl.constexpr, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < size
        w = (tl.load(t + offs, mask=mask) * inv_s - theta * tl.load(u + offs, mask=mask)) * inv_delta
        if not FIRST:
            w = 2 * w - tl.load(v + offs, mask=mask)
        tl.store(v + offs, w, mask=mask)
        tl.store(y + offs, tl.load(y + offs, mask=mask) + c * w, mask=mask)

    return SimpleNamespace(cg_update=cg_update, direction=direction, three_term=three_term, basis=basis,
                           tl_dtype={torch.float64: tl.float64, torch.float32: tl.float32})


def _grid(n: int, k: int = 1) -> tuple[int, int]:
    return (n + BLOCK - 1) // BLOCK, k


def cg_update(alpha: torch.Tensor, p, q, x, r, w2: torch.Tensor | None, accumulate: torch.dtype) -> torch.Tensor:
    """``x += α p``, ``r −= α q`` on ``(n, k)`` blocks (α: ``(1, k)``); returns ``‖W r‖²`` per column, ``(1, k)``."""
    (n, k), kern = r.shape, _kernels()
    grid = _grid(n, k)
    partial = torch.empty(grid[0], k, dtype=accumulate, device=r.device)
    alpha = alpha.to(accumulate).reshape(k).contiguous()
    kern.cg_update[grid](alpha, p, q, x, r, r if w2 is None else w2, partial, n, k, HAS_W=w2 is not None,
                         ACC=kern.tl_dtype[accumulate], BLOCK=BLOCK)
    return partial.sum(dim=0, keepdim=True)


def direction(beta: torch.Tensor, z, p) -> None:
    """``p = z + β p`` on ``(n, k)`` blocks (β: ``(1, k)``, in the accumulation dtype)."""
    (n, k) = p.shape
    _kernels().direction[_grid(n, k)](beta.reshape(k).contiguous(), z, p, n, k, BLOCK=BLOCK)


def three_term(t, d, rho, x, s: float, a: float, b: float) -> None:
    """One three-term step after ``t = A d``: ``ρ −= t/s``, ``d ← a d + b ρ``, ``x += d`` (in place)."""
    _kernels().three_term[_grid(t.numel())](t, d, rho, x, t.numel(), 1.0 / s, a, b, BLOCK=BLOCK)


def basis(t, u, v, y, s: float, theta: float, delta: float, c: float, first: bool) -> None:
    """One Chebyshev-basis step after ``t = A u``: ``v ← (t/s − θu)/δ`` (first) or ``2(t/s − θu)/δ − v``, ``y += c v``."""
    _kernels().basis[_grid(t.numel())](t, u, v, y, t.numel(), 1.0 / s, theta, 1.0 / delta, c, FIRST=first,
                                       BLOCK=BLOCK)
