"""The SuiteSparse downloader against a real HTTP server on 127.0.0.1 (no network, no mocks of urllib)."""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import autospec.matrices.download as dl
from autospec.matrices.download import (
    PAPER_MATRICES,
    DownloadError,
    default_cache_dir,
    download,
    fetch_suite,
    split_name,
)
from autospec.errors import AutospecError, InputTypeError, InputValueError
from autospec.matrices.io import read_matrix

REPO = Path(__file__).resolve().parents[1]
MATRIX = REPO / "data" / "suitesparse" / "unit" / "bcsstk01.mtx"
SERVED = "/files/MM/HB/bcsstk01.tar.gz"  # where the file lives; /MM/... redirects here like sparse.tamu.edu
STALL_SECONDS = 1.5


def _archive() -> bytes:
    """A SuiteSparse-style archive: Name/Name.mtx plus an incompressible auxiliary member (multi-chunk)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member, data in [("bcsstk01/bcsstk01.mtx", MATRIX.read_bytes()), ("bcsstk01/aux.bin", os.urandom(200_000))]:
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # http.server calls do_<METHOD>
        self.server.hits[self.path] += 1
        kind, payload = self.server.routes.get(self.path, ("missing", b""))
        if kind == "redirect":
            self.send_response(302)
            self.send_header("Location", payload.decode())
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif kind == "missing":
            self.send_error(404, "Not Found")
        elif kind == "drip":  # a slow-drip server: a few bytes at a time, never idle long enough to time out
            self.send_response(200)
            self.send_header("Content-Type", "application/x-gzip")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            for i in range(0, len(payload), 64):
                try:
                    self.wfile.write(payload[i:i + 64])
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.02)
        else:
            self.send_response(200)
            self.send_header("Content-Type", "text/html" if kind == "html" else "application/x-gzip")
            self.send_header("Content-Length", str(len(payload)))  # the full size, whatever is sent
            self.end_headers()
            if kind in ("file", "html"):
                self.wfile.write(payload)
                return
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            if kind == "stall":
                time.sleep(STALL_SECONDS)
            self.close_connection = True  # "truncated": close with the rest of the body unsent

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass


class _Server(ThreadingHTTPServer):
    routes: dict[str, tuple[str, bytes]]
    hits: collections.Counter


@dataclass
class LocalSite:
    base: str
    routes: dict[str, tuple[str, bytes]]
    hits: collections.Counter
    body: bytes
    template: str = field(init=False)

    def __post_init__(self) -> None:
        self.template = self.base + "/MM/{group}/{name}.tar.gz"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")


@pytest.fixture
def site() -> Iterator[LocalSite]:
    body = _archive()
    server = _Server(("127.0.0.1", 0), _Handler)
    server.routes = {"/MM/HB/bcsstk01.tar.gz": ("redirect", SERVED.encode()), SERVED: ("file", body)}
    server.hits = collections.Counter()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield LocalSite(f"http://127.0.0.1:{server.server_address[1]}", server.routes, server.hits, body)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _closed_port_template() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/MM/{{group}}/{{name}}.tar.gz"


def _files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def test_download_writes_file_and_manifest(site: LocalSite, tmp_path: Path) -> None:
    path = download("HB/bcsstk01", tmp_path, url_template=site.base + "/files/MM/{group}/{name}.tar.gz", progress=False)
    assert path == tmp_path / "HB" / "bcsstk01.tar.gz"
    assert path.read_bytes() == site.body
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest == {
        "HB/bcsstk01": {
            "url": site.base + SERVED,
            "sha256": hashlib.sha256(site.body).hexdigest(),
            "bytes": len(site.body),
        }
    }
    assert _files(tmp_path) == ["HB/bcsstk01.tar.gz", "manifest.json"]  # no temporary files left
    assert read_matrix(path).shape == (48, 48)


def test_redirect_is_followed_with_progress_bar(site: LocalSite, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = download("HB/bcsstk01", tmp_path, url_template=site.template, progress=True)
    assert site.hits["/MM/HB/bcsstk01.tar.gz"] == 1 and site.hits[SERVED] == 1
    assert path.read_bytes() == site.body
    assert "HB/bcsstk01" in capsys.readouterr().err


def test_cached_file_is_reused_without_a_request(site: LocalSite, tmp_path: Path) -> None:
    first = download("HB/bcsstk01", tmp_path, url_template=site.template, progress=False)
    second = download("HB/bcsstk01", tmp_path, url_template=site.template, progress=False)
    assert first == second and site.hits[SERVED] == 1


def test_corrupted_cache_is_downloaded_again(site: LocalSite, tmp_path: Path) -> None:
    path = download("HB/bcsstk01", tmp_path, url_template=site.template, progress=False)
    path.write_bytes(b"bit rot")
    with pytest.warns(UserWarning, match="does not match the sha256"):
        assert download("HB/bcsstk01", tmp_path, url_template=site.template, progress=False) == path
    assert site.hits[SERVED] == 2 and path.read_bytes() == site.body


def test_interrupted_download_leaves_no_file(site: LocalSite, tmp_path: Path) -> None:
    site.routes[SERVED] = ("truncated", site.body)
    with pytest.raises(DownloadError, match="cut off after") as info:
        download("HB/bcsstk01", tmp_path, url_template=site.template, progress=False)
    assert isinstance(info.value, OSError) and isinstance(info.value, AutospecError)
    assert str(tmp_path / "HB" / "bcsstk01.tar.gz") in str(info.value)
    assert _files(tmp_path) == []


def test_stalled_download_times_out_and_leaves_no_file(site: LocalSite, tmp_path: Path) -> None:
    site.routes[SERVED] = ("stall", site.body)
    with pytest.raises(DownloadError, match="timed out"):
        download("HB/bcsstk01", tmp_path, url_template=site.template, progress=False, timeout=0.3)
    assert _files(tmp_path) == []


def test_interrupt_by_user_leaves_no_file(site: LocalSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class CtrlC(dl.tqdm):  # the user presses Ctrl-C while the first chunk is being written
        def update(self, n: float | None = 1) -> bool | None:
            raise KeyboardInterrupt

    monkeypatch.setattr(dl, "tqdm", CtrlC)
    with pytest.raises(KeyboardInterrupt):
        download("HB/bcsstk01", tmp_path, url_template=site.template, progress=False)
    assert _files(tmp_path) == []


def test_offline_error_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as info:
        download("HB/bcsstk01", tmp_path, url_template=_closed_port_template(), progress=False, timeout=5)
    message = str(info.value)
    assert "could not download HB/bcsstk01" in message and "offline" in message
    assert str(tmp_path / "HB" / "bcsstk01.tar.gz") in message and "AUTOSPEC_DATA_DIR" in message
    assert _files(tmp_path) == []


def test_http_error_names_the_matrix(site: LocalSite, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"HTTP 404.*sparse\.tamu\.edu/HB/nonexistent"):
        download("HB/nonexistent", tmp_path, url_template=site.template, progress=False)
    assert _files(tmp_path) == []


def test_non_archive_response_is_rejected(site: LocalSite, tmp_path: Path) -> None:
    site.routes[SERVED] = ("html", b"<html>maintenance</html>")
    with pytest.raises(DownloadError, match="did not send a gzip archive"):
        download("HB/bcsstk01", tmp_path, url_template=site.template, progress=False)
    assert _files(tmp_path) == []


def test_file_placed_by_hand_is_used_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _archive()
    (tmp_path / "HB").mkdir()
    (tmp_path / "HB" / "bcsstk01.tar.gz").write_bytes(body)
    monkeypatch.setenv("AUTOSPEC_DATA_DIR", str(tmp_path))  # cache_dir=None resolves at call time
    path = download("HB/bcsstk01", url_template=_closed_port_template(), progress=False)
    assert path == tmp_path / "HB" / "bcsstk01.tar.gz"
    entry = json.loads((tmp_path / "manifest.json").read_text())["HB/bcsstk01"]
    assert entry["sha256"] == hashlib.sha256(body).hexdigest() and entry["bytes"] == len(body)


def test_fetch_suite_keeps_going_after_a_failure(site: LocalSite, tmp_path: Path) -> None:
    paths, errors = fetch_suite(["HB/nonexistent", "HB/bcsstk01", "not a name"], tmp_path, site.template, progress=False)
    assert paths == [tmp_path / "HB" / "bcsstk01.tar.gz"]
    assert set(errors) == {"HB/nonexistent", "not a name"}
    assert isinstance(errors["HB/nonexistent"], DownloadError)
    assert isinstance(errors["not a name"], InputValueError)


def test_names_and_registry() -> None:
    assert split_name("HB/nos5") == split_name("nos5") == ("HB", "nos5")
    assert split_name("Schenk_IBMNA/c-18") == ("Schenk_IBMNA", "c-18")
    assert len(PAPER_MATRICES) == 10 and PAPER_MATRICES["thermal1"] == "Schmid/thermal1"
    assert all(split_name(key) == tuple(value.split("/")) for key, value in PAPER_MATRICES.items())
    for bad in ["nos", "", "HB/", "../etc/passwd", "HB/../x", "a/b/c", "HB/nos 5"]:
        with pytest.raises(InputValueError, match="Group/Name"):
            split_name(bad)
    with pytest.raises(InputTypeError):
        split_name(5)  # type: ignore[arg-type]


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUTOSPEC_DATA_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("AUTOSPEC_DATA_DIR")
    assert default_cache_dir() == REPO / "data" / "cache"  # the tests run from a checkout


def test_orphaned_part_file_of_a_killed_download_is_removed(site: LocalSite, tmp_path: Path) -> None:
    import fcntl

    (tmp_path / "HB").mkdir()
    orphan = tmp_path / "HB" / ".bcsstk01.tar.gz.k1ll3d.part"  # what a SIGKILLed download leaves
    orphan.write_bytes(b"\x1f\x8bhalf")
    live = tmp_path / "HB" / ".bcsstk01.tar.gz.l1v3.part"  # another process still writing: locked
    live.write_bytes(b"\x1f\x8b")
    with open(live, "rb+") as writer:
        fcntl.flock(writer.fileno(), fcntl.LOCK_EX)
        download("HB/bcsstk01", tmp_path, url_template=site.template, progress=False)
        assert not orphan.exists() and live.exists()
    assert _files(tmp_path) == ["HB/.bcsstk01.tar.gz.l1v3.part", "HB/bcsstk01.tar.gz", "manifest.json"]


def test_slow_drip_download_hits_the_total_time_limit(site: LocalSite, tmp_path: Path) -> None:
    site.routes[SERVED] = ("drip", site.body)  # ~64 bytes every 20 ms: each read is quick, the whole is not
    start = time.monotonic()
    with pytest.raises(DownloadError, match="longer than max_seconds = 0.5 s.*too slow"):
        download("HB/bcsstk01", tmp_path, url_template=site.template, progress=False, timeout=5, max_seconds=0.5)
    assert time.monotonic() - start < 3 and _files(tmp_path) == []


def test_html_answer_says_it_was_a_web_page(site: LocalSite, tmp_path: Path) -> None:
    site.routes[SERVED] = ("html", b"<html>please log in</html>")
    with pytest.raises(DownloadError, match="web page") as info:
        download("HB/bcsstk01", tmp_path, url_template=site.template, progress=False)
    assert "interrupted" not in str(info.value) and "<html>please log in" in str(info.value)


def test_pinned_checksum_is_checked_on_download(site: LocalSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DownloadError, match="not the pinned"):
        download("HB/bcsstk01", tmp_path, url_template=site.template, progress=False, sha256="0" * 64)
    assert _files(tmp_path) == []
    monkeypatch.setitem(dl.PINNED_SHA256, "HB/bcsstk01", hashlib.sha256(site.body).hexdigest())
    assert download("HB/bcsstk01", tmp_path, url_template=site.template, progress=False).read_bytes() == site.body
