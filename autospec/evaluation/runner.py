"""What every evaluation (``linsys``, ``matfun``, ``eigfilter``) writes the same way: error texts,
medians, CSV rows, file names, figures, and the check of its config block."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from autospec.errors import InputValueError
from autospec.matrices.download import PAPER_MATRICES, fetch_suite
from autospec.matrices.gallery import make_problem
from autospec.matrices.io import list_matrices, load_matrix, matrix_name


@dataclass
class Evaluation:
    """What an evaluation measured and wrote: its rows, summary, ``results.csv``, ``results.md``, plots."""

    rows: list
    summary: list[dict] | dict
    csv: Path
    markdown: Path
    plots: list[Path]


@dataclass(kw_only=True)
class Outcome:
    """What one run measured, in every evaluation's rows (keywords; ``None`` written empty): wall
    time, whether it converged, and why it failed or was skipped (``""``: it ran)."""

    seconds: float | None = None
    converged: bool = False
    error: str = ""


@dataclass
class MatrixRow(Outcome):
    """The columns every matrix evaluation's rows start with (``matrix, n, nnz, method``), and an
    iterative method's counts: outer iterations and products with A (keywords)."""

    matrix: str
    n: int | None
    nnz: int | None
    method: str
    outer_iters: int | None = field(default=None, kw_only=True)
    matvecs: int | None = field(default=None, kw_only=True)


def write_markdown_file(lines: list[str], errors: Iterable[str], path: str | Path) -> Path:
    """``results.md``: ``lines``, then an ``Errors`` section listing each distinct error line once."""
    errors = list(dict.fromkeys(errors))
    if errors:
        lines = [*lines, "", "## Errors", "", *errors]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)


def describe(err: BaseException) -> str:
    """``"Type: message"`` on one line (the ``error`` column of a failed row)."""
    return f"{type(err).__name__}: {err}".replace("\n", " ")


def median(values: Sequence[float]) -> float:
    """Median, NaN for no values."""
    return float(np.median(values)) if len(values) else math.nan


def csv_value(v):
    """``None`` → empty, floats with 6 significant digits, anything else as it is."""
    return "" if v is None else f"{v:.6g}" if isinstance(v, float) else v


def markdown_table(records: Iterable[Mapping], columns: Mapping[str, str], percent: Iterable[str] = ()) -> str:
    """``records`` as a Markdown table; ``columns`` maps record keys to headers. Floats get 3
    significant digits (``n/a`` for NaN), the keys in ``percent`` whole percentages."""
    percent = set(percent)

    def fmt(key, v):
        if isinstance(v, float):
            return "n/a" if math.isnan(v) else f"{100 * v:.0f}%" if key in percent else f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(fmt(c, r[c]) for c in columns) + " |" for r in records])


def write_rows(rows: Iterable, columns: Sequence[str], path: str | Path) -> Path:
    """``results.csv``: the header ``columns``, then each row's attributes of those names."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows([csv_value(getattr(r, c)) for c in columns] for r in rows)
    return Path(path)


def safe_filename(name: str) -> str:
    """``name`` with everything but letters, digits, ``_.-`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def save_figure(fig, path: Path) -> Path:
    """Write a matplotlib figure as PNG and close it."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def check_settings(section: str, cfg: Mapping | None, known: Sequence[str]) -> dict:
    """``cfg`` as a dict, or a clear error naming the settings not in ``known``."""
    cfg = dict(cfg or {})
    unknown = set(cfg) - set(known)
    if unknown:
        raise InputValueError(f"unknown {section} settings {sorted(unknown)}; known: {', '.join(known)}")
    return cfg


@dataclass
class Source:
    """A matrix to evaluate: ``load()`` returns it, or ``error`` says why it cannot be had."""

    name: str
    load: Callable[[], sp.spmatrix] | None = None
    error: str = ""


def matrix_sources(matrix_dir: str | Path | None = None, files: Iterable[str | Path] = (), suite=None,
                   gallery: Iterable[str] = (), progress: bool = True) -> list[Source]:
    """Matrices of a folder (``.mtx``/``.mtx.gz``/``.tar.gz``), explicit files, a SuiteSparse suite
    (``"paper"`` or ``Group/Name`` keys, downloaded into the cache; failures become sources with an
    error) and generated gallery problems (built lazily)."""
    paths = [*(list_matrices(matrix_dir) if matrix_dir else []), *(Path(f) for f in files or ())]
    sources = [Source(matrix_name(p), lambda p=p: load_matrix(p).matrix) for p in paths]
    if suite:
        names = list(PAPER_MATRICES) if suite == "paper" else [suite] if isinstance(suite, str) else list(suite)
        fetched, failed = fetch_suite(names, progress=progress)
        sources += [Source(matrix_name(p), lambda p=p: load_matrix(p).matrix) for p in fetched]
        sources += [Source(name.split("/")[-1], error=describe(err)) for name, err in failed.items()]
    sources += [Source(name, lambda name=name: make_problem(name)[1]) for name in gallery or ()]
    return sources


def select_sources(matrix_dir: str | Path | None = None, files: Iterable[str | Path] = (), suite=None,
                   gallery: Iterable[str] = (), *, matrices: Iterable[str] | None = None, shard: int = 0,
                   shards: int = 1, progress: bool = True) -> list[Source]:
    """:func:`matrix_sources`, kept to the names in ``matrices`` (None: all) and to one shard
    (:func:`shard_of`); an empty selection raises, saying what to set."""
    sources = matrix_sources(matrix_dir, files, suite, gallery, progress)
    if matrices is not None:
        keep = set(matrices)
        sources = [s for s in sources if s.name in keep]
    sources = shard_of(sources, shard, shards)
    if not sources:
        raise InputValueError("nothing to evaluate: set matrix_dir, files, suite or gallery"
                              + (" (and check `matrices`)" if matrices is not None else "")
                              + (f" (or fewer shards: shard {shard} of {shards} is empty)" if shards > 1 else ""))
    return sources


def shard_of(items: Sequence, shard: int = 0, shards: int = 1) -> list:
    """Items ``shard, shard + shards, ...`` (round-robin, so large and small matrices spread evenly)."""
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise InputValueError(f"eval.shards must be an integer >= 1, got {shards!r}")
    if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard < shards:
        raise InputValueError(f"eval.shard must be an integer in [0, {shards}), got {shard!r}")
    return list(items)[shard::shards]


def warn(message: str) -> None:
    """A warning line that does not break the progress bar."""
    tqdm.write(f"warning: {message}")


Drawing = tuple[str, Callable[[], list[Path]]]  # (what it shows, draw() -> the files written)


def run_cases(cases: Sequence, run_case: Callable[[object], tuple[list, list[Drawing]]],
              report: Callable[[list], None], *, plots: bool = True, progress: bool = True,
              desc: str = "cases", name: Callable[[object], str] = str) -> tuple[list, list[Path]]:
    """The loop every evaluation shares: ``run_case(case)`` gives the case's rows and its drawings;
    the figures are drawn when ``plots`` (a failed figure is a warning, never a lost run), and
    ``report(rows)`` rewrites ``results.csv``/``results.md`` after every case, so an interrupted
    run keeps its partial results. Returns all rows and the figures written."""
    rows: list = []
    pictures: list[Path] = []
    bar = tqdm(cases, desc=desc, unit="case", disable=not progress)
    for case in bar:
        bar.set_postfix_str(name(case))  # shown now, while the case runs
        case_rows, drawings = run_case(case)
        rows += case_rows
        for what, draw in drawings if plots else ():
            try:
                pictures += draw()
            except Exception as err:  # a plot is not worth losing the run for
                warn(f"plots of {what} failed: {describe(err)}")
        report(rows)
    bar.close()
    return rows, pictures
