"""What the ``matfun`` evaluation writes: the summary per function setting (median matmuls or
errors, paired ratios to the reference methods), ``results.md`` and one figure per case."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from autospec.evaluation.runner import median, safe_filename, save_figure, write_markdown_file


def _usable(row, spec) -> bool:
    """A row that counts in a comparison: it ran, and converged (tolerance settings) or has a finite error."""
    if row is None or row.error:
        return False
    return math.isfinite(row.rel_error) if spec.fixed else row.converged


def summarize(rows: Sequence, specs: Sequence) -> list[dict]:
    """Per setting and method, over the cases of that setting (κ <= ``max_kappa`` when set): cases,
    failed runs, converged fraction, median iters / matmuls / rel_error of the runs that worked,
    and ``ratios[ref] = (median paired ratio, pairs)`` — matmuls (tolerance settings) or rel_error
    (fixed-iteration settings and the action) of the method over the reference on the same case."""
    out = []
    for spec in specs:
        cells: dict[str, dict] = {}
        for r in rows:
            if r.spec == spec.key and (spec.max_kappa is None or r.kappa <= spec.max_kappa):
                cells.setdefault(r.case, {})[r.method] = r
        metric = "rel_error" if spec.fixed else "matmuls"
        for method in spec.methods:
            mine = [c[method] for c in cells.values() if method in c]
            ran = [r for r in mine if not r.error]
            good = [r for r in ran if _usable(r, spec)]
            ratios = {}
            for ref in spec.references:
                if ref == method:
                    continue
                pairs = [getattr(c[method], metric) / getattr(c[ref], metric) for c in cells.values()
                         if _usable(c.get(method), spec) and _usable(c.get(ref), spec)
                         and getattr(c[method], metric) > 0 and getattr(c[ref], metric) > 0]
                ratios[ref] = (median(pairs), len(pairs))
            out.append({"setting": spec.key, "function": spec.name, "dtype": spec.dtype, "stop": spec.stop,
                        "kappa": "all" if spec.max_kappa is None else f"<= {spec.max_kappa:g}", "method": method,
                        "metric": metric, "cases": len(mine), "failed": len(mine) - len(ran),
                        "converged": sum(r.converged for r in ran) / len(ran) if ran else math.nan,
                        "iters": median([r.iters for r in good]), "matmuls": median([r.matmuls for r in good]),
                        "rel_error": median([r.rel_error for r in good]), "ratios": ratios})
    return out


def _fmt(v, digits: int = 3) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.{digits}g}"
    return str(v)


def summary_table(summary: Sequence[dict]) -> str:
    """The summary as one Markdown table (``vs reference``: median paired ratio of ``metric``)."""
    header = ("| function | dtype | stop | κ | method | cases | failed | converged | median iters | median matmuls "
              "| median rel_error | vs reference (median ratio of metric, pairs) |")
    lines = [header, "|" + "---|" * 12]
    for s in summary:
        vs = ", ".join(f"{s['metric']} / {ref}: {_fmt(v)} ({k})" for ref, (v, k) in s["ratios"].items() if k)
        conv = "n/a" if math.isnan(s["converged"]) else f"{100 * s['converged']:.0f}%"
        lines.append(f"| {s['function']} | {s['dtype']} | {s['stop']} | {s['kappa']} | {s['method']} | {s['cases']} "
                     f"| {s['failed']} | {conv} | {_fmt(s['iters'])} | {_fmt(s['matmuls'])} "
                     f"| {_fmt(s['rel_error'], 2)} | {vs} |")
    return "\n".join(lines)


def _cell(r: object | None, spec) -> str:
    if r is None:
        return ""
    if r.error:
        return "✗"
    if spec.fixed:
        return f"{r.rel_error:.1e}"
    return f"{r.matmuls}" + ("" if r.converged else "*")


def write_markdown(rows: Sequence, summary: Sequence[dict], specs: Sequence, path: str | Path,
                   meta: Mapping) -> Path:
    """``results.md``: the summary, then per setting a table of cases × methods, then the errors."""
    legend = (f"{meta['cases']} cases, seed {meta['seed']}, engine {meta['engine']}. Tolerance settings: entries are "
              "matmuls (`*` not converged); fixed-iteration settings and the action (`apply`, matmuls = matvecs, "
              "probe included): entries are rel_error. `✗` failed (see Errors and `results.csv`). rel_error: "
              "inv_sqrt ‖XAX − I‖_F/√n, sqrt ‖X² − A‖_F/‖A‖_F, polar ‖QᵀQ − I‖_F/√n, apply ‖y − f(A)z‖/‖f(A)z‖.")
    lines = ["# autospec evaluation: matfun", "", legend, "", "## Summary", "", summary_table(summary)]
    for spec in specs:
        cells: dict[str, dict] = {}
        for r in rows:
            if r.spec == spec.key:
                cells.setdefault(r.case, {"": r})[r.method] = r
        if not cells:
            continue
        limit = f" (summary: κ <= {spec.max_kappa:g})" if spec.max_kappa is not None else ""
        lines += ["", f"## {spec.key}{limit}", "", "| case | n | κ | " + " | ".join(spec.methods) + " |",
                  "|---|---:|---:|" + "---:|" * len(spec.methods)]
        lines += [f"| {case} | {c[''].n} | {c[''].kappa:.2g} | " + " | ".join(_cell(c.get(m), spec) for m in spec.methods)
                  + " |" for case, c in cells.items()]
    errors = (f"- {r.case} ({r.function} {r.dtype}, {r.method}): {r.error}" if r.method else f"- {r.case}: {r.error}"
              for r in rows if r.error)
    return write_markdown_file(lines, errors, path)


def plot_case(rows: Sequence, specs: Sequence, out: Path) -> Path | None:
    """``<case>.png``: one panel per dense setting, the iteration residual of every method against
    matmuls (spread evenly over its iterations)."""
    panels = [(s, [r for r in rows if r.spec == s.key and len(r.history) > 1]) for s in specs if s.function != "apply"]
    panels = [(s, rs) for s, rs in panels if rs]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(m for spec in specs for m in spec.methods))  # one colour per method
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.14, top=0.84, wspace=0.25)
    for ax, (spec, rs) in zip(axes[0], panels):
        for r in rs:
            h = np.maximum(np.asarray(r.history, dtype=float), 1e-300)
            ax.semilogy(np.linspace(0, r.matmuls, h.size), h, marker=".", ms=3, lw=1.1, label=r.method,
                        color=f"C{methods.index(r.method) % 10}")
        ax.set_title(spec.key, fontsize=9)
        ax.set_xlabel("matmuls")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("iteration residual")
    fig.suptitle(rows[0].case, fontsize=9)
    return save_figure(fig, out / f"{safe_filename(rows[0].case)}.png")
