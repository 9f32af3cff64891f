"""``autospec.matfun``: matrix functions — ``A^{−1/2}``, ``A^{1/2}``, the polar factor — as dense
GEMM iterations, and the matrix-free action ``f(A) z``.

Dense functions take NumPy arrays, SciPy sparse matrices (densified) or torch tensors of shape
``(..., n, n)`` (``(..., m, n)`` for :func:`polar`) and return ``(X, info)``; X is a torch tensor of
the input's dtype/device, or a NumPy array when NumPy/SciPy input was given. ``A`` must be
symmetric (``max|A − Aᵀ| ≤ rtol·max|A|``, rtol 1e-10 for float64, 1e-5 for float32, 4e-3 for
float16, 3e-2 for bfloat16; it is then symmetrised) and positive definite (float64 Cholesky) for
``inv_sqrt`` and ``sqrt``.

``rel_error`` is the same for every method (float64, worst over the batch, not counted in matmuls):

* ``inv_sqrt``: ``‖X A X − I‖_F/√n``;
* ``sqrt``: ``‖X X − A‖_F/‖A‖_F``;
* ``polar``: ``‖QᵀQ − I‖_F/√n`` on the smaller Gram (``Q Qᵀ`` for wide Q, n = min(m, n)) — an
  orthogonality error, blind to a singular direction sent to −1 (``benchmarks/bench_matfun_engine.py``
  also measures ``‖Q − U Vᵀ‖``);
* ``apply``: ``‖y − f(A) z‖_F/‖f(A) z‖_F`` with the exact ``eigh`` action (n ≤ 4000); above, the
  probe's Gauss-quadrature estimate of that error for a random z (``info.error_estimated``).

For the dense functions ``tol`` stops an iterative method on **its own residual**
(``info.residual``: ``‖I − Z Y‖_F/√n`` for coupled iterations, ``‖I − M‖_F/√n`` for inverse Newton,
``‖I − X Xᵀ‖_F/√min(m, n)`` for polar iterations; see :mod:`autospec.kernels`) and ``converged``
says that residual met it — ``rel_error`` above is a second, method-independent measure, close to
it but not the one checked. ``max_iters`` caps the steps (default 100, 5 for ``muon``, whose fixed
coefficients never converge); ``tol=None`` runs exactly ``max_iters`` steps. For ``apply`` (one
fixed polynomial, no iteration) ``converged`` means ``rel_error <= tol`` (default 1e-6, as the
dense functions; ``tol=None``: only that the result is finite). ``matmuls`` counts full-size GEMMs
(``eigh``: 0; ``apply`` is matrix-free: 0, its products with A are ``matvecs``, probe included). Methods are looked up in :data:`METHODS`; :func:`register`
adds one (e.g. the learned engine under ``"autospec"``).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from autospec.core.intervals import probe_interval, spectral_interval
from autospec.core.operators import as_operator, as_rhs, to_caller, torch_native
from autospec.core.probe import lanczos
from autospec.core.recurrences import evaluate
from autospec.core.results import ResidualHistory, Result
from autospec.core.validate import integer, only_for, real, seed_from, seed_renamed
from autospec.errors import (
    InputTypeError,
    InputValueError,
    NotPositiveDefiniteError,
    NotSymmetricError,
)
from autospec.kernels import reference
from autospec.matfun.learned import AUTOSPEC_METHODS, action_engine
from autospec.matfun.methods import BASELINES, Kernel, chebyshev_polynomial
from autospec.matfun.task import SCALAR_FUNCTIONS

__all__ = ["APPLY_METHODS", "METHODS", "SCALAR_FUNCTIONS", "MatfunInfo", "apply", "inv_sqrt", "polar",
           "probe_interval", "register", "spectral_interval", "sqrt"]

SYMMETRY_RTOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}
EXACT_APPLY_MAX_N = 4000
APPLY_DEGREE, APPLY_PROBE_STEPS = 20, 50  # apply's degree=None / probe_steps=None without an engine
MAX_APPLY_DEGREE = 4000  # as the eigen filters' max_degree; the interpolant's (d+1)² table is 128 MiB there


@dataclass(kw_only=True)
class MatfunInfo(ResidualHistory, Result):
    """What a matrix-function call did (see the module docstring for ``rel_error``);
    ``residual_history`` (= ``history``) is the method's own residual per iteration."""

    function: str = ""
    iters: int = 0
    matmuls: int = 0
    rel_error: float = math.nan
    residual: float = math.nan  # the method's own final residual, the one ``tol`` is checked on (dense)
    error_estimated: bool = False  # apply, n > 4000: rel_error is the probe's quadrature estimate
    diverged: bool = False
    sketch_matmuls: int = 0  # thin n×p products (PRISM's sketch)
    interval: tuple[float, float] | None = None  # apply: the polynomial's interval [a, b]

    @property
    def iterations(self) -> int:
        return self.iters


METHODS: dict[str, dict[str, Kernel]] = {f: {**table, "autospec": AUTOSPEC_METHODS[f]} for f, table in BASELINES.items()}
APPLY_METHODS: dict[str, Callable] = {"chebyshev": chebyshev_polynomial, "autospec": AUTOSPEC_METHODS["apply"]}


def register(function: str, method: str, kernel: Kernel) -> None:
    """Add (or replace) ``method`` for ``function`` (``inv_sqrt``, ``sqrt``, ``polar`` or ``apply``).

    Dense kernels are called as ``kernel(A, tol=..., max_iters=..., engine=...)`` on a validated
    torch tensor and return ``(X, KernelInfo)``; ``apply`` methods are called as
    ``kernel(op, probe, f, degree, engine)`` and return a polynomial with ``.apply(matmat, z)`` and
    its interval ``(a, b)`` (or None).
    """
    table = APPLY_METHODS if function == "apply" else METHODS.get(function)
    if table is None:
        raise InputValueError(f"unknown function {function!r}; choose one of {sorted(METHODS) + ['apply']}")
    table[method] = kernel


# --------------------------------------------------------------------------- validation


def _as_tensor(A) -> tuple[torch.Tensor, bool]:
    """A float torch tensor and whether the input was NumPy-like (the output follows it)."""
    if isinstance(A, torch.Tensor):
        T, numpy_like = (A.to_dense() if A.layout != torch.strided else A), False
    elif sp.issparse(A):
        T, numpy_like = torch.from_numpy(np.asarray(A.toarray())), True
    elif isinstance(A, (np.ndarray, list, tuple)) or hasattr(A, "__array__"):
        array = np.asarray(A)
        if array.dtype.kind not in "biufc":
            raise InputTypeError(f"unsupported array dtype {array.dtype}: expected real floating-point numbers")
        T, numpy_like = torch.from_numpy(array if array.dtype.kind in "fc" else array.astype(np.float64)), True
    else:
        raise InputTypeError(f"unsupported input type {type(A).__name__}: expected a NumPy array, SciPy sparse "
                             "matrix or torch tensor")
    if T.is_complex():
        raise InputTypeError(f"complex matrices are not supported (dtype {T.dtype})")
    if not T.is_floating_point():
        T = T.to(torch.float64)
    if T.dtype not in SYMMETRY_RTOL:
        raise InputTypeError(f"unsupported dtype {T.dtype}; use float64, float32, float16 or bfloat16")
    return T, numpy_like


def _validate(A, function: str) -> tuple[torch.Tensor, bool]:
    T, numpy_like = _as_tensor(A)
    if T.ndim < 2:
        raise InputValueError(f"expected a matrix or a batch of matrices (..., m, n), got shape {tuple(T.shape)}")
    if T.numel() == 0:
        raise InputValueError(f"matrix is empty (shape {tuple(T.shape)})")
    if not bool(torch.isfinite(T).all()):
        raise InputValueError("matrix has non-finite entries (NaN or Inf)")
    if function == "polar":
        return T, numpy_like
    if T.shape[-1] != T.shape[-2]:
        raise InputValueError(f"{function} needs square matrices, got shape {tuple(T.shape)}")
    scale = T.abs().amax(dim=(-2, -1)).to(torch.float64)
    asym = (T - T.mT).abs().amax(dim=(-2, -1)).to(torch.float64)
    bad = asym > SYMMETRY_RTOL[T.dtype] * scale
    if bool(bad.any()):
        i = _first(bad)
        raise NotSymmetricError(f"{function} needs a symmetric matrix: max|A - A^T| = {float(asym[i]):.3e} "
                                f"(max|A| = {float(scale[i]):.3e}){_where(T, i)}")
    T = (T + T.mT) / 2
    failed = torch.linalg.cholesky_ex(T.to(torch.float64)).info > 0
    if bool(failed.any()):
        raise NotPositiveDefiniteError(f"{function} needs a positive definite matrix: the Cholesky factorisation "
                                       f"failed{_where(T, _first(failed))}")
    return T, numpy_like


def _first(mask: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in torch.nonzero(mask)[0]) if mask.ndim else ()


def _where(T: torch.Tensor, index: tuple[int, ...]) -> str:
    return f" (batch index {index})" if T.ndim > 2 else ""


def _output(X: torch.Tensor, numpy_like: bool):
    return X.detach().cpu().numpy() if numpy_like else X


# --------------------------------------------------------------------------- errors


def _frob(M: torch.Tensor) -> torch.Tensor:
    return torch.linalg.matrix_norm(M)


def _rel_error(function: str, A: torch.Tensor, X: torch.Tensor) -> float:
    A, X = A.to(torch.float64), X.to(torch.float64)
    if function == "polar":
        gram = X.mT @ X if X.shape[-2] >= X.shape[-1] else X @ X.mT
        eye = torch.eye(gram.shape[-1], dtype=torch.float64, device=X.device)
        err = _frob(gram - eye) / math.sqrt(gram.shape[-1])
    elif function == "inv_sqrt":
        eye = torch.eye(A.shape[-1], dtype=torch.float64, device=A.device)
        err = _frob(X @ A @ X - eye) / math.sqrt(A.shape[-1])
    else:
        err = _frob(X @ X - A) / _frob(A)
    return float(err.max())


# --------------------------------------------------------------------------- dense API


def _dense(function: str, A, method: str, tol: float | None, max_iters: int | None, engine):
    table = METHODS[function]
    if method not in table:
        raise InputValueError(f"unknown method {method!r} for {function}; choose one of {sorted(table)}")
    only_for(method, "engine", engine, ("autospec",))
    tol = None if tol is None else real("tol", tol)  # None: a fixed number of iterations
    max_iters = integer("max_iters", max_iters, 0, none=True)
    T, numpy_like = _validate(A, function)
    start = time.perf_counter()
    X, kinfo = table[method](T, tol=tol, max_iters=max_iters, engine=engine)
    seconds = time.perf_counter() - start
    if kinfo.diverged:
        warnings.warn(f"{function} by {method} diverged after {kinfo.iters} iterations (residual history "
                      f"{kinfo.residual_history[-3:]}); returning the last iterate before divergence",
                      RuntimeWarning, stacklevel=3)
    info = MatfunInfo(
        function=function,
        method=method,
        iters=kinfo.iters,
        matmuls=kinfo.matmuls,
        rel_error=_rel_error(function, T, X),
        converged=kinfo.converged,
        diverged=kinfo.diverged,
        sketch_matmuls=kinfo.sketch_matmuls,
        history=kinfo.residual_history,
        residual=float(kinfo.residual_history[-1]) if kinfo.residual_history else math.nan,
        seconds=seconds,
    )
    return _output(X, numpy_like), info


def inv_sqrt(A, method: str = "newton_schulz", *, tol: float | None = 1e-6, max_iters: int | None = None,
             engine=None) -> tuple[np.ndarray | torch.Tensor, MatfunInfo]:
    """``X ≈ A^{−1/2}`` of SPD ``A (..., n, n)``; method in ``newton_schulz`` (default), ``prism``,
    ``inverse_newton``, ``eigh``, ``autospec``. ``rel_error = ‖X A X − I‖_F/√n``."""
    return _dense("inv_sqrt", A, method, tol, max_iters, engine)


def sqrt(A, method: str = "newton_schulz", *, tol: float | None = 1e-6, max_iters: int | None = None,
         engine=None) -> tuple[np.ndarray | torch.Tensor, MatfunInfo]:
    """``X ≈ A^{1/2}`` of SPD ``A (..., n, n)``; methods as :func:`inv_sqrt` (``inverse_newton``
    returns ``A·A^{−1/2}``). ``rel_error = ‖X X − A‖_F/‖A‖_F``."""
    return _dense("sqrt", A, method, tol, max_iters, engine)


def polar(M, method: str = "polar_express", *, tol: float | None = 1e-6, max_iters: int | None = None,
          engine=None) -> tuple[np.ndarray | torch.Tensor, MatfunInfo]:
    """Polar factor ``Q ≈ U Vᵀ`` of ``M (..., m, n)`` (``M = U Σ Vᵀ``); method in ``polar_express``
    (default), ``newton_schulz`` (cubic), ``muon``, ``prism``, ``eigh`` (SVD), ``autospec``.
    ``rel_error = ‖QᵀQ − I‖_F/√n`` on the smaller Gram."""
    return _dense("polar", M, method, tol, max_iters, engine)


# --------------------------------------------------------------------------- matrix-free action


@seed_renamed
def apply(A, z, *, f: str = "inv_sqrt", degree: int | None = None, method: str = "chebyshev",
          probe_steps: int | None = None, rng=None, engine=None,
          tol: float | None = 1e-6) -> tuple[np.ndarray | torch.Tensor, MatfunInfo]:
    """``y = p(A) z ≈ f(A) z`` for symmetric positive definite A, matrix-free (any input of
    :func:`autospec.core.operators.as_operator`, one matrix), f in ``inv_sqrt``, ``sqrt``, ``inv``.

    One Lanczos probe (``probe_steps``, seeded by ``rng``: None for seed 0, an integer seed or a
    NumPy ``Generator``) gives the interval of :func:`spectral_interval`;
    ``method="chebyshev"`` applies the degree-d Chebyshev interpolant of f on it with the
    three-term recurrence (d products per column of z; ``degree <= 4000``). ``degree=None`` and
    ``probe_steps=None``: the learned engine's own (``"autospec"``; a degree that disagrees with it
    raises), else 20 and 50. ``info.matvecs`` counts every product with A, probe included
    (``matmuls`` is 0: no dense GEMM). ``rel_error`` is against the exact ``eigh`` action for
    n ≤ 4000, else the probe's Gauss-quadrature estimate for a random z (``info.error_estimated``);
    ``info.converged`` means ``rel_error <= tol`` (``tol=None``: only that y is finite); ``z = 0``
    returns ``y = 0`` at once. y is a NumPy array for NumPy/SciPy input (A and z), a torch tensor
    for torch input.
    """
    if f not in SCALAR_FUNCTIONS:
        raise InputValueError(f"unknown function f={f!r}; choose one of {sorted(SCALAR_FUNCTIONS)}")
    if method not in APPLY_METHODS:
        raise InputValueError(f"unknown method {method!r} for apply; choose one of {sorted(APPLY_METHODS)}")
    only_for(method, "engine", engine, ("autospec",))
    degree = integer("degree", degree, 0, none=True)
    if degree is not None and degree > MAX_APPLY_DEGREE:
        raise InputValueError(f"degree must be <= {MAX_APPLY_DEGREE}, got {degree} (each degree costs a product "
                              "per column of z; the interpolant's coefficients take (degree+1)^2 memory)")
    probe_steps, seed = integer("probe_steps", probe_steps, 1, none=True), seed_from(rng)
    tol = None if tol is None else real("tol", tol)
    if method == "autospec":  # the engine first: its degree and probe length are the defaults
        engine = action_engine(engine, f, degree)
        degree, probe_steps = engine.degree if degree is None else degree, probe_steps or engine.probe_steps
    degree, probe_steps = APPLY_DEGREE if degree is None else degree, probe_steps or APPLY_PROBE_STEPS
    numpy_out = not torch_native(A, z)
    op = as_operator(A, symmetric=True, seed=seed)
    rhs = as_rhs(z, op)
    block = rhs.unsqueeze(-1) if rhs.ndim == 1 else rhs
    if not bool(block.any()):  # z = 0: y = 0 exactly, at no product (as pcg's b = 0)
        return to_caller(torch.zeros_like(rhs), numpy_out), MatfunInfo(function=f, method=method, converged=True,
                                                                        rel_error=0.0)
    start, clock = op.matvecs, time.perf_counter()
    probe = lanczos(op, steps=probe_steps, seed=seed)
    poly, interval = APPLY_METHODS[method](op, probe, f, degree, engine)
    y = poly.apply(op.matmat, block)
    seconds = time.perf_counter() - clock
    matvecs = op.matvecs - start
    estimated = op.n > EXACT_APPLY_MAX_N
    error = _estimated_error(poly, probe, f, op.dtype) if estimated else _apply_error(op, f, block, y)
    finite = bool(torch.isfinite(y).all())
    info = MatfunInfo(
        function=f,
        method=method,
        iters=degree,
        matmuls=0,
        rel_error=error,
        error_estimated=estimated,
        converged=finite and (tol is None or error <= tol),
        matvecs=matvecs,
        seconds=seconds,
        interval=interval,
    )
    y = y.squeeze(-1) if rhs.ndim == 1 else y
    return to_caller(y, numpy_out), info


def _apply_error(op, f: str, z: torch.Tensor, y: torch.Tensor) -> float:
    dense = op.to_dense().to(torch.float64)
    exact = reference.spectral_function((dense + dense.mT) / 2, SCALAR_FUNCTIONS[f], positive=f != "sqrt")
    target = exact @ z.to(torch.float64)
    return float(_frob(y.to(torch.float64) - target) / _frob(target))


def _estimated_error(poly, probe, f: str, dtype: torch.dtype) -> float:
    """``(Σ τ_j² (p − f)²(θ_j) / Σ τ_j² f²(θ_j))^{1/2}``: Gauss quadrature (the probe's Ritz values θ_j
    and weights τ_j²) of the expected squared error ``E‖(p(A) − f(A)) z‖² / E‖f(A) z‖²`` for a random z."""
    theta, w = probe.ritz.to(torch.float64), probe.weights.to(torch.float64)
    p = evaluate(poly, theta.to(dtype)).to(torch.float64)
    fx = SCALAR_FUNCTIONS[f](theta)
    return float(((w * (p - fx) ** 2).sum() / (w * fx**2).sum()).sqrt())
