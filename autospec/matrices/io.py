"""Read sparse matrices from Matrix Market files and SuiteSparse archives.

Supported: ``.mtx``, ``.mtx.gz`` and the collection's ``Group/Name.tar.gz`` archives (which hold
``Name/Name.mtx`` plus optional auxiliary files such as ``Name_b.mtx``). Parsing is
``scipy.io.mmread``'s; this module adds archive handling, file metadata and clear errors.
"""

from __future__ import annotations

import errno
import os
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import scipy.io
import scipy.sparse as sp

from autospec.errors import AutospecError, InputValueError

MATRIX_SUFFIXES = (".mtx", ".mtx.gz", ".tar.gz")
GZIP_MAX_RATIO = 1100  # deflate cannot expand a stream by more than ~1032x
BYTES_PER_ENTRY = 40  # COO while parsing (row, col int64 + value) and the CSR built from it

# What a corrupt or truncated file can raise inside mmread / gzip / tarfile.
_READ_ERRORS = (ValueError, OSError, EOFError, RuntimeError, IndexError, tarfile.TarError, zlib.error)


class MatrixNotFoundError(AutospecError, FileNotFoundError):
    """A matrix file or directory does not exist."""


@dataclass(frozen=True)
class MatrixFile:
    """A matrix read from disk, with the Matrix Market header's field and symmetry.

    ``matrix`` is float64 CSR for ``real``, ``integer`` and ``pattern`` files (pattern entries are
    1.0) and complex128 CSR for ``complex`` files; symmetric storage is expanded to the full matrix.
    """

    name: str
    path: Path
    matrix: sp.csr_matrix
    field: str  # "real", "integer", "complex" or "pattern", as stored in the file
    symmetry: str  # "general", "symmetric", "skew-symmetric" or "hermitian"


def matrix_suffix(path: str | os.PathLike) -> str | None:
    """The supported suffix of ``path`` (one of ``MATRIX_SUFFIXES``), or ``None``."""
    lower = Path(path).name.lower()
    for suffix in (".mtx.gz", ".tar.gz", ".mtx"):
        if lower.endswith(suffix):
            return suffix
    return None


def matrix_name(path: str | os.PathLike) -> str:
    """The matrix name of a file: ``.../HB/nos5.tar.gz`` -> ``nos5``, ``bcsstk01.mtx`` -> ``bcsstk01``."""
    path = Path(path)
    suffix = matrix_suffix(path)
    if suffix is None:
        raise InputValueError(
            f"{path}: unsupported matrix file type; expected one of {', '.join(MATRIX_SUFFIXES)}"
        )
    return path.name[: -len(suffix)]


def load_matrix(path: str | os.PathLike) -> MatrixFile:
    """Read a ``.mtx``, ``.mtx.gz`` or SuiteSparse ``.tar.gz`` file into a :class:`MatrixFile`."""
    path = Path(path)
    if not path.exists():
        raise MatrixNotFoundError(errno.ENOENT, "matrix file not found", str(path))
    if not path.is_file():
        raise InputValueError(f"{path} is not a file")
    name = matrix_name(path)
    try:
        if matrix_suffix(path) == ".tar.gz":
            with tempfile.TemporaryDirectory(prefix="autospec-") as tmp:
                field, symmetry, matrix = _read_mm(_extract_main_member(path, name, Path(tmp)))
        else:
            field, symmetry, matrix = _read_mm(path)
    except AutospecError:
        raise
    except _READ_ERRORS as exc:
        raise InputValueError(f"{path}: not a valid Matrix Market file or archive ({exc})") from exc
    return MatrixFile(name=name, path=path, matrix=matrix, field=field, symmetry=symmetry)


def read_matrix(path: str | os.PathLike) -> sp.csr_matrix:
    """Read a matrix file (see :func:`load_matrix`) and return only the CSR matrix."""
    return load_matrix(path).matrix


def list_matrices(directory: str | os.PathLike) -> list[Path]:
    """The ``.mtx``, ``.mtx.gz`` and ``.tar.gz`` files directly in ``directory``, sorted by name."""
    directory = Path(directory)
    if not directory.exists():
        raise MatrixNotFoundError(errno.ENOENT, "matrix directory not found", str(directory))
    if not directory.is_dir():
        raise InputValueError(f"{directory} is not a directory")
    paths = [
        p
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".") and matrix_suffix(p) is not None
    ]
    if not paths:
        raise InputValueError(
            f"no matrix files ({', '.join(MATRIX_SUFFIXES)}) in {directory}"
        )
    return sorted(paths, key=lambda p: (p.name.lower(), p.name))


def _read_mm(path: Path) -> tuple[str, str, sp.csr_matrix]:
    rows, cols, entries, layout, field, symmetry = scipy.io.mminfo(path)
    _check_claimed_size(path, rows, cols, entries, layout, symmetry)
    matrix = sp.csr_matrix(scipy.io.mmread(path))
    matrix.sum_duplicates()
    dtype = np.complex128 if field == "complex" else np.float64
    return field, symmetry, matrix.astype(dtype, copy=False)


def _check_claimed_size(path: Path, rows: int, cols: int, entries: int, layout: str, symmetry: str) -> None:
    """Refuse a header whose claims the file cannot hold or memory cannot take, before anything is
    allocated: every stored entry takes at least 2 bytes of text (4 in coordinate format), so a file
    of s bytes (decompressed: at most ``GZIP_MAX_RATIO``·s for ``.gz``) holds at most s/2 (s/4)
    entries; reading needs about ``BYTES_PER_ENTRY`` per entry (twice that for symmetric storage,
    which is expanded) plus 8 bytes per row."""
    text = path.stat().st_size * (GZIP_MAX_RATIO if path.name.lower().endswith(".gz") else 1)
    stored = rows * cols if layout == "array" else entries
    per_entry = 2 if layout == "array" else 4
    if min(rows, cols, entries) < 0 or stored * per_entry > text:
        raise InputValueError(f"{path}: the Matrix Market header claims a {rows} x {cols} matrix with {stored} stored "
                              f"entries, more than a file of {path.stat().st_size} bytes can hold (truncated or corrupt)")
    needed = stored * BYTES_PER_ENTRY * (2 if symmetry != "general" else 1) + 8 * (rows + 1)
    available = available_memory()
    if available is not None and needed > available:
        raise InputValueError(f"{path}: reading the {rows} x {cols} matrix with {stored} stored entries needs about "
                              f"{needed / 2**30:.1f} GiB, more than the {available / 2**30:.1f} GiB of memory available")


def available_memory() -> int | None:
    """Bytes of memory available now (Linux ``MemAvailable``; else the physical memory; None if unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _extract_main_member(archive: Path, name: str, directory: Path) -> Path:
    """Copy ``<name>.mtx`` (or the archive's only ``.mtx`` member) out of ``archive``."""
    with tarfile.open(archive, "r:gz") as tar:
        candidates = []
        for member in tar:  # streams headers: no second pass when Name.mtx comes first
            if member.isfile() and member.name.lower().endswith(".mtx"):
                if PurePosixPath(member.name).name == f"{name}.mtx":
                    return _copy_member(tar, member, directory / f"{name}.mtx")
                candidates.append(member)
        if len(candidates) == 1:
            return _copy_member(tar, candidates[0], directory / f"{name}.mtx")
    found = ", ".join(m.name for m in candidates) or "no .mtx files"
    raise InputValueError(f"{archive}: archive has no member {name}.mtx (found: {found})")


def _copy_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> Path:
    source = tar.extractfile(member)
    if source is None:
        raise InputValueError(f"{tar.name}: member {member.name} cannot be extracted")
    with source, open(dest, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
    return dest
