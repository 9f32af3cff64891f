"""Batched dense operators (one operator per leading index), for the matrix-function engines'
probes: ``DenseBatch`` (a batch of matrices) and ``GramBatch`` (``G Gᵀ`` applied through thin products)."""

from __future__ import annotations

import torch

from autospec.core.operators import Operator
from autospec.errors import InputValueError


class DenseBatch(Operator):
    """A batch of dense torch matrices ``(..., n, n)``: one operator per leading index."""

    def __init__(self, A: torch.Tensor):
        if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
            raise InputValueError(f"DenseBatch needs square matrices (..., n, n), got shape {tuple(A.shape)}")
        super().__init__(tuple(A.shape[-2:]), A.dtype, A.device)
        self.A = A
        self.batch_shape = A.shape[:-2]

    def _matmat(self, V):
        return self.A @ V

    def diagonal(self):
        return self.A.diagonal(dim1=-2, dim2=-1)


class GramBatch(Operator):
    """``G Gᵀ`` of a batch of matrices ``G (..., m, n)``, applied as ``G (Gᵀ V)`` (two thin products)."""

    def __init__(self, G: torch.Tensor):
        if G.ndim < 2:
            raise InputValueError(f"GramBatch needs matrices (..., m, n), got shape {tuple(G.shape)}")
        super().__init__((G.shape[-2], G.shape[-2]), G.dtype, G.device)
        self.G = G
        self.batch_shape = G.shape[:-2]

    def _matmat(self, V):
        return self.G @ (self.G.mT @ V)
