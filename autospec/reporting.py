"""What every evaluation (``linsys``, ``matfun``, ``eigfilter``) writes the same way: error texts,
medians, CSV rows, file names, figures, and the check of its config block."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autospec.errors import InputValueError


@dataclass
class Evaluation:
    """What an evaluation measured and wrote: its rows, summary, ``results.csv``, ``results.md``, plots."""

    rows: list
    summary: list[dict] | dict
    csv: Path
    markdown: Path
    plots: list[Path]


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
