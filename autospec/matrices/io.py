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
    _, _, _, _, field, symmetry = scipy.io.mminfo(path)
    matrix = sp.csr_matrix(scipy.io.mmread(path))
    matrix.sum_duplicates()
    dtype = np.complex128 if field == "complex" else np.float64
    return field, symmetry, matrix.astype(dtype, copy=False)


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
