"""Sketched least squares: sketch-and-solve and sketch-and-precondition (Blendenpik, Avron,
Maymounkov & Toledo 2010; LSRN, Meng, Saunders & Mahoney 2014) for tall ``X (m × p)``.

The ridge problem ``min_w ‖Xw − y‖² + μ‖w‖²`` is the least-squares problem of ``X_μ = [X; √μ I]``
and ``y_μ = [y; 0]``. With a ``d × m`` sketch S (``d >= p``):

* **sketch-and-solve**: ``[SX; √μ I] = QR``, ``w = R⁻¹ Qᵀ [Sy; 0]`` — one pass, residual within a
  ``(1 + ε)`` factor of the optimum (ε the subspace-embedding distortion), not to a tolerance;
* **sketch-and-precondition**: the same R makes ``X_μ R⁻¹`` nearly orthonormal (its singular values
  lie in ``[1/(1+ε), 1/(1−ε)]``), so LSQR on ``min_z ‖X_μ R⁻¹ z − y_μ‖`` converges in
  ``O(log(1/rtol)/log(1/ε))`` iterations whatever κ(X) is; ``w = R⁻¹ z``. LSQR starts from the
  sketch-and-solve ``z₀ = Qᵀ[Sy; 0]`` (Rokhlin–Tygert's warm start).

Cost (``matvecs``: products of X or Xᵀ with one vector): the sketch ``SX`` costs ``S.cost`` passes
(d Gaussian, s sparse sign, ``⌈log₂ m⌉`` SRHT); each LSQR iteration one product with ``X`` and one
with ``Xᵀ``. Accuracy is reported on the normal equations,
``‖Xᵀ(y − Xw) − μw‖ / ‖Xᵀy‖`` (:attr:`LstsqInfo.normal_residual`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from scipy.linalg import solve_triangular

from autospec.core.operators import Operator
from autospec.core.results import Result
from autospec.errors import InputTypeError, InputValueError
from autospec.kernels.sketch import SparseSignSketch, make_sketch
from autospec.sketch.nystrom import check_mu

OVERSAMPLING = 4  # default sketch size d = 4p (Blendenpik's γ)


@dataclass(kw_only=True)
class LstsqInfo(Result):
    """What :func:`autospec.lstsq` did: ``iterations`` (LSQR or CG outer iterations), ``matvecs``
    (products of X or Xᵀ with a vector, the sketch included), ``rel_residual = ‖y − Xw‖/‖y‖``,
    ``normal_residual = ‖Xᵀ(y − Xw) − μw‖/‖Xᵀy‖`` (both uncounted), the sketch used (``sketch``,
    ``sketch_size``; empty/0 for unsketched methods) and ``inner`` (the solve info of the
    normal-equation methods)."""

    outer_iters: int = 0
    rel_residual: float = math.nan
    normal_residual: float = math.nan
    sketch: str = ""
    sketch_size: int = 0
    inner: object = None

    @property
    def iterations(self) -> int:
        return self.outer_iters


class DataMatrix:
    """Tall data ``X (m × p)``: a NumPy array, SciPy sparse matrix or dense torch tensor, validated
    (2-D, real, finite, non-empty); products with torch blocks, counted in ``matvecs``."""

    def __init__(self, X):
        self.torch_input = isinstance(X, torch.Tensor)
        if self.torch_input:
            if X.layout != torch.strided:
                raise InputTypeError("torch data must be a dense tensor (use a SciPy sparse matrix for sparse data)")
            if X.is_complex() or not X.is_floating_point():
                raise InputTypeError(f"data must be a real float tensor, got {X.dtype}")
            self.dtype, self.device, values = X.dtype, X.device, X
            self.X = X
        elif sp.issparse(X) or isinstance(X, np.ndarray) or hasattr(X, "__array__"):
            X = X.tocsr() if sp.issparse(X) else np.asarray(X)
            if X.dtype.kind not in "fiub":
                raise InputTypeError(f"data must be real, got dtype {X.dtype}")
            self.dtype = torch.float32 if X.dtype == np.float32 else torch.float64
            self.device = torch.device("cpu")
            self.X = X.astype(np.float32 if self.dtype == torch.float32 else np.float64, copy=False)
            values = torch.from_numpy(np.asarray(self.X.data if sp.issparse(X) else self.X))
        else:
            raise InputTypeError(f"unsupported data type {type(X).__name__}: expected a NumPy array, SciPy sparse "
                                 "matrix or torch tensor")
        if len(self.X.shape) != 2 or 0 in self.X.shape:
            raise InputValueError(f"X must be a non-empty 2-D matrix, got shape {tuple(self.X.shape)}")
        if not bool(torch.isfinite(values).all()):
            raise InputValueError("X has non-finite entries (NaN or Inf)")
        self.shape = tuple(int(s) for s in self.X.shape)
        self.matvecs = 0

    def _product(self, M, V: torch.Tensor) -> torch.Tensor:
        self.matvecs += V.shape[-1]
        if self.torch_input:
            return M @ V
        return torch.from_numpy(np.ascontiguousarray(M @ V.cpu().numpy()))

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """``X V`` for ``V (p, k)``."""
        return self._product(self.X, V)

    def rmatmat(self, U: torch.Tensor) -> torch.Tensor:
        """``Xᵀ U`` for ``U (m, k)``."""
        return self._product(self.X.T, U)

    def numpy_product(self, v: np.ndarray, transpose: bool) -> np.ndarray:
        """``X v`` (or ``Xᵀ v``) of a float64 NumPy vector, in float64 (counted: one product)."""
        V = torch.from_numpy(np.ascontiguousarray(v)).reshape(-1, 1).to(self.dtype).to(self.device)
        out = self.rmatmat(V) if transpose else self.matmat(V)
        return out.reshape(-1).cpu().numpy().astype(np.float64)

    def column_norms2(self) -> torch.Tensor:
        """``diag(XᵀX)`` (uncounted)."""
        if self.torch_input:
            return (self.X * self.X).sum(0)
        squares = self.X.multiply(self.X) if sp.issparse(self.X) else self.X * self.X
        return torch.from_numpy(np.asarray(squares.sum(0)).ravel())

    def sketched(self, S) -> torch.Tensor:
        """``S X`` (``d × p``), counted as ``S.cost`` passes over X (a pass: one product's flops)."""
        self.matvecs += S.cost
        if not sp.issparse(self.X):
            return S.apply_left(self.X if self.torch_input else torch.from_numpy(self.X))
        if isinstance(S, SparseSignSketch):
            cols = np.tile(np.arange(S.n), S.s)
            Ssp = sp.csr_matrix((S.values.cpu().numpy().ravel(), (S.rows.cpu().numpy().ravel(), cols)), shape=S.shape)
            return torch.from_numpy((Ssp @ self.X).toarray())
        return torch.from_numpy(np.ascontiguousarray((self.X.T @ S.to_dense().cpu().numpy().T).T))

    def rhs(self, y) -> torch.Tensor:
        """``y`` as an ``(m,)`` tensor of the data's dtype (validated)."""
        t = y if isinstance(y, torch.Tensor) else torch.from_numpy(np.array(y, dtype=np.float64))
        if t.is_complex() or t.ndim != 1 or t.shape[0] != self.shape[0]:
            raise InputValueError(f"y must be a real vector of length m={self.shape[0]}, got shape {tuple(t.shape)}")
        t = t.to(dtype=self.dtype, device=self.device)
        if not bool(torch.isfinite(t).all()):
            raise InputValueError("y has non-finite entries (NaN or Inf)")
        return t

    def output(self, w: torch.Tensor):
        """``w`` in the input's kind: torch for torch data, NumPy otherwise."""
        return w.to(self.dtype) if self.torch_input else w.cpu().numpy().astype(self.X.dtype, copy=False)


class NormalEquations(Operator):
    """``XᵀX + μI`` (p × p) as an autospec operator: each product costs one ``X·`` and one ``Xᵀ·``
    (counted in the data's ``matvecs`` too); ``diag = ‖x_j‖² + μ`` (so Jacobi scaling works)."""

    def __init__(self, data: DataMatrix, mu: float = 0.0):
        p = data.shape[1]
        super().__init__((p, p), data.dtype, data.device)
        self.data, self.mu = data, check_mu(mu)

    def _matmat(self, V):
        moved = V.movedim(-2, 0)
        flat = moved.reshape(self.n, -1)
        out = self.data.rmatmat(self.data.matmat(flat)).to(V.dtype).reshape(moved.shape).movedim(0, -2)
        return out + self.mu * V

    def diagonal(self):
        return self.data.column_norms2().to(self.dtype) + self.mu


def choose_sketch_size(data: DataMatrix, d: int | None, kind: str) -> int:
    """``d`` (default ``4p``, capped at the SRHT's padded length); ``d < p`` raises."""
    m, p = data.shape
    if d is None:
        d = OVERSAMPLING * p
        if kind == "srht":
            d = min(d, 1 << max(0, (m - 1).bit_length()))
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < p:
        raise InputValueError(f"the sketch size must be an integer >= the number of columns p={p} (the rank of "
                              f"SX cannot exceed d), got {d!r}")
    return int(d)


def sketch_qr(data: DataMatrix, y: torch.Tensor, mu: float, d: int, kind: str, rng) -> tuple[torch.Tensor, torch.Tensor]:
    """``R`` of ``[SX; √μ I] = QR`` and ``z₀ = Qᵀ[Sy; 0]`` (float64); raises when R is singular."""
    m, p = data.shape
    S = make_sketch(kind, d, m, rng=rng, dtype=torch.float64, device=data.device)
    SX = data.sketched(S).to(torch.float64)
    Sy = S.apply_left(y.to(torch.float64))
    if mu > 0:
        SX = torch.cat([SX, math.sqrt(mu) * torch.eye(p, dtype=SX.dtype, device=SX.device)])
        Sy = torch.cat([Sy, Sy.new_zeros(p)])
    Q, R = torch.linalg.qr(SX)
    diag = R.diagonal().abs()
    if bool((diag <= 1e-13 * diag.max()).any()) or not bool(torch.isfinite(R).all()):
        raise InputValueError("the sketched X is rank deficient (X has dependent columns): use mu > 0")
    return R, Q.mT @ Sy


def lsqr_on(data: DataMatrix, y: torch.Tensor, mu: float, R: torch.Tensor | None, rtol: float, maxiter: int | None,
            z0: torch.Tensor | None = None) -> tuple[torch.Tensor, int, bool]:
    """SciPy LSQR (``atol = btol = rtol``) on ``X`` with ``damp = √μ`` (``R = None``), or on
    ``[X; √μ I] R⁻¹`` with ``y_μ = [y; 0]`` from ``z0``; returns ``(w, iterations, converged)``
    (converged: LSQR's ``istop`` is 0, 1, 2, 4 or 5)."""
    m, p = data.shape
    Rn = None if R is None else R.cpu().numpy()
    augment = R is not None and mu > 0

    def solve_R(v, trans="N"):
        return v if Rn is None else solve_triangular(Rn, v, trans=trans)

    def forward(z):
        w = solve_R(np.asarray(z, dtype=np.float64).ravel())
        top = data.numpy_product(w, transpose=False)
        return np.concatenate([top, math.sqrt(mu) * w]) if augment else top

    def backward(u):
        u = np.asarray(u, dtype=np.float64).ravel()
        v = data.numpy_product(u[:m], transpose=True)
        return solve_R(v + math.sqrt(mu) * u[m:] if augment else v, trans="T")

    A = spla.LinearOperator((m + p if augment else m, p), matvec=forward, rmatvec=backward, dtype=np.float64)
    b = y.cpu().numpy().astype(np.float64)
    b = np.concatenate([b, np.zeros(p)]) if augment else b
    x0 = None if z0 is None else z0.cpu().numpy()
    z, stop, iters = spla.lsqr(A, b, damp=0.0 if R is not None else math.sqrt(mu), atol=rtol, btol=rtol,
                               iter_lim=maxiter, x0=x0)[:3]
    return torch.from_numpy(solve_R(z)), int(iters), stop in (0, 1, 2, 4, 5)


def residuals(data: DataMatrix, y: torch.Tensor, w: torch.Tensor, mu: float) -> tuple[float, float]:
    """``(‖y − Xw‖/‖y‖, ‖Xᵀ(y − Xw) − μw‖/‖Xᵀy‖)`` in float64, not counted."""
    before = data.matvecs
    y64, w64 = y.cpu().numpy().astype(np.float64), w.cpu().numpy().astype(np.float64)
    r = y64 - data.numpy_product(w64, transpose=False)
    g = data.numpy_product(r, transpose=True) - mu * w64
    g0 = data.numpy_product(y64, transpose=True)
    data.matvecs = before
    return _ratio(np.linalg.norm(r), np.linalg.norm(y64)), _ratio(np.linalg.norm(g), np.linalg.norm(g0))


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float(a)


def timed_info(method: str, start: float, **fields) -> LstsqInfo:
    return LstsqInfo(method=method, seconds=time.perf_counter() - start, **fields)
