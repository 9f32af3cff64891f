"""CSR arrays as the fused kernels read them, and SciPy's in-place CSR product ``y += A x``."""

from __future__ import annotations

import torch
from scipy.sparse import _sparsetools

CSRArrays = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (crow, col, values)


def csr_arrays(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor) -> CSRArrays:
    """``(crow, col, values)`` contiguous, indices of one dtype (int32 when both are)."""
    index = torch.int32 if crow.dtype == col.dtype == torch.int32 else torch.int64
    return crow.to(index).contiguous(), col.to(index).contiguous(), values.contiguous()


def add_product(csr: CSRArrays | None, V: torch.Tensor, out: torch.Tensor) -> bool:
    """``out += A V`` by SciPy's CSR kernels when they can (CPU, contiguous, the matrix's dtype, a
    vector or an ``(n, k)`` block); returns whether they did."""
    if csr is None or V.ndim > 2 or not all(t.device.type == "cpu" and t.is_contiguous() and not t.requires_grad
                                            and t.dtype == csr[2].dtype for t in (V, out)):
        return False
    crow, col, values = (t.numpy() for t in csr)
    n = crow.shape[0] - 1
    if V.ndim == 1:
        _sparsetools.csr_matvec(n, V.shape[0], crow, col, values, V.numpy(), out.numpy())
    else:
        _sparsetools.csr_matvecs(n, V.shape[0], V.shape[1], crow, col, values, V.numpy().ravel(), out.numpy().ravel())
    return True


def csr_diagonal(A: torch.Tensor) -> torch.Tensor:
    crow, col, val = A.crow_indices(), A.col_indices(), A.values()
    rows = torch.repeat_interleave(torch.arange(A.shape[0], device=A.device), crow[1:] - crow[:-1])
    diag = torch.zeros(A.shape[0], dtype=A.dtype, device=A.device)
    mask = rows == col
    diag[rows[mask]] = val[mask]
    return diag
