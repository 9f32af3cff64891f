"""Helpers shared by the benchmark scripts: where the shared matrices are, table printing."""

from __future__ import annotations

import csv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "suitesparse"


def shared_index(directory: Path = SHARED) -> list[dict]:
    """Rows of the shared collection's ``index.csv`` (fails clearly when it is absent)."""
    index = Path(directory) / "index.csv"
    if not index.is_file():
        raise SystemExit(f"no matrix index at {index}: pass --matrix-dir pointing at shared/data/suitesparse")
    with open(index) as f:
        return list(csv.DictReader(f))


def spd_matrices(directory: Path = SHARED, max_n: int | None = None, min_n: int = 0) -> list[tuple[str, Path]]:
    """``(name, path)`` of the SPD matrices in the shared collection, smallest first."""
    rows = [r for r in shared_index(directory) if r["spd"] == "True"]
    rows = [r for r in rows if min_n <= int(r["n"]) and (max_n is None or int(r["n"]) <= max_n)]
    return [(r["name"], Path(directory) / r["file"]) for r in sorted(rows, key=lambda r: int(r["n"]))]


def error_path_matrices(directory: Path = SHARED) -> list[tuple[str, Path, str]]:
    """``(name, path, why)`` of the non-SPD matrices kept for error paths."""
    rows = [r for r in shared_index(directory) if r["role"] == "error-path"]
    return [(r["name"], Path(directory) / r["file"], r["banner"]) for r in rows]


def print_table(rows: list[dict], columns: list[str]) -> str:
    """Render rows as a Markdown table (returned and printed)."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.3e}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    text = "\n".join(lines)
    print(text, flush=True)
    return text
