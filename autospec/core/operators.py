"""Linear operators: one protocol for every kind of matrix autospec accepts.

An operator has ``shape``, ``dtype`` and ``device`` and applies itself to a block of vectors,
``matmat(V)`` with ``V`` of shape ``(..., n, k)`` (torch), counting one matvec per column
(``matmat_add`` accumulates into a buffer; fused kernels read ``csr()`` and report via ``count``).
Algorithms never count matvecs themselves: they read ``op.matvecs``.

``as_operator`` wraps NumPy arrays, SciPy sparse matrices (any format), SciPy ``LinearOperator``, torch
dense and sparse CSR tensors, Python callables and ``Diagonal`` (batched diagonal operators used in
training), validated with clear errors; real unless a caller (``pcg``) asks for ``complex_ok``.

The front doors return what they were given (:func:`torch_native`, :func:`to_caller`): **NumPy/SciPy
input gives NumPy output, torch input gives torch output** — a result, and what a callback receives,
is a NumPy array unless the caller handed in a torch tensor or an :class:`Operator` (torch-native).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from autospec.core.bridge import as_linear_operator, torch_block  # noqa: F401  (re-exported: the bridge's home was here)
from autospec.core import native
from autospec.core.csr import CSRArrays, add_product, csr_arrays, csr_diagonal
from autospec.errors import InputTypeError, InputValueError, NotSymmetricError

SYMMETRY_RTOL = 1e-10  # explicit matrices: max|A - Aᵀ| <= SYMMETRY_RTOL * max|A|
RANDOMISED_SYMMETRY_RTOL = 1e-8  # matrix-free: |xᵀAy - yᵀAx| <= rtol * ‖Ax‖‖y‖ (+ ‖Ay‖‖x‖)

_TORCH_DTYPES = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32,
                 np.dtype(np.complex128): torch.complex128, np.dtype(np.complex64): torch.complex64}
_NUMPY_DTYPES = {t: n for n, t in _TORCH_DTYPES.items()}


class Operator:
    """Base class: subclasses implement ``_matmat`` on a ``(..., n, k)`` torch tensor."""

    def __init__(self, shape: tuple[int, int], dtype: torch.dtype, device: torch.device | str = "cpu"):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype
        self.device = torch.device(device)
        self.matvecs = 0

    @property
    def n(self) -> int:
        return self.shape[0]

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """Return ``A @ V`` for ``V`` of shape ``(..., n, k)``; counts ``k`` matvecs per operator."""
        if V.shape[-2] != self.n:
            raise InputValueError(
                f"operator of shape {self.shape} cannot be applied to a block with {V.shape[-2]} rows"
            )
        self.matvecs += V.shape[-1]
        return self._matmat(V)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``A @ v`` for a single vector ``v`` of shape ``(..., n)``."""
        return self.matmat(v.unsqueeze(-1)).squeeze(-1)

    def matmat_add(self, V: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out += A V`` in place, counted (CSR operators accumulate into ``out``: no temporary)."""
        block = V if V.ndim > 1 else V.unsqueeze(-1)
        if block.shape[-2] != self.n or out.shape != V.shape:
            raise InputValueError(f"operator {self.shape} cannot add A·{tuple(V.shape)} into {tuple(out.shape)}")
        self.matvecs += block.shape[-1]
        return out if add_product(self.csr(), V, out) else out.add_(self._matmat(block).reshape(out.shape))

    def csr(self) -> CSRArrays | None:
        """CPU CSR arrays ``(crow, col, values)`` when the operator is one (fused kernels read them)."""
        return None

    def count(self, products: int) -> None:
        """Record ``products`` matvecs a fused kernel computed from :meth:`csr`."""
        self.matvecs += products

    def diagonal(self) -> torch.Tensor:
        """Diagonal of the operator (needed for Jacobi scaling)."""
        raise InputTypeError(f"{type(self).__name__} does not expose its diagonal (needed for Jacobi scaling)")

    def to_dense(self) -> torch.Tensor:
        """The operator as a dense tensor (for small references; costs ``n`` uncounted matvecs)."""
        eye = torch.eye(self.n, dtype=self.dtype, device=self.device)
        return self._matmat(eye)

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype})"


class Diagonal(Operator):
    """``diag(λ)``, batched: ``λ`` of shape ``(..., n)`` is a batch of diagonal operators."""

    def __init__(self, eigenvalues: torch.Tensor):
        lam = torch.as_tensor(eigenvalues)
        if lam.ndim < 1 or lam.shape[-1] == 0:
            raise InputValueError("Diagonal needs at least one eigenvalue")
        if not lam.is_floating_point():
            lam = lam.to(torch.get_default_dtype())
        n = lam.shape[-1]
        super().__init__((n, n), lam.dtype, lam.device)
        self.eigenvalues = lam
        self.batch_shape = lam.shape[:-1]

    def _matmat(self, V):
        return self.eigenvalues.unsqueeze(-1) * V

    def diagonal(self):
        return self.eigenvalues


class TorchMatrix(Operator):
    """Dense or sparse-CSR torch matrix."""

    def __init__(self, A: torch.Tensor):
        super().__init__(tuple(A.shape), A.dtype, A.device)
        self.A = A

    def _matmat(self, V):
        flat = V.movedim(-2, 0).reshape(self.n, -1)
        return (self.A @ flat).reshape(V.movedim(-2, 0).shape).movedim(0, -2)

    def diagonal(self):
        if self.A.layout == torch.sparse_csr:
            return csr_diagonal(self.A)
        return self.A.diagonal()

    def csr(self):
        if self.A.layout != torch.sparse_csr or self.A.device.type != "cpu":
            return None
        return csr_arrays(self.A.crow_indices(), self.A.col_indices(), self.A.values())


class ScipyMatrix(Operator):
    """NumPy dense array or SciPy sparse matrix; torch blocks are bridged without copies on CPU."""

    def __init__(self, A):
        dtype = _TORCH_DTYPES.get(np.dtype(A.dtype))
        super().__init__(A.shape, dtype)
        self.A = A.tocsr() if sp.issparse(A) else A
        self._csr = None

    def _matmat(self, V):  # CSR blocks: the C SpMM (SciPy's sums in SciPy's order, the same bits; 2x on 4+ columns)
        out = native.new_product(self, V)
        return _numpy_apply(lambda M: self.A @ M, V, self.n) if out is None else out

    def diagonal(self):
        return torch.from_numpy(np.ascontiguousarray(self.A.diagonal()))

    def csr(self):
        if not sp.issparse(self.A):
            return None
        if self._csr is None:  # views of SciPy's arrays (sorted, duplicates summed: canonical CSR)
            self.A.sum_duplicates()
            self._csr = csr_arrays(*(torch.from_numpy(a) for a in (self.A.indptr, self.A.indices, self.A.data)))
        return self._csr


class CallableOperator(Operator):
    """A SciPy ``LinearOperator`` or a Python callable ``f(V) -> A @ V``.

    Callables receive what they were given: NumPy ``(n, k)`` blocks when ``numpy=True`` (the default
    for ``LinearOperator``), torch ``(n, k)`` blocks otherwise.
    """

    def __init__(self, fn: Callable, n: int, dtype: torch.dtype, numpy: bool, diagonal=None):
        super().__init__((n, n), dtype)
        self.fn = fn
        self.numpy = numpy
        self._diag = diagonal

    def _matmat(self, V):
        if self.numpy:
            out = _numpy_apply(self.fn, V, self.n).to(self.dtype)
        else:
            lead = V.shape[:-2]
            flat = V.movedim(-2, 0).reshape(self.n, -1)
            out = torch.as_tensor(self.fn(flat), dtype=self.dtype)
            if out.shape != flat.shape:
                raise InputValueError(f"operator callable returned shape {tuple(out.shape)}, expected {tuple(flat.shape)}")
            out = out.reshape((self.n, *lead, V.shape[-1])).movedim(0, -2)
        if not bool(torch.isfinite(out).all()) and bool(torch.isfinite(V).all()):
            raise InputValueError("the operator returned non-finite values (NaN or Inf) for a finite input block")
        return out

    def diagonal(self):
        if self._diag is None:
            return super().diagonal()
        return torch.as_tensor(self._diag, dtype=self.dtype)


def _numpy_apply(fn, V: torch.Tensor, n: int) -> torch.Tensor:
    """Apply a NumPy/SciPy product ``fn`` to a torch block ``(..., n, k)``."""
    lead = V.shape[:-2]
    flat = V.movedim(-2, 0).reshape(n, -1)
    out = np.asarray(fn(flat.detach().cpu().numpy()))
    if out.ndim == 1:
        out = out.reshape(n, -1)
    if out.shape != tuple(flat.shape):
        raise InputValueError(f"operator returned shape {out.shape}, expected {tuple(flat.shape)}")
    res = torch.from_numpy(np.ascontiguousarray(out)).to(V.device)
    return res.reshape((n, *lead, V.shape[-1])).movedim(0, -2)


def torch_native(*inputs) -> bool:
    """Whether any of ``inputs`` is a torch tensor or an :class:`Operator` (then the caller gets torch)."""
    return any(isinstance(x, (torch.Tensor, Operator)) for x in inputs)


def to_caller(x: torch.Tensor, numpy_out: bool):
    """``x`` as the caller's array type: a NumPy copy when ``numpy_out``, else the tensor itself."""
    return x.detach().cpu().numpy().copy() if numpy_out else x


def as_operator(A, *, symmetric: bool = False, dtype: torch.dtype | None = None, seed: int = 0,
                complex_ok: bool = False) -> Operator:
    """Wrap ``A`` in an :class:`Operator`, validating it.

    Raises ``InputTypeError`` for unsupported types or complex (unless ``complex_ok``; then
    ``symmetric`` means Hermitian) or non-numeric data, ``InputValueError`` for empty, non-square
    or non-finite input and ``NotSymmetricError`` when ``symmetric=True`` and ``A`` is not
    symmetric (exact check for explicit matrices, randomised ``xᵀAy − yᵀAx`` test for matrix-free ones).
    """
    if isinstance(A, Operator):
        op = A
    elif isinstance(A, torch.Tensor):
        op = _torch_operator(A, dtype, complex_ok)
    elif sp.issparse(A) or isinstance(A, np.ndarray) or _is_array_like(A):
        op = _scipy_operator(A if sp.issparse(A) else np.asarray(A), dtype, complex_ok)
    elif isinstance(A, spla.LinearOperator):
        _check_square(A.shape)
        _check_real(np.dtype(A.dtype), complex_ok)
        cplx = np.issubdtype(np.dtype(A.dtype), np.complexfloating)
        op = CallableOperator(A.matmat, A.shape[0], dtype or (torch.complex128 if cplx else torch.float64), numpy=True)
    elif callable(A):
        raise InputTypeError(
            "a bare callable has no size: wrap it as autospec.core.operators.CallableOperator(fn, n, dtype, numpy=...) "
            "or scipy.sparse.linalg.LinearOperator"
        )
    else:
        raise InputTypeError(f"unsupported operator type {type(A).__name__}: expected a NumPy array, SciPy sparse "
                             "matrix, SciPy LinearOperator, torch tensor or autospec Operator")
    if symmetric:
        check_symmetric(op, A, seed=seed)
    return op


def _is_array_like(A) -> bool:
    return isinstance(A, (list, tuple)) or hasattr(A, "__array__")


def _check_square(shape):
    if len(shape) != 2:
        raise InputValueError(f"expected a 2-D matrix, got shape {tuple(shape)}")
    if shape[0] == 0 or shape[1] == 0:
        raise InputValueError(f"matrix is empty (shape {tuple(shape)})")
    if shape[0] != shape[1]:
        raise InputValueError(f"matrix must be square, got shape {tuple(shape)}")


def _check_real(dtype: np.dtype, complex_ok: bool = False):
    if np.issubdtype(dtype, np.complexfloating) and not complex_ok:
        raise InputTypeError(f"complex matrices are not supported (dtype {dtype}); autospec works on real symmetric operators")
    if not (np.issubdtype(dtype, np.inexact) or np.issubdtype(dtype, np.integer) or dtype == np.bool_):
        raise InputTypeError(f"unsupported matrix dtype {dtype}")


def _scipy_operator(A, dtype: torch.dtype | None, complex_ok: bool = False) -> ScipyMatrix:
    _check_square(A.shape)
    _check_real(np.dtype(A.dtype), complex_ok)
    cplx = np.issubdtype(np.dtype(A.dtype), np.complexfloating)
    np_dtype = _NUMPY_DTYPES.get(dtype, np.complex128 if cplx else np.float64)
    if np.dtype(A.dtype) != np_dtype:
        A = A.astype(np_dtype)
    values = A.data if sp.issparse(A) else A
    if not np.all(np.isfinite(values)):
        raise InputValueError("matrix has non-finite entries (NaN or Inf)")
    return ScipyMatrix(A)


def _scipy_csr(A: torch.Tensor) -> sp.csr_matrix:
    """A CPU torch sparse CSR or COO tensor as a SciPy CSR matrix sharing its arrays where it can."""
    if A.layout == torch.sparse_csr:
        return sp.csr_matrix((A.values().numpy(), A.col_indices().numpy(), A.crow_indices().numpy()), shape=A.shape)
    A = A.coalesce()
    rows, cols = A.indices().numpy()
    return sp.csr_matrix((A.values().numpy(), (rows, cols)), shape=A.shape)


def _torch_operator(A: torch.Tensor, dtype: torch.dtype | None, complex_ok: bool = False) -> Operator:
    _check_square(tuple(A.shape))
    if A.is_complex() and not complex_ok:
        raise InputTypeError(f"complex matrices are not supported (dtype {A.dtype})")
    target = dtype or (A.dtype if A.is_floating_point() or A.is_complex() else torch.float64)
    if A.layout in (torch.sparse_csr, torch.sparse_coo) and A.device.type == "cpu" and target in _NUMPY_DTYPES:
        return _scipy_operator(_scipy_csr(A), target, complex_ok)  # SciPy's CSR product: faster, no beta warnings
    if A.layout == torch.sparse_csr:
        values = A.values()
        if values.dtype != target:
            A = torch.sparse_csr_tensor(A.crow_indices(), A.col_indices(), values.to(target), A.shape)
        values = A.values()
    elif A.layout == torch.strided:
        A = A.to(target)
        values = A
    else:
        A = A.to_sparse_csr().to(target)
        values = A.values()
    if not torch.isfinite(values).all():
        raise InputValueError("matrix has non-finite entries (NaN or Inf)")
    return TorchMatrix(A)


def check_symmetric(op: Operator, original=None, seed: int = 0) -> None:
    """Raise ``NotSymmetricError`` unless ``op`` is symmetric.

    Explicit matrices: ``max|A − Aᵀ| <= 1e-10·max|A|``. Matrix-free: two seeded random vectors,
    ``|xᵀAy − yᵀAx| <= 1e-8·(‖Ax‖‖y‖ + ‖Ay‖‖x‖)`` (uncounted products).
    """
    if isinstance(op, Diagonal):
        return
    if isinstance(op, ScipyMatrix):
        A = op.A
        scale = abs(A).max() if A.size else 0.0
        AH = A.conj().T if np.iscomplexobj(A.data if sp.issparse(A) else A) else A.T  # Hermitian when complex
        asym = abs(A - AH).max() if sp.issparse(A) else np.abs(A - AH).max()
        if asym > SYMMETRY_RTOL * scale:
            raise NotSymmetricError(f"matrix is not symmetric: max|A - A^T| = {asym:.3e} (max|A| = {scale:.3e})")
        return
    if isinstance(op, TorchMatrix) and op.A.layout == torch.strided:
        scale = op.A.abs().max().item()
        asym = (op.A - op.A.mH).abs().max().item()
        if asym > SYMMETRY_RTOL * scale:
            raise NotSymmetricError(f"matrix is not symmetric: max|A - A^T| = {asym:.3e} (max|A| = {scale:.3e})")
        return
    gen = torch.Generator().manual_seed(seed)
    xy = torch.randn(op.n, 2, generator=gen, dtype=torch.float64).to(op.dtype)
    Axy = op._matmat(xy)
    x, y, Ax, Ay = xy[:, 0], xy[:, 1], Axy[:, 0], Axy[:, 1]
    gap = abs(complex(x.conj() @ Ay - (y.conj() @ Ax).conj()))  # xᴴAy − conj(yᴴAx): 0 for Hermitian A
    scale = float(Ax.norm() * y.norm() + Ay.norm() * x.norm())
    if gap > RANDOMISED_SYMMETRY_RTOL * scale:
        raise NotSymmetricError(f"operator is not symmetric: |x^T A y - y^T A x| = {gap:.3e} for random x, y "
                                f"(relative {gap / max(scale, 1e-300):.3e})")


def as_rhs(b, op: Operator) -> torch.Tensor:
    """Right-hand side as a float tensor of shape ``(n,)`` or ``(n, k)`` matching ``op``."""
    complex_op = op.dtype.is_complex
    if isinstance(b, torch.Tensor):
        t = b
    else:
        arr = np.asarray(b)
        if arr.dtype.kind not in "biufc":
            raise InputTypeError(f"right-hand side of dtype {arr.dtype} is not numeric")
        t = torch.from_numpy(np.array(arr, dtype=np.complex128 if np.iscomplexobj(arr) else np.float64))
    if t.is_complex() and not complex_op:
        raise InputTypeError("complex right-hand sides are not supported for a real operator")
    t = t.to(dtype=op.dtype, device=op.device)
    if t.ndim not in (1, 2) or t.shape[0] != op.n:
        raise InputValueError(f"right-hand side of shape {tuple(t.shape)} does not match operator of shape {op.shape}")
    if not torch.isfinite(t).all():
        raise InputValueError("right-hand side has non-finite entries (NaN or Inf)")
    return t


class SymmetricScaling(Operator):
    """``D A D`` for a diagonal ``D = diag(d)`` (Jacobi scaling uses ``d = diag(A)^{-1/2}``).

    Counts its own matvecs (one per product with A).
    """

    def __init__(self, op: Operator, d: torch.Tensor):
        super().__init__(op.shape, op.dtype, op.device)
        self.inner = op
        self.d = d.to(dtype=op.dtype, device=op.device)
        self._csr = None

    def _matmat(self, V):
        d = self.d.unsqueeze(-1)
        return d * self.inner._matmat(d * V)

    def diagonal(self):
        return self.d**2 * self.inner.diagonal()

    def csr(self):
        """``D A D`` as CSR: A's structure with values ``d_i a_ij d_j`` (computed once, cached)."""
        if self._csr is None:
            inner = self.inner.csr()
            if inner is None or self.d.device.type != "cpu":
                return None
            crow, col, values = inner
            rows = torch.repeat_interleave(torch.arange(self.n, dtype=col.dtype), crow[1:] - crow[:-1])
            self._csr = (crow, col, (self.d[rows] * values * self.d[col]).contiguous())
        return self._csr
