"""Explicit dtype policy of the fused kernels: the dtype vectors (and the matrix) are stored in,
and the dtype reductions (inner products, norms) and the step scalars accumulate in.

Nothing is ever downcast silently: the default policy of an operator is its own dtype for both;
a narrower storage (float32, bfloat16) is only used when the caller builds the operator in that
dtype and asks for the policy, and the accumulation is never narrower than the storage.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from autospec.errors import InputTypeError

STORAGE = (torch.float64, torch.float32, torch.bfloat16)
ACCUMULATE = (torch.float64, torch.float32)


@dataclass(frozen=True)
class DtypePolicy:
    storage: torch.dtype
    accumulate: torch.dtype

    def __post_init__(self):
        if self.storage not in STORAGE or self.accumulate not in ACCUMULATE:
            raise InputTypeError(f"dtype policy: storage must be one of {STORAGE} and accumulation one of "
                                 f"{ACCUMULATE}, got {self.storage} and {self.accumulate}")
        if torch.finfo(self.accumulate).eps > torch.finfo(self.storage).eps:
            raise InputTypeError(f"dtype policy: accumulating in {self.accumulate} would downcast {self.storage} storage")

    @classmethod
    def native(cls, dtype: torch.dtype) -> DtypePolicy:
        """Store and accumulate in ``dtype`` (bfloat16 accumulates in float32: it has no reductions of its own)."""
        return cls(dtype, torch.float32 if dtype == torch.bfloat16 else dtype)

    def check(self, *tensors: torch.Tensor) -> None:
        """Raise unless every tensor is stored in the policy's storage dtype (no silent conversion)."""
        for t in tensors:
            if t.dtype != self.storage:
                raise InputTypeError(f"dtype policy stores {self.storage}, got a {t.dtype} operand: convert it "
                                     "explicitly (the kernels never downcast on their own)")

    def dots(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``uᵀv`` per column of ``(n, k)`` blocks, accumulated in ``accumulate``: shape ``(1, k)`` (the
        diagonal of the k×k GEMM ``uᵀv``: one BLAS pass over both blocks, no strided reduction)."""
        if u.dtype != self.accumulate:
            u, v = u.to(self.accumulate), v.to(self.accumulate)
        return (u.mT @ v).diagonal().unsqueeze(0)
