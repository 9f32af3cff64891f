"""Fused CPU kernels: C compiled on first use (``cc -O3 -march=native -fopenmp``), loaded by ctypes.

Each kernel is one pass over a CSR matrix (:meth:`Operator.csr`) and the vectors of a recurrence
step, so a step costs its SpMV and not much more (the unfused torch step reads and writes every vector three or four
times and allocates its temporaries). The shared library is cached under
``$AUTOSPEC_CACHE`` (default ``~/.cache/autospec``) keyed by the source's hash; without a C compiler,
or with ``AUTOSPEC_NATIVE=0``, :func:`library` is ``None`` and callers take the torch path.
Threads: ``torch.get_num_threads()`` at each call.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from autospec.core.native_source import BODY, MAIN, VECTOR
from autospec.core.native_wave import WAVE

FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fPIC", "-shared"]
_P, _I64, _D, _INT = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_int
_SIGNATURES = {  # name: (restype, argtypes) — matrix kernels take (n, [k,] ptr, idx, val, ...)
    "spmm": (None, [_I64, _I64, _P, _P, _P, _D, _P, _P, _INT]),
    "spmv_dot": (_D, [_I64, _P, _P, _P, _D, _P, _P, _INT]),
    "three_term": (None, [_I64, _P, _P, _P, _D, _D, _D, _INT, _D, _P, _P, _P, _P, _D, _INT]),
    "cheb_basis": (None, [_I64, _P, _P, _P, _D, _D, _D, _D, _INT, _D, _P, _P, _P, _P, _D, _INT]),
    "three_term_block": (None, [_I64, _I64, _P, _P, _P, _D, _D, _D, _INT, _D, _P, _P, _P, _P, _D, _INT]),
    "cheb_basis_block": (None, [_I64, _I64, _P, _P, _P, _D, _D, _D, _D, _INT, _D, _P, _P, _P, _P, _D, _INT]),
    "column_step": (None, [_I64, _I64, _P, _P, _P, _D, _D, _P, _P, _P, _P, _P, _INT]),
    "three_term_wave": (None, [_I64, _P, _P, _P, _D, _I64, _P, _P, _D, _P, _P, _P, _P, _I64, _I64, _I64, _INT]),
    "cheb_basis_wave": (None, [_I64, _P, _P, _P, _D, _D, _D, _I64, _P, _P, _P, _P, _I64, _I64, _I64, _INT]),
    "bandwidth": (_I64, [_I64, _P, _P]),
    "lanczos_step": (_D, [_I64, _P, _P, _P, _D, _D, _P, _P, _P, _P, _INT]),
    "cg_update": (_D, [_I64, _D, _P, _P, _P, _P, _P, _INT]),
    "direction": (None, [_I64, _D, _P, _P, _INT]),
    "axpy_norm": (_D, [_I64, _D, _P, _P, _INT]),
    "dot": (_D, [_I64, _P, _P, _INT]),
    "cg_update_block": (None, [_I64, _I64, _P, _P, _P, _P, _P, _P, _P, _INT]),
    "direction_block": (None, [_I64, _I64, _P, _P, _P, _INT]),
}
_VECTOR_KERNELS = ("cg_update", "direction", "axpy_norm", "dot", "cg_update_block", "direction_block")
_VALUE = {torch.float64: "f64", torch.float32: "f32"}
_INDEX = {torch.int32: "i32", torch.int64: "i64"}


def _compile(directory: Path) -> Path:
    target = directory / "libautospec_kernels.so"
    if target.exists():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise OSError("no C compiler")
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        for name, text in (("body.h", BODY + WAVE), ("vector.h", VECTOR), ("main.c", MAIN)):
            Path(tmp, name).write_text(text)
        out = Path(tmp, "lib.so")
        for openmp in (["-fopenmp"], []):  # without libgomp: single-threaded
            proc = subprocess.run([compiler, *FLAGS, *openmp, "-o", str(out), str(Path(tmp, "main.c"))],
                                  capture_output=True, text=True)
            if proc.returncode == 0:
                break
        else:
            raise OSError(proc.stderr[-2000:])
        os.replace(out, target)  # atomic: concurrent first uses never load a half-written library
    return target


@functools.lru_cache(maxsize=None)
def library() -> ctypes.CDLL | None:
    """The compiled kernels, or ``None`` when disabled (``AUTOSPEC_NATIVE=0``) or not compilable."""
    if os.environ.get("AUTOSPEC_NATIVE", "1") == "0":
        return None
    digest = hashlib.sha256("\0".join([BODY, WAVE, VECTOR, MAIN, *FLAGS]).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("AUTOSPEC_CACHE", Path.home() / ".cache" / "autospec"))
    try:
        lib = ctypes.CDLL(str(_compile(cache / f"native-{digest}")))
    except OSError:
        return None
    for name, (restype, argtypes) in _SIGNATURES.items():
        for value in _VALUE.values():
            for index in ([""] if name in _VECTOR_KERNELS else ["_i32", "_i64"]):
                fn = getattr(lib, f"{name}_{value}{index}")
                fn.restype, fn.argtypes = restype, argtypes
    return lib


@dataclass(frozen=True)
class CSR:
    """A CPU CSR matrix the kernels can read: contiguous ``crow``, ``col`` (same int type), ``values``."""

    crow: torch.Tensor
    col: torch.Tensor
    values: torch.Tensor

    @property
    def n(self) -> int:
        return self.crow.shape[0] - 1

    def fn(self, name: str):
        """The kernel ``name`` for this matrix's value and index types."""
        return getattr(library(), f"{name}_{_VALUE[self.values.dtype]}_{_INDEX[self.col.dtype]}")

    def args(self) -> tuple[int, int, int]:
        return self.crow.data_ptr(), self.col.data_ptr(), self.values.data_ptr()


def csr_of(op, *vectors: torch.Tensor) -> CSR | None:
    """``op``'s CSR arrays as a :class:`CSR` when the native kernels can run on them and on these
    vectors (compiled library, CPU, contiguous, the matrix's dtype, no autograd), else ``None``."""
    arrays = op.csr()
    if arrays is None or library() is None:
        return None
    csr = CSR(*arrays)
    ok = (csr.values.dtype in _VALUE and csr.col.dtype in _INDEX and csr.crow.dtype == csr.col.dtype
          and all(v.device.type == "cpu" and v.is_contiguous() and v.dtype == csr.values.dtype and not v.requires_grad
                  for v in vectors))
    return csr if ok else None


def per_columns(csr: CSR, name: str, k: int):
    """The matrix kernel ``name`` for ``k`` columns with the matrix arguments bound: ``name`` itself
    for one column, ``name_block`` (taking k after n) for more."""
    if k == 1:
        return functools.partial(csr.fn(name), csr.n, *csr.args())
    return functools.partial(csr.fn(f"{name}_block"), csr.n, k, *csr.args())


def vector_fn(name: str, dtype: torch.dtype):
    """The vector kernel ``name`` (no matrix) for ``dtype``."""
    return getattr(library(), f"{name}_{_VALUE[dtype]}")


def threads() -> int:
    return torch.get_num_threads()


def spmm(csr: CSR, x: torch.Tensor, out: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``out = scale·A x`` for a contiguous ``(n,)`` or ``(n, k)`` block."""
    k = 1 if x.ndim == 1 else x.shape[-1]
    csr.fn("spmm")(csr.n, k, *csr.args(), scale, x.data_ptr(), out.data_ptr(), threads())
    return out


def new_product(op, V: torch.Tensor) -> torch.Tensor | None:
    """``A V`` in a new tensor by the C SpMM when ``op`` is a CPU CSR matrix and ``V`` an ``(n, k)``
    block the kernels take, else ``None``; not counted (the caller's ``matmat`` counts)."""
    csr = csr_of(op, V) if V.ndim == 2 and V.is_contiguous() else None
    return None if csr is None else spmm(csr, V, torch.empty_like(V))


def product(op, V: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out = A V`` (counted) for a vector or an ``(n, k)`` block: the C kernel on a CPU CSR
    operator (one pass, k columns per matrix read), the operator's own ``product_into`` where it has
    one, else ``op.matmat_add`` into a zeroed ``out``."""
    csr = csr_of(op, V, out)
    if csr is None:
        into = getattr(op, "product_into", None)
        return op.matmat_add(V, out.zero_()) if into is None else into(V, out)
    op.count(1 if V.ndim == 1 else V.shape[-1])
    return spmm(csr, V, out)


def _largest_cache_bytes(default: int = 8 << 20) -> int:
    """Size of the CPU's largest cache (Linux sysfs; ``default`` where it cannot be read)."""
    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        try:
            text = entry.read_text().strip().upper()
            sizes.append(int(text.rstrip("KMG")) << {"K": 10, "M": 20, "G": 30}.get(text[-1:], 0))
        except (OSError, ValueError):
            continue
    return max(sizes, default=default)


WAVE_CACHE_BYTES = _largest_cache_bytes() // 4
"""The window a wavefront application may keep in cache: a quarter of the largest (shared) cache, the
rest left to other cores and data; 0 turns the wavefront off."""


@dataclass(frozen=True)
class Wave:
    """Layout of a one-sweep (matrix-powers) polynomial application: level k runs ``lag`` rows
    behind level k−1, ``block`` rows a pass, intermediate vectors in rings of ``cap`` rows."""

    lag: int
    block: int
    cap: int

    def args(self) -> tuple[int, int, int]:
        return self.cap, self.lag, self.block


def wave(op, csr: CSR, degree: int) -> Wave | None:
    """The :class:`Wave` for ``degree`` steps of ``op`` when its window — ``degree·lag`` rows of A and
    of three vectors, ``lag = bandwidth + block`` — fits :data:`WAVE_CACHE_BYTES`, else ``None``."""
    if degree < 2:
        return None
    key = (csr.col.data_ptr(), csr.col.shape[0])
    cached = op.__dict__.get("_bandwidth")
    if cached is None or cached[0] != key:
        cached = op._bandwidth = (key, csr.fn("bandwidth")(csr.n, csr.crow.data_ptr(), csr.col.data_ptr()))
    block = 256 * threads()
    lag = cached[1] + block
    item = csr.values.element_size()
    row_bytes = (item + csr.col.element_size()) * csr.col.shape[0] / max(csr.n, 1) + 3 * item
    if degree * lag * row_bytes > WAVE_CACHE_BYTES:
        return None
    return Wave(lag, block, 1 << (3 * lag).bit_length())


def ptr(t: torch.Tensor | None) -> int | None:
    """Data pointer of a tensor (``None`` stays ``None``: a NULL argument)."""
    return None if t is None else t.data_ptr()


def lanczos_step(csr: CSR, qt: torch.Tensor, qprev: torch.Tensor, beta: float, w: torch.Tensor, inv: float = 1.0,
                 q_out: torch.Tensor | None = None) -> tuple[float, float]:
    """``q = inv·qt`` (written to ``q_out`` if given; it may be ``qprev``), ``w = A q − β q_prev``,
    ``α = qᵀw``, ``w −= α q`` in two passes; returns ``(α, ‖w‖)``."""
    alpha = csr.fn("lanczos_step")(csr.n, *csr.args(), inv, beta, qt.data_ptr(), qprev.data_ptr(), ptr(q_out),
                                   w.data_ptr(), threads())
    q = qt if q_out is None else q_out
    norm2 = vector_fn("axpy_norm", w.dtype)(csr.n, alpha, q.data_ptr(), w.data_ptr(), threads())
    return alpha, norm2 ** 0.5
