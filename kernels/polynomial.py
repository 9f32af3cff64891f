"""Fast application of a polynomial preconditioner ``M r = p(A/s) r / s``: one SpMV and one fused
in-place update per degree, the same recurrences as :mod:`autospec.core.recurrences`::

    three-term:  ρ −= A d / s,  d ← α_k d + β_k ρ,  x += d        (x_0 = d_0 = c_0 r, ρ_0 = r)
    basis:       t = (A u / s − θ u)/δ,  v ← 2t − v (t at k = 1),  y += c_k v,  u ↔ v

Three paths, chosen by the operands: on a CPU CSR operator the C kernels of
:mod:`autospec.core.native` — for a vector one sweep over A for all degrees when its band fits the
cache (the wavefront), else one pass per degree, for an ``(n, k)`` block one pass per degree over
its k columns; on CUDA the whole application — cuSPARSE products and one Triton update kernel per
degree (:mod:`autospec.kernels.triton_updates`) — is captured once per (shape, dtype) as a CUDA graph
and replayed (one launch per application, products counted per replay); any other operator runs
in-place torch operations around one product per degree, no temporaries. Coefficients must be one
polynomial for one operator (no batch) and need no gradient — otherwise the caller keeps the
differentiable recurrence. :func:`column_chebyshev` is the eigen wing's filter with a degree per column.
"""

from __future__ import annotations

import ctypes
import dataclasses

import torch

from autospec.core import native
from autospec.core.operators import Operator
from autospec.core.recurrences import ChebyshevBasis, ThreeTerm
from autospec.kernels import triton_updates

Poly = ThreeTerm | ChebyshevBasis
TINY = 1e-300  # floor of a column's maximum in column_chebyshev (a zero column stays zero)


def supported(poly: Poly, op: Operator, r: torch.Tensor) -> bool:
    """Whether :func:`apply` takes these: one operator, scalar coefficients, no autograd, a real dtype."""
    coefficients = poly.flat()
    return (coefficients.ndim == 1 and not coefficients.requires_grad and not r.requires_grad
            and not getattr(op, "batch_shape", ()) and r.dtype == op.dtype
            and r.dtype in (torch.float64, torch.float32) and r.ndim in (1, 2))


def apply(poly: Poly, op: Operator, r: torch.Tensor, scale: float) -> torch.Tensor:
    """``p(A/s) r / s`` for a vector ``(n,)`` or block ``(n, k)`` (a new tensor; ``r`` is not modified)."""
    r = r.contiguous()
    if r.device.type == "cuda":
        return _graph(poly, op, r, scale)
    return _steps(poly, op, r, scale, native.csr_of(op, r))


def _steps(poly: Poly, op: Operator, r: torch.Tensor, scale: float, csr: native.CSR | None) -> torch.Tensor:
    if isinstance(poly, ThreeTerm):
        return _three_term(poly, op, r, scale, csr)
    return _basis(poly, op, r, scale, csr)


def _three_term(poly: ThreeTerm, op: Operator, r, s: float, csr) -> torch.Tensor:
    c0, alpha, beta = float(poly.c0), poly.alpha.tolist(), poly.beta.tolist()
    columns = 1 if r.ndim == 1 else r.shape[1]
    layout = native.wave(op, csr, len(alpha)) if csr is not None and columns == 1 else None
    if layout is not None:  # every step in one sweep over A
        x, rho = torch.empty_like(r), torch.empty_like(r)
        ring = r.new_empty(len(alpha) - 1, layout.cap)
        op.count(len(alpha))
        csr.fn("three_term_wave")(csr.n, *csr.args(), s, len(alpha), _doubles(alpha), _doubles(beta), c0,
                                  r.data_ptr(), rho.data_ptr(), x.data_ptr(), ring.data_ptr(), *layout.args(),
                                  native.threads())
        return x
    if csr is not None and alpha:  # the first step reads r itself, the last divides by s: no other passes
        x, rho, d, t = (torch.empty_like(r) for _ in range(4))
        step = native.per_columns(csr, "three_term", columns)  # one column: the vector kernel (~25 % faster)
        for j, (a, b) in enumerate(zip(alpha, beta)):
            op.count(columns)
            step(s, a, b, int(j == 0), c0, (r if j == 0 else d).data_ptr(), t.data_ptr(), rho.data_ptr(), x.data_ptr(),
                 s if j == len(alpha) - 1 else 1.0, native.threads())
            d, t = t, d
        return x
    x = torch.mul(r, c0)
    d, rho, t = x.clone(), r.clone(), torch.empty_like(r)
    fused = triton_updates.runs_on(r)
    for a, b in zip(alpha, beta):
        native.product(op, d, t)
        if fused:
            triton_updates.three_term(t, d, rho, x, s, a, b)
        else:
            rho.sub_(t.div_(s))
            d.mul_(a).add_(rho, alpha=b)
            x.add_(d)
    return x.div_(s)


def _basis(poly: ChebyshevBasis, op: Operator, z, s: float, csr) -> torch.Tensor:
    c = poly.c.tolist()
    theta, delta = float((poly.a + poly.b) / 2), float((poly.b - poly.a) / 2)
    columns = 1 if z.ndim == 1 else z.shape[1]
    layout = native.wave(op, csr, len(c) - 1) if csr is not None and columns == 1 else None
    if layout is not None:  # every step in one sweep over A
        y, ring = torch.empty_like(z), z.new_empty(len(c) - 2, layout.cap)
        op.count(len(c) - 1)
        csr.fn("cheb_basis_wave")(csr.n, *csr.args(), s, theta, delta, len(c) - 1, _doubles(c), z.data_ptr(),
                                  y.data_ptr(), ring.data_ptr(), *layout.args(), native.threads())
        return y
    if csr is not None and len(c) > 1:  # as above; w_0 = z is read in place (u on step 1, v_in on step 2)
        y, u, v = torch.empty_like(z), torch.empty_like(z), torch.empty_like(z)
        step = native.per_columns(csr, "cheb_basis", columns)
        for k, ck in enumerate(c[1:], start=1):
            op.count(columns)
            u_k, v_in = (z, v) if k == 1 else (u, z) if k == 2 else (u, v)
            step(s, theta, delta, ck, int(k == 1), c[0], u_k.data_ptr(), v_in.data_ptr(), v.data_ptr(), y.data_ptr(),
                 s if k == len(c) - 1 else 1.0, native.threads())
            u, v = v, u
        return y
    y = torch.mul(z, c[0])
    u, v, t = z.clone(), torch.empty_like(z), torch.empty_like(z)  # u = w_k; v = w_{k−1}, overwritten by w_{k+1}
    fused = triton_updates.runs_on(z)
    for k, ck in enumerate(c[1:], start=1):
        native.product(op, u, t)
        if fused:
            triton_updates.basis(t, u, v, y, s, theta, delta, ck, first=k == 1)
        else:
            t.div_(s).sub_(u, alpha=theta).div_(delta)
            v.copy_(t) if k == 1 else v.mul_(-1).add_(t, alpha=2)
            y.add_(v, alpha=ck)
        u, v = v, u
    return y.div_(s)


def column_chebyshev(op: Operator, V: torch.Tensor, AV: torch.Tensor, a: float, b: float,
                     degrees: torch.Tensor) -> torch.Tensor | None:
    """Column j: ``T_{m_j}(ℓ(A)) v_j`` normalised to max-norm 1, ``ℓ(λ) = (2λ − a − b)/(b − a)``, with
    ``AV = A V`` given (column j costs ``m_j − 1`` products): per-column (ChASE-style) degrees, one C
    pass per degree over the still active columns — product, recurrence and the columns' rescaling
    (kept as per-column scales, folded into the next pass). ``None`` when the kernels do not take
    these operands (then the caller runs the recurrence itself)."""
    V, AV = V.contiguous(), AV.contiguous()
    csr = native.csr_of(op, V, AV) if V.ndim == 2 else None
    if csr is None:
        return None
    mid, half = (a + b) / 2, (b - a) / 2
    out = V.clone()
    C = torch.sub(AV, V, alpha=mid).div_(half)  # degree 1 from the given product
    sc = 1.0 / torch.linalg.vector_norm(C, ord=float("inf"), dim=0).to(torch.float64).clamp_min(TINY)
    P, sp = V.clone(), sc.clone()  # the vectors are sc·C (current) and sp·P (previous)
    active, degrees = torch.arange(V.shape[1]), degrees.cpu()
    for j in range(1, int(degrees.max()) + 1):
        if j > 1:
            colmax = torch.zeros(len(active), dtype=torch.float64)
            op.count(len(active))
            csr.fn("column_step")(csr.n, len(active), *csr.args(), mid, half, sc.data_ptr(), sp.data_ptr(),
                                  C.data_ptr(), P.data_ptr(), colmax.data_ptr(), native.threads())
            s = 1.0 / colmax.clamp_min(TINY)
            P, C, sp, sc = C, P, sc * s, s
        done = degrees[active] == j
        if bool(done.any()):
            out[:, active[done]] = C[:, done] * sc[done].to(C.dtype)
            keep = ~done
            active, P, C, sp, sc = active[keep], P[:, keep].contiguous(), C[:, keep].contiguous(), sp[keep], sc[keep]
        if not len(active):
            break
    return out


def _doubles(values: list[float]):
    return (ctypes.c_double * len(values))(*values)


def _graph(poly: Poly, op: Operator, r: torch.Tensor, scale: float) -> torch.Tensor:
    """CUDA: capture the fixed-degree application once, then one graph launch per call (eager on failure).

    The graphs live on the operator, keyed by the polynomial's coefficients, scale, shape and dtype."""
    poly = type(poly)(*(getattr(poly, f.name).cpu() for f in dataclasses.fields(poly)))  # no syncs in the capture
    graphs = op.__dict__.setdefault("_cuda_graphs", {})
    key = (type(poly), tuple(poly.flat().tolist()), scale, tuple(r.shape), r.dtype, r.device)
    if key not in graphs:
        static_in = r.clone()
        matvecs = op.matvecs
        try:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):  # warm-up (cuSPARSE buffers) outside the capture
                _steps(poly, op, static_in, scale, None)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = _steps(poly, op, static_in, scale, None)
            graphs[key] = (graph, static_in, static_out)
        except RuntimeError:
            graphs[key] = None
        op.matvecs = matvecs  # the warm-up and the capture are not products of this call
    entry = graphs[key]
    if entry is None:
        return _steps(poly, op, r, scale, None)
    graph, static_in, static_out = entry
    static_in.copy_(r)
    graph.replay()
    op.count(poly.degree * (1 if r.ndim == 1 else r.shape[1]))
    return static_out.clone()
