"""Download SuiteSparse Matrix Collection archives into a local, checksummed cache.

``download("HB/nos5")`` fetches ``https://sparse.tamu.edu/MM/HB/nos5.tar.gz`` (the site answers
with a redirect, which is followed) to ``<cache>/HB/nos5.tar.gz``. Writes are atomic (temporary file
in the same directory, fsync, ``os.replace``): an interrupted download leaves no partial file, and
the ``.part`` file of a killed one (whose writer no longer holds its lock) is removed by the next
run. A download that takes longer than ``max_seconds`` in all (a server that drips bytes never
trips the per-read ``timeout``) is abandoned. The sha256 and size of every cached file are kept in
``<cache>/manifest.json`` and checked on reuse; ``sha256=`` (or :data:`PINNED_SHA256`, the pinned
digests of known matrices) is checked on download. A file put into the cache by hand (for offline
machines) is reused and recorded.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import http.client
import json
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from tqdm.auto import tqdm

from autospec.errors import AutospecError, InputTypeError, InputValueError

DEFAULT_URL_TEMPLATE = "https://sparse.tamu.edu/MM/{group}/{name}.tar.gz"
DATA_DIR_ENV = "AUTOSPEC_DATA_DIR"
MANIFEST_NAME = "manifest.json"

PAPER_MATRICES = {
    "thermal1": "Schmid/thermal1",
    "thermal2": "Schmid/thermal2",
    "nos5": "HB/nos5",
    "wathen100": "GHS_psdef/wathen100",
    "thermomech_TC": "Botonakis/thermomech_TC",
    "G2_circuit": "AMD/G2_circuit",
    "G3_circuit": "AMD/G3_circuit",
    "gyro_m": "Oberwolfach/gyro_m",
    "Dubcova2": "UTEP/Dubcova2",
    "Flan_1565": "Janna/Flan_1565",
}

PINNED_SHA256: dict[str, str] = {}  # "Group/Name" -> sha256 of the archive, checked on download when known
DEFAULT_MAX_SECONDS = 3600.0

_CHUNK = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b"
_NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


class DownloadError(AutospecError, OSError):
    """A matrix could not be downloaded (offline, host unreachable, HTTP error, cut-off transfer)."""


class _NotAnArchive(DownloadError):
    """The server answered with something else than a gzip archive (an HTML page, typically)."""


class _TooSlow(DownloadError):
    """The whole transfer took longer than ``max_seconds``."""


class _WrongDigest(DownloadError):
    """The archive's sha256 differs from the pinned one."""


def default_cache_dir() -> Path:
    """``$AUTOSPEC_DATA_DIR`` if set, else ``<repo>/data/cache`` in a checkout, else ``~/.cache/autospec``."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser()
    root = Path(__file__).resolve().parents[2]  # the checkout: <root>/autospec/matrices/download.py
    if (root / "pyproject.toml").is_file() and (root / "data").is_dir():
        return root / "data" / "cache"
    return Path.home() / ".cache" / "autospec"


DEFAULT_CACHE = default_cache_dir()  # as resolved at import; calls re-resolve when cache_dir is None


def split_name(group_name: str) -> tuple[str, str]:
    """``"HB/nos5"`` -> ``("HB", "nos5")``; a key of ``PAPER_MATRICES`` (``"nos5"``) also works."""
    if not isinstance(group_name, str):
        raise InputTypeError(f"matrix name must be a string like 'HB/nos5', got {type(group_name).__name__}")
    parts = PAPER_MATRICES.get(group_name, group_name).split("/")
    if len(parts) != 2 or not all(_NAME_PART.fullmatch(part) for part in parts):
        raise InputValueError(
            f"expected a SuiteSparse name 'Group/Name' (e.g. 'HB/nos5') or one of the paper's "
            f"matrices ({', '.join(PAPER_MATRICES)}), got {group_name!r}"
        )
    return parts[0], parts[1]


def download(
    group_name: str,
    cache_dir: str | os.PathLike | None = None,
    url_template: str = DEFAULT_URL_TEMPLATE,
    progress: bool = True,
    timeout: float = 60.0,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    sha256: str | None = None,
) -> Path:
    """Return the path of ``<cache_dir>/<Group>/<Name>.tar.gz``, downloading it if not cached.

    ``cache_dir`` defaults to :func:`default_cache_dir`; ``url_template`` is formatted with
    ``group`` and ``name`` and must serve a gzip archive. ``timeout`` bounds each read,
    ``max_seconds`` the whole transfer; ``sha256`` (default: :data:`PINNED_SHA256` for known
    matrices, else unchecked) must match the downloaded archive. Raises :class:`DownloadError` when
    the file is not cached and cannot be fetched.
    """
    group, name = split_name(group_name)
    key = f"{group}/{name}"
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    dest = cache / group / f"{name}.tar.gz"
    url = url_template.format(group=group, name=name)
    pinned = sha256 if sha256 is not None else PINNED_SHA256.get(key)
    _remove_orphans(dest)

    mismatch = ""
    if dest.is_file():
        digest, size = _sha256(dest)
        entry = _read_manifest(cache).get(key)
        if not isinstance(entry, dict):  # placed by hand: record it so later corruption is detected
            _record(cache, key, {"url": url, "sha256": digest, "bytes": size})
            return dest
        if entry.get("sha256") == digest:
            return dest
        mismatch = f"cached {dest} does not match the sha256 in {cache / MANIFEST_NAME}"
        warnings.warn(f"{mismatch}; downloading it again", stacklevel=2)

    try:
        request = urllib.request.Request(url, headers={"User-Agent": "autospec"})
    except ValueError as exc:
        raise InputValueError(f"url_template gives an invalid URL {url!r}: {exc}") from exc
    try:
        digest, size = _fetch(request, dest, key, progress, timeout, max_seconds, pinned)
    except (OSError, http.client.HTTPException) as exc:  # URLError, HTTPError, timeouts, resets
        raise DownloadError(_advice(key, url, dest, exc, mismatch)) from exc
    _record(cache, key, {"url": url, "sha256": digest, "bytes": size})
    return dest


def fetch_suite(
    names: Iterable[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
    url_template: str = DEFAULT_URL_TEMPLATE,
    progress: bool = True,
    timeout: float = 60.0,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> tuple[list[Path], dict[str, AutospecError]]:
    """Download each of ``names`` (default: all ``PAPER_MATRICES``); one failure does not stop the rest.

    Returns the paths obtained and a dict mapping each name that failed to its error.
    """
    if names is None:
        names = list(PAPER_MATRICES)
    elif isinstance(names, str):
        names = [names]
    paths: list[Path] = []
    errors: dict[str, AutospecError] = {}
    for name in names:
        try:
            paths.append(download(name, cache_dir, url_template, progress, timeout, max_seconds))
        except AutospecError as exc:
            errors[name] = exc
    return paths, errors


def _fetch(
    request: urllib.request.Request, dest: Path, key: str, progress: bool, timeout: float, max_seconds: float,
    pinned: str | None,
) -> tuple[str, int]:
    """Stream ``request`` into ``dest`` atomically; return its sha256 and size."""
    start = time.monotonic()
    with urllib.request.urlopen(request, timeout=timeout) as response:  # follows redirects
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        hasher = hashlib.sha256()
        received = 0
        with _atomic_file(dest) as out, tqdm(
            total=expected, unit="B", unit_scale=True, unit_divisor=1024, desc=key, disable=not progress
        ) as bar:
            while chunk := response.read1(_CHUNK):  # returns what has arrived: the clock is read often
                if received == 0 and not chunk.startswith(_GZIP_MAGIC):
                    content_type = response.headers.get("Content-Type", "unknown")
                    raise _NotAnArchive(f"the server did not send a gzip archive (Content-Type {content_type}; "
                                        f"it begins {chunk[:40]!r})")
                out.write(chunk)
                hasher.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
                if time.monotonic() - start > max_seconds:
                    raise _TooSlow(f"the transfer took longer than max_seconds = {max_seconds:g} s "
                                   f"({received} of {expected if expected is not None else '?'} bytes)")
            if received == 0 or (expected is not None and received != expected):
                raise DownloadError(
                    f"transfer cut off after {received} of {expected if expected is not None else '?'} bytes"
                )
            if pinned is not None and hasher.hexdigest() != pinned.lower():
                raise _WrongDigest(f"the archive's sha256 {hasher.hexdigest()[:12]}… is not the pinned {pinned[:12]}…")
    return hasher.hexdigest(), received


@contextlib.contextmanager
def _atomic_file(dest: Path) -> Iterator[BinaryIO]:
    """Write to a temporary file beside ``dest``; on success fsync and rename it, else delete it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            _lock(out)  # held while writing: _remove_orphans leaves a live download's file alone
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable; not possible on every platform
        dir_fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _lock(file) -> bool | None:
    """Take a non-blocking exclusive ``flock`` on ``file`` (released when it is closed): True, or
    False if another process holds it; None where ``fcntl`` is missing."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _remove_orphans(dest: Path) -> None:
    """Delete ``.part`` files of ``dest`` left by killed downloads: nobody holds their lock (without
    ``fcntl``: older than a day)."""
    if not dest.parent.is_dir():
        return
    for part in dest.parent.glob(f".{glob.escape(dest.name)}.*.part"):
        with contextlib.suppress(OSError), open(part, "rb") as f:
            locked = _lock(f)
            if locked or (locked is None and time.time() - part.stat().st_mtime > 86400):
                part.unlink()


def _sha256(path: Path) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


def _read_manifest(cache: Path) -> dict[str, dict]:
    path = cache / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        warnings.warn(f"ignoring unreadable download manifest {path} ({exc}); it will be rewritten", stacklevel=3)
        return {}
    if not isinstance(manifest, dict):
        warnings.warn(f"ignoring download manifest {path}: not a JSON object; it will be rewritten", stacklevel=3)
        return {}
    return manifest


def _record(cache: Path, key: str, entry: dict) -> None:
    manifest = _read_manifest(cache)
    manifest[key] = entry
    with _atomic_file(cache / MANIFEST_NAME) as out:
        out.write((json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def _advice(key: str, url: str, dest: Path, exc: BaseException, mismatch: str) -> str:
    if isinstance(exc, _NotAnArchive):
        reason, hint = str(exc), ("The server answered with a web page (HTML, a login/captive portal, proxy or error "
                                  "page) instead of the archive: open the URL in a browser to see it")
    elif isinstance(exc, _TooSlow):
        reason, hint = str(exc), "The server is too slow; try again later or raise max_seconds"
    elif isinstance(exc, _WrongDigest):
        reason, hint = str(exc), "The archive is not the one pinned for this matrix (changed upstream or tampered)"
    elif isinstance(exc, urllib.error.HTTPError):
        reason, hint = f"HTTP {exc.code} {exc.reason}", f"Check that {key} exists at https://sparse.tamu.edu/{key}"
    elif isinstance(exc, urllib.error.URLError):
        reason, hint = str(exc.reason), "This machine may be offline or the host unreachable"
    else:
        reason, hint = str(exc) or type(exc).__name__, "The transfer was interrupted; try again"
    return (
        f"could not download {key} from {url}: {reason}. {hint}. To work offline, download the "
        f"archive elsewhere and put it at {dest} (it is then checksummed and reused), or point "
        f"{DATA_DIR_ENV} at a cache directory that holds {key}.tar.gz."
        + (f" Note: {mismatch}." if mismatch else "")
    )
