"""The torch → SciPy direction of the bridge: torch code behind a SciPy ``LinearOperator`` (the other
direction, and the rule for what the front doors return, live in :mod:`autospec.core.operators`)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse.linalg as spla
import torch


def torch_block(X, n: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    """A NumPy vector or block as a torch ``(n, k)`` block (float64 on the NumPy side)."""
    return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float64).reshape(n, -1)).to(dtype=dtype, device=device)


def as_linear_operator(apply: Callable[[torch.Tensor], torch.Tensor], n: int, dtype: torch.dtype,
                       device: torch.device | str = "cpu") -> spla.LinearOperator:
    """A symmetric float64 SciPy ``LinearOperator`` whose products run ``apply`` on torch ``(n, k)``
    blocks (e.g. ``M`` for ``scipy.sparse.linalg.cg``)."""

    def matmat(V):
        V = np.asarray(V, dtype=np.float64)
        return apply(torch_block(V, n, dtype, device)).cpu().numpy().reshape(V.shape)

    return spla.LinearOperator((n, n), matvec=matmat, matmat=matmat, rmatvec=matmat, dtype=np.float64)
