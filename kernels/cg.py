"""The fused PCG iteration: the recurrence of :func:`autospec.linsys.cg.cg_steps` with every
vector updated in place and the reductions folded into the passes that produce their operands::

    q = A p, pᵀq                  (one pass: SpMV + dot)
    x += α p, r −= α q, ‖W r‖²    (one pass)
    z = M r, rᵀz                  (rᵀz = ‖r‖² when M = I and W = I: no pass)
    p = z + β p                   (one pass)

A vector on a CPU CSR operator runs the C kernels of :mod:`autospec.core.native`; on CUDA the product
is cuSPARSE's and each update one Triton kernel (:mod:`autospec.kernels.triton_updates`, when Triton is
installed); anything else (blocks of right-hand sides through SpMM) runs in-place torch operations.
Each column is an independent system (α, β per column), as in ``cg_steps``; reductions and the
step scalars accumulate in the dtype of an explicit :class:`~autospec.kernels.policy.DtypePolicy`.
"""

from __future__ import annotations

from typing import Callable, Iterator, NamedTuple

import torch

from autospec.core import native
from autospec.core.operators import Operator
from autospec.errors import InputTypeError
from autospec.kernels import triton_updates
from autospec.kernels.policy import DtypePolicy

Apply = Callable[[torch.Tensor], torch.Tensor]


class CGStep(NamedTuple):
    x: torch.Tensor  # iterate x_{k+1}
    r: torch.Tensor  # recursively updated residual r_{k+1}
    curvature: torch.Tensor  # p_kᵀ A p_k, shape (..., 1, k)
    rz: torch.Tensor  # r_kᵀ z_k used for α_k
    rnorm: torch.Tensor | None = None  # ‖W r_{k+1}‖ per column, shape (k,), when the step computed it


def fusable(op: Operator, b: torch.Tensor) -> bool:
    """Whether :func:`fused_cg_steps` runs on ``op``: a real float dtype, no autograd, a CSR operator
    on CPU, an operator with an in-place ``product_into`` (:func:`autospec.core.native.product`) or any
    operator on CUDA (not batched over operators)."""
    return (b.dtype in (torch.float64, torch.float32) and op.dtype == b.dtype and b.ndim == 2
            and not b.requires_grad and not getattr(op, "batch_shape", ())
            and (op.csr() is not None or hasattr(op, "product_into") or b.device.type == "cuda"))


def fused_cg_steps(op: Operator, b: torch.Tensor, x0: torch.Tensor, precond: Apply | None, r0: torch.Tensor,
                   weights: torch.Tensor | None = None, policy: DtypePolicy | None = None) -> Iterator[CGStep]:
    """Endless PCG on ``(n, k)`` blocks from ``x0`` (updated in place) with residual ``r0 = b − A x0``
    (copied); yields :class:`CGStep` with ``rnorm = ‖W r‖`` (``W = diag(weights)``, ``(n, 1)``).
    ``policy``: storage and accumulation dtypes (default: the operands' own, :class:`DtypePolicy`);
    the operands must already be stored in its storage dtype."""
    policy = DtypePolicy.native(b.dtype) if policy is None else policy
    policy.check(b, x0, r0)
    if op.dtype != policy.storage:
        raise InputTypeError(f"the operator is {op.dtype} but the dtype policy stores {policy.storage}: "
                             "build the operator in that dtype explicitly")
    x, r = x0.contiguous(), r0.clone(memory_format=torch.contiguous_format)
    w2 = None if weights is None else (weights.to(r.dtype) ** 2).reshape(r.shape[0], -1).expand_as(r).contiguous()
    csr = native.csr_of(op, x, r)
    torch_step = _TritonBlock if triton_updates.runs_on(r) else _TorchBlock
    step = (torch_step if csr is None else _NativeVector if r.shape[1] == 1 else _NativeBlock)(op, w2, policy)
    z = r if precond is None else precond(r)
    p = z.clone(memory_format=torch.contiguous_format)
    rz = policy.dots(r, z)
    live = torch.linalg.vector_norm(r, dim=0, keepdim=True) > 0
    q = torch.empty_like(p)
    while True:
        curvature = step.product(p, q)
        alpha = torch.where(live & (curvature != 0), rz / torch.where(curvature != 0, curvature, 1), 0)
        rr = step.update(alpha, p, q, x, r)
        rnorm = rr.sqrt().reshape(-1)
        yield CGStep(x, r, curvature, rz, rnorm)
        live = live & (rnorm.reshape(live.shape) > 0)
        if precond is None:
            z, rz_next = r, (rr if w2 is None else policy.dots(r, r))
        else:
            z = precond(r)
            rz_next = policy.dots(r, z)
        beta = torch.where(live & (rz != 0), rz_next / torch.where(rz != 0, rz, 1), 0)
        step.direction(beta, z, p)
        rz = rz_next


class _NativeVector:
    """One right-hand side on a CPU CSR operator: the fused C kernels (scalars on the Python side)."""

    def __init__(self, op: Operator, w2: torch.Tensor | None, policy: DtypePolicy):
        self.op, self.csr, self.w2 = op, native.csr_of(op), w2

    def product(self, p, q) -> torch.Tensor:
        self.op.count(1)
        dot = self.csr.fn("spmv_dot")(self.csr.n, *self.csr.args(), 1.0, p.data_ptr(), q.data_ptr(), native.threads())
        return torch.tensor([[dot]], dtype=p.dtype)

    def update(self, alpha, p, q, x, r) -> torch.Tensor:
        fn = native.vector_fn("cg_update", r.dtype)
        rr = fn(self.csr.n, float(alpha), p.data_ptr(), q.data_ptr(), x.data_ptr(), r.data_ptr(),
                native.ptr(self.w2), native.threads())
        return torch.tensor([[rr]], dtype=r.dtype)

    def direction(self, beta, z, p) -> None:
        native.vector_fn("direction", p.dtype)(self.csr.n, float(beta), z.data_ptr(), p.data_ptr(), native.threads())


class _TorchBlock:
    """Any block on any device: the product accumulated in place (SpMM), in-place axpys; reductions
    and step scalars in the policy's accumulation dtype."""

    def __init__(self, op: Operator, w2: torch.Tensor | None, policy: DtypePolicy):
        self.op, self.w2, self.policy = op, w2, policy

    def product(self, p, q) -> torch.Tensor:
        native.product(self.op, p, q)
        return self.policy.dots(p, q)

    def update(self, alpha, p, q, x, r) -> torch.Tensor:
        alpha = alpha.to(x.dtype)
        x.addcmul_(alpha, p)
        r.addcmul_(alpha, q, value=-1)
        return self.policy.dots(r, r if self.w2 is None else self.w2 * r)

    def direction(self, beta, z, p) -> None:
        p.mul_(beta.to(p.dtype)).add_(z)


class _TritonBlock(_TorchBlock):
    """Any block on CUDA: the product as :class:`_TorchBlock`'s, each update one Triton kernel."""

    def update(self, alpha, p, q, x, r) -> torch.Tensor:
        return triton_updates.cg_update(alpha, p, q, x, r, self.w2, self.policy.accumulate)

    def direction(self, beta, z, p) -> None:
        triton_updates.direction(beta.to(self.policy.accumulate), z, p)


class _NativeBlock(_TorchBlock):
    """k right-hand sides on a CPU CSR operator: C SpMM (one matrix read for k columns) and one-pass
    block updates; the dots as the diagonal of a k×k GEMM."""

    def update(self, alpha, p, q, x, r) -> torch.Tensor:
        (n, k), alpha = r.shape, alpha.to(torch.float64).contiguous()
        rr = torch.empty(k, dtype=torch.float64)
        native.vector_fn("cg_update_block", r.dtype)(n, k, alpha.data_ptr(), p.data_ptr(), q.data_ptr(), x.data_ptr(),
                                                     r.data_ptr(), native.ptr(self.w2), rr.data_ptr(), native.threads())
        return rr.to(self.policy.accumulate).unsqueeze(0)

    def direction(self, beta, z, p) -> None:
        (n, k), beta = p.shape, beta.to(torch.float64).contiguous()
        native.vector_fn("direction_block", p.dtype)(n, k, beta.data_ptr(), z.data_ptr(), p.data_ptr(), native.threads())
