"""Matrix Market / SuiteSparse archive reading on the shipped matrices and on broken files."""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from autospec.errors import AutospecError, InputValueError
from autospec.matrices.io import (
    MatrixFile,
    MatrixNotFoundError,
    list_matrices,
    load_matrix,
    matrix_name,
    read_matrix,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "suitesparse"
UNIT = DATA / "unit"

# name: (n, nnz after symmetric expansion, field, symmetry, SPD)
SHIPPED = {
    "494_bus": (494, 1666, "real", "symmetric", True),
    "662_bus": (662, 2474, "real", "symmetric", True),
    "nos6": (675, 3255, "real", "symmetric", True),
    "gr_30_30": (900, 7744, "integer", "symmetric", True),
    "bcsstk08": (1074, 12960, "real", "symmetric", True),
    "1138_bus": (1138, 4054, "real", "symmetric", True),
}
UNIT_SHIPPED = {
    "bcsstk01": (48, 400, "real", "symmetric", True),
    "nos4": (100, 594, "real", "symmetric", True),
    "bcspwr01": (39, 131, "pattern", "symmetric", False),
    "west0479": (479, 1910, "real", "general", False),
}


def _shipped_path(name: str) -> Path:
    return (DATA if name in SHIPPED else UNIT) / f"{name}.mtx"


def _write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name", [*SHIPPED, *UNIT_SHIPPED])
def test_shipped_matrices_read_with_header_info(name: str) -> None:
    n, nnz, field, symmetry, spd = {**SHIPPED, **UNIT_SHIPPED}[name]
    loaded = load_matrix(_shipped_path(name))
    assert isinstance(loaded, MatrixFile)
    assert (loaded.name, loaded.field, loaded.symmetry) == (name, field, symmetry)
    A = loaded.matrix
    assert isinstance(A, sp.csr_matrix) and A.dtype == np.float64
    assert A.shape == (n, n) and A.nnz == nnz
    dense = A.toarray()
    assert np.array_equal(dense, dense.T) == (symmetry == "symmetric")
    if spd:
        np.linalg.cholesky(dense)  # raises LinAlgError if not positive definite
    if field == "pattern":
        assert np.all(A.data == 1.0)


def test_shipped_evaluation_set_is_listed_and_documented() -> None:
    assert [p.name for p in list_matrices(DATA)] == sorted(
        (f"{name}.mtx" for name in SHIPPED), key=str.lower
    )
    readme = (DATA / "README.md").read_text()
    for name in [*SHIPPED, *UNIT_SHIPPED]:
        assert f"| {name} |" in readme


def test_read_matrix_is_the_matrix_of_load_matrix() -> None:
    path = _shipped_path("nos4")
    assert (read_matrix(path) != load_matrix(path).matrix).nnz == 0


def test_gzipped_file_reads_the_same(tmp_path: Path) -> None:
    source = _shipped_path("nos4")
    gz = tmp_path / "nos4.mtx.gz"
    gz.write_bytes(gzip.compress(source.read_bytes()))
    loaded = load_matrix(gz)
    assert loaded.name == "nos4" and loaded.symmetry == "symmetric"
    assert (loaded.matrix != read_matrix(source)).nnz == 0


def test_suitesparse_archive_picks_the_main_member(tmp_path: Path) -> None:
    archive = _write_tar(
        tmp_path / "nos4.tar.gz",
        {  # an auxiliary file first, as a right-hand side would be, to check selection by name
            "nos4/nos4_b.mtx": _shipped_path("bcsstk01").read_bytes(),
            "nos4/nos4.mtx": _shipped_path("nos4").read_bytes(),
        },
    )
    loaded = load_matrix(archive)
    assert loaded.name == "nos4" and loaded.path == archive
    assert (loaded.matrix != read_matrix(_shipped_path("nos4"))).nnz == 0


def test_archive_with_single_other_member_is_read(tmp_path: Path) -> None:
    archive = _write_tar(tmp_path / "renamed.tar.gz", {"x/bcsstk01.mtx": _shipped_path("bcsstk01").read_bytes()})
    assert read_matrix(archive).shape == (48, 48)


def test_archive_without_main_member_names_the_archive(tmp_path: Path) -> None:
    data = _shipped_path("bcsstk01").read_bytes()
    archive = _write_tar(tmp_path / "nos4.tar.gz", {"nos4/a.mtx": data, "nos4/b.mtx": data})
    with pytest.raises(InputValueError, match=r"nos4\.tar\.gz.*no member nos4\.mtx.*nos4/a\.mtx"):
        load_matrix(archive)


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("garbage.mtx", b"this is not a matrix\n"),
        ("empty.mtx", b""),
        ("truncated.mtx", b"%%MatrixMarket matrix coordinate real general\n3 3 2\n1 1 1.0\n"),
        ("bad_value.mtx", b"%%MatrixMarket matrix coordinate real general\n3 3 1\n1 1 abc\n"),
        ("out_of_range.mtx", b"%%MatrixMarket matrix coordinate real general\n3 3 1\n5 1 1.0\n"),
        ("corrupt.mtx.gz", b"\x1f\x8b\x08\x00 definitely not deflate data"),
        ("notgzip.tar.gz", b"plain text, not an archive"),
    ],
)
def test_malformed_file_raises_input_value_error_naming_it(tmp_path: Path, filename: str, content: bytes) -> None:
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(InputValueError, match=filename.replace(".", r"\.")):
        load_matrix(path)


def test_truncated_gzip_raises_input_value_error(tmp_path: Path) -> None:
    data = gzip.compress(_shipped_path("nos4").read_bytes())
    path = tmp_path / "nos4.mtx.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputValueError, match="nos4"):
        load_matrix(path)


def test_missing_file_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.mtx"
    with pytest.raises(MatrixNotFoundError, match=r"absent\.mtx") as info:
        read_matrix(path)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, AutospecError)
    assert info.value.filename == str(path)


def test_unsupported_suffix_and_directory_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "matrix.txt").write_text("1 2 3\n")
    with pytest.raises(InputValueError, match="unsupported matrix file type"):
        load_matrix(tmp_path / "matrix.txt")
    (tmp_path / "dir.mtx").mkdir()
    with pytest.raises(InputValueError, match="not a file"):
        load_matrix(tmp_path / "dir.mtx")


def test_matrix_name() -> None:
    assert matrix_name("a/HB/nos5.tar.gz") == "nos5"
    assert matrix_name("bcsstk16.mtx.gz") == "bcsstk16"
    assert matrix_name(Path("x") / "494_bus.MTX") == "494_bus"


def test_list_matrices_filters_and_sorts(tmp_path: Path) -> None:
    for name in ["b.mtx.gz", "C.tar.gz", "a.mtx", "notes.txt", ".hidden.mtx", ".c.tar.gz.abc.part"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.mtx").mkdir()
    (tmp_path / "sub.mtx" / "inner.mtx").write_bytes(b"")
    assert [p.name for p in list_matrices(tmp_path)] == ["a.mtx", "b.mtx.gz", "C.tar.gz"]
    shutil.copy(_shipped_path("nos4"), tmp_path / "a.mtx")
    assert read_matrix(list_matrices(str(tmp_path))[0]).shape == (100, 100)


def test_list_matrices_errors(tmp_path: Path) -> None:
    with pytest.raises(MatrixNotFoundError, match="matrix directory not found"):
        list_matrices(tmp_path / "nowhere")
    with pytest.raises(InputValueError, match="no matrix files"):
        list_matrices(tmp_path)
    (tmp_path / "file.mtx").write_bytes(b"")
    with pytest.raises(InputValueError, match="not a directory"):
        list_matrices(tmp_path / "file.mtx")
