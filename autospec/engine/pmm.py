"""Parametric Matrix Model backbone (Cook, Jammooa, Hjorth-Jensen, Lee & Lee, Nat. Commun. 16:5929,
2025; arXiv 2401.11694), written from the paper's equations in torch.

A PMM is a trainable symmetric matrix that depends affinely on an input vector ``x``,

    M(x) = M₀ + Σᵢ xᵢ Mᵢ        (r × r, symmetric, i = 1..p),

and its output is part of the spectrum of ``M(x)``. Here ``x`` is a learned linear map of the
permutation-invariant pooling ``[mean_j φ_j, max_j φ_j]`` of the embedded probe tokens, and the
``r'`` smallest and ``r'`` largest eigenvalues of ``M(x)`` (all ``r`` when ``2r' ≥ r``) of each of
``depth`` independent PMMs are mapped linearly to the backbone's ``width`` outputs. Eigenvalues are
a natural output for a network whose job is spectral, and a PMM has few parameters:
``depth·(p + 1)·r(r + 1)/2`` matrix entries.

``structure="tridiagonal"`` restricts every ``Mᵢ`` to a tridiagonal (Jacobi) matrix: ``2r − 1``
entries each. The eigenvalues of a Jacobi matrix are the nodes of the orthogonal polynomials its
entries are the three-term recurrence coefficients of, so this variant's parameters are, literally,
recurrence coefficients that depend on the probe.

Eigenvalues nearly coincide where two levels cross, and there the eigenvalue map is not smooth:
its gradient jumps, and with exact degeneracy the eigenvectors that carry it are arbitrary. Two
measures keep gradients finite and well defined (:func:`smooth_eigvalsh`):

* *level repulsion* in the forward map: a fixed ladder ``δ·diag(linspace(−1, 1, r))`` is added to
  ``M(x)`` (it splits the exact degeneracy of symmetric initial matrices such as ``M = 0``), and in
  the tridiagonal variant the off-diagonal entries are ``√(bᵢ² + δ²)``: a Jacobi matrix with
  non-zero off-diagonal entries has simple eigenvalues, so its levels never cross;
* *smoothing* in the backward map: the upstream gradient ``g`` of the eigenvalues is averaged
  over near-degenerate levels with a Gaussian kernel of width ``δ`` before it is carried back as
  ``V diag(g̃) Vᵀ``. Inside a degenerate cluster ``g̃`` is constant, so the gradient no longer
  depends on the arbitrary eigenvectors; for levels further apart than a few ``δ`` it is the exact
  gradient. The eigendecomposition runs in float64 (the matrices are at most a few dozen wide).
"""

from __future__ import annotations

import torch
from torch import nn

from autospec.errors import InputValueError

STRUCTURES = ("dense", "tridiagonal")


class _SmoothEigvalsh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, matrix: torch.Tensor, width: float) -> torch.Tensor:
        values, vectors = torch.linalg.eigh(matrix.double())
        ctx.save_for_backward(values, vectors)
        ctx.width, ctx.dtype = width, matrix.dtype
        return values.to(matrix.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        values, vectors = ctx.saved_tensors
        gap = (values.unsqueeze(-1) - values.unsqueeze(-2)) / ctx.width
        kernel = torch.exp(-0.5 * gap.square())  # 1 on the diagonal, ~0 between separated levels
        smooth = (kernel @ grad.double().unsqueeze(-1)).squeeze(-1) / kernel.sum(-1)
        grad_matrix = (vectors * smooth.unsqueeze(-2)) @ vectors.transpose(-1, -2)
        return grad_matrix.to(ctx.dtype), None


def smooth_eigvalsh(matrix: torch.Tensor, width: float = 1e-3) -> torch.Tensor:
    """Ascending eigenvalues of symmetric ``(..., r, r)`` matrices, differentiable with the
    smoothed backward described in the module docstring (``width`` = the smoothing scale δ)."""
    if width <= 0:
        raise InputValueError(f"the eigenvalue smoothing width must be > 0, got {width}")
    return _SmoothEigvalsh.apply(matrix, float(width))


class PMM(nn.Module):
    """Θ(X) = W · eig(M(x)) + b, ``x = A [mean_j φ_j, max_j φ_j]``: ``depth`` parametric matrix
    models of size ``matrix_size`` on ``inputs`` pooled features (see the module docstring)."""

    options = ("matrix_size", "eigenvalues", "inputs", "structure", "repulsion")

    def __init__(self, width: int, depth: int = 1, matrix_size: int = 8, eigenvalues: int = 4, inputs: int = 8,
                 structure: str = "dense", repulsion: float = 1e-3):
        super().__init__()
        if structure not in STRUCTURES:
            raise InputValueError(f"unknown PMM structure {structure!r}; choose one of {list(STRUCTURES)}")
        if min(depth, matrix_size, eigenvalues, inputs) < 1 or repulsion <= 0:
            raise InputValueError("a PMM needs depth, matrix_size, eigenvalues, inputs >= 1 and repulsion > 0, got "
                                  f"{depth}, {matrix_size}, {eigenvalues}, {inputs}, {repulsion}")
        r = matrix_size
        self.size, self.structure, self.repulsion = r, structure, float(repulsion)
        self.pick = eigenvalues if 2 * eigenvalues < r else 0  # r' lowest + r' highest; 0: all r
        self.project = nn.Linear(2 * width, inputs)
        entries = r * (r + 1) // 2 if structure == "dense" else 2 * r - 1
        # row 0: M₀ (a spread-out spectrum at initialisation), rows 1..p: the Mᵢ
        coeffs = torch.randn(depth, inputs + 1, entries) / r**0.5
        coeffs[:, 1:] /= inputs**0.5
        self.coeffs = nn.Parameter(coeffs)
        self.out = nn.Linear(depth * (2 * self.pick or r), width)
        if structure == "dense":
            rows, cols = torch.triu_indices(r, r)
            self.register_buffer("rows", rows, persistent=False)
            self.register_buffer("cols", cols, persistent=False)
        self.register_buffer("ladder", torch.linspace(-1.0, 1.0, r), persistent=False)

    def matrices(self, x: torch.Tensor) -> torch.Tensor:
        """``M(x)`` with the level-repulsion terms: ``(..., depth, r, r)`` for ``x`` of shape ``(..., p)``."""
        c = self.coeffs
        entries = c[:, 0] + torch.einsum("...p,dpe->...de", x, c[:, 1:])  # (..., depth, entries)
        r = self.size
        if self.structure == "dense":
            upper = entries.new_zeros(*entries.shape[:-1], r, r)
            upper[..., self.rows, self.cols] = entries
            matrix = upper + upper.transpose(-1, -2) - torch.diag_embed(upper.diagonal(dim1=-2, dim2=-1))
        else:
            off = (entries[..., r:].square() + self.repulsion**2).sqrt()
            matrix = torch.diag_embed(entries[..., :r]) + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
        return matrix + torch.diag_embed(self.repulsion * self.ladder.to(matrix.dtype))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.project(torch.cat([tokens.mean(-2), tokens.amax(-2)], dim=-1))
        values = smooth_eigvalsh(self.matrices(x), self.repulsion)  # (..., depth, r), ascending
        if self.pick:
            values = torch.cat([values[..., : self.pick], values[..., -self.pick:]], dim=-1)
        return self.out(values.flatten(-2))
