"""What the ``eigfilter`` evaluation writes: the summary (matvec ratios to ChFSI, correctness pass
rates), ``results.md`` and the figures of one (matrix, k) — residual histories and ``|p(λ)|`` of
the first filters, built from the same probe and interval as :func:`autospec.eigsh`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from autospec.eigen.api import FILTERS, filtered_subspace_iteration
from autospec.eigen.filters import FilterContext, chebyshev_filter
from autospec.eigen.subspace import DEFAULT_PROBE_STEPS
from autospec.evaluation.runner import write_markdown_file, describe, markdown_table, median, safe_filename, save_figure, warn

REFERENCE = "chfsi"  # the matvec ratios are taken against this method
RATIO_SLACK = 1.1  # "worse" = more than 10 % more matvecs than the reference
CORRECT_FACTOR = 10.0  # correct: converged and eig_error <= CORRECT_FACTOR·tol
KAPPA_MAX = 1e8  # the correctness target covers kappa <= this


def summarize(rows: Sequence, tol: float, reference: str = REFERENCE) -> dict:
    """Two tables, per k and pooled (``k="all"``):

    * ``ratios``: for every method but the reference, over the (matrix, k) where both converged by
      their own iteration (not by the filters' switch to the whole-space Rayleigh–Ritz): ``cases``,
      ``median`` of ``matvecs / reference matvecs`` and ``worse`` = share with ratio > 1.1;
    * ``correctness``: per method over the runs with a dense reference and ``kappa <= 1e8``:
      ``cases``, ``converged``, ``correct`` (converged and ``eig_error <= 10·tol``), ``wrong``
      (converged but not correct), ``pass_rate`` = correct / cases.
    """
    ks = sorted({r.k for r in rows})
    methods = list(dict.fromkeys(r.method for r in rows))
    cells = {(r.matrix, r.k, r.method): r for r in rows}
    groups = [*ks, "all"] if len(ks) > 1 else ks
    ratios, correctness = [], []
    for k in groups:
        for method in methods:
            selected = [r for r in rows if r.method == method and k in ("all", r.k)]
            if method != reference:
                pairs = [(r, cells.get((r.matrix, r.k, reference))) for r in selected]
                values = [r.matvecs / c.matvecs for r, c in pairs
                          if r.iterated and c is not None and c.iterated]
                ratios.append({"k": k, "method": method, "cases": len(values), "median": median(values),
                               "worse": float(np.mean([v > RATIO_SLACK for v in values])) if values else math.nan})
            graded = [r for r in selected if r.kappa is not None and r.kappa <= KAPPA_MAX]
            correct = sum(r.correct(tol) for r in graded)
            converged = sum(r.converged for r in graded)
            correctness.append({"k": k, "method": method, "cases": len(graded), "converged": converged,
                                "correct": correct, "wrong": converged - correct,
                                "pass_rate": correct / len(graded) if graded else math.nan})
    return {"reference": reference, "ratios": ratios, "correctness": correctness}


def summary_tables(summary: Mapping) -> str:
    """The two summary tables of :func:`summarize` as Markdown."""
    ref = summary["reference"]
    ratios = markdown_table(summary["ratios"], {"k": "k", "method": "method", "cases": "both converged",
                                        "median": f"median matvecs / {ref}", "worse": f"share > {RATIO_SLACK:g}× {ref}"},
                    percent=["worse"])
    correct = markdown_table(summary["correctness"], {"k": "k", "method": "method", "cases": f"cases (n ≤ exact, κ ≤ {KAPPA_MAX:.0e})",
                                              "converged": "converged", "correct": "correct",
                                              "wrong": "converged but wrong", "pass_rate": "pass rate"},
                     percent=["pass_rate"])
    return f"{ratios}\n\n{correct}"


def _cell(r: object | None, tol: float) -> str:
    if r is None:
        return ""
    if r.error:
        return "—" if r.error.startswith("skipped") else "✗"
    wrong = r.converged and r.eig_error is not None and not r.correct(tol)
    return f"{r.matvecs}" + ("" if r.converged else "*") + ("!" if wrong else "")


def write_markdown(rows: Sequence, summary: Mapping, path: str | Path, meta: Mapping) -> Path:
    """``results.md``: per k, matvecs per matrix × method; the summary tables; the errors."""
    methods = list(dict.fromkeys(r.method for r in rows))
    tol = meta["tol"]
    budget = f"{meta['budget_per_row']}·n" + (f" (at most {meta['max_matvecs']})" if meta["max_matvecs"] else "")
    legend = (f"{meta['which']} eigenpairs, tol {tol:g} on max_j ‖Av_j − θ_j v_j‖/‖A‖_est, filter degree "
              f"{meta['degree']}, probe {meta['probe_steps']} Lanczos steps, budget {budget} matvecs, seed "
              f"{meta['seed']}, engine `{meta['engine']}`. Entries: matvecs (probe included); `*` not converged "
              f"(budget or stagnation; best pairs kept), `!` converged but eig_error > {CORRECT_FACTOR:g}·tol against "
              f"dense eigvalsh (n ≤ {meta['exact_max_n']}), `✗` failed, `—` skipped (see Errors and `results.csv`).")
    lines = ["# autospec evaluation: eigfilter", "", legend]
    for k in sorted({r.k for r in rows}):
        table: dict[str, dict] = {}
        for r in rows:
            if r.k == k:
                table.setdefault(r.matrix, {})[r.method] = r
        lines += ["", f"## k = {k}", "", "| matrix | n | κ | " + " | ".join(methods) + " |",
                  "|---|---:|---:|" + "---:|" * len(methods)]
        for name, cells in table.items():
            first = next(iter(cells.values()))
            kappa = "" if first.kappa is None else f"{first.kappa:.1e}" + ("" if first.definite == "positive" else
                                                                          f" ({first.definite})")
            lines.append(f"| {name} | {first.n if first.n is not None else ''} | {kappa} | "
                         + " | ".join(_cell(cells.get(m), tol) for m in methods) + " |")
    lines += ["", "## Summary", "", summary_tables(summary)]
    errors = (f"- {r.matrix} (k={r.k}, {r.method}): {r.error}" for r in rows if r.error)
    return write_markdown_file(lines, errors, path)


# -- entry point for evaluate.py ---------------------------------------------------------------------------


def _polynomial_values(poly, lam: np.ndarray) -> np.ndarray:
    """``|p(λ)|`` of any filter polynomial, applied to the diagonal operator ``diag(λ)``."""
    diag = torch.from_numpy(lam)[:, None]
    return poly.apply(lambda Z: diag * Z, torch.ones(len(lam), 1, dtype=torch.float64))[:, 0].abs().numpy()


class _FirstContext(Exception):
    """Carries the first :class:`FilterContext` out of the subspace iteration."""


class _CaptureFilter:
    """A filter that stops the iteration at its first call, handing over the context."""

    degree = 0  # never applied
    escalates = False

    def __call__(self, ctx: FilterContext):
        raise _FirstContext(ctx)


def first_context(A, k: int, which: str = "SA", probe_steps: int = DEFAULT_PROBE_STEPS, seed: int = 0) -> FilterContext:
    """The context of the first outer iteration of :func:`autospec.eigsh` (probe, interval, Ritz
    values), exactly as a filter method sees it (costs the probe only)."""
    try:
        filtered_subspace_iteration(A, k, _CaptureFilter(), which=which, probe_steps=probe_steps, rng=seed,
                                    whole_space=False)
    except _FirstContext as stop:
        return stop.args[0]
    raise RuntimeError("the subspace iteration never called its filter")


def filter_curves(A, k: int, s, ref, case) -> None:
    """``|p(λ)|`` of the Chebyshev and (when available) learned filters for the first outer
    iteration, built from the same probe, interval and Ritz values as :func:`autospec.eigsh`."""
    ctx = first_context(A, k, s.which, s.probe_steps, s.seed)
    if ref is not None:
        lam = ref.eigenvalues if s.which == "SA" else -ref.eigenvalues[::-1]
    else:
        lam = ctx.ritz.cpu().double().numpy()
    case.points, case.exact = np.ascontiguousarray(lam), ref is not None
    case.interval = (float(ctx.lowest), float(ctx.lower), float(ctx.upper))
    filters = {f"chfsi (d={s.degree})": chebyshev_filter(s.degree)}
    if "autospec" in s.methods:
        try:
            learned = FILTERS["autospec"](s.degree, s.engine)
            filters[f"autospec (d={learned.degree})"] = learned
        except Exception:  # not available (yet): Chebyshev alone
            pass
    for label, filt in filters.items():
        try:
            case.filters[label] = _polynomial_values(filt(ctx), case.points)
        except Exception as err:
            warn(f"warning: filter {label} of {case.matrix} failed: {describe(err)}")


def case_figures(A, k: int, s, ref, case, out: Path) -> list[Path]:
    """The figures of one (matrix, k): the residual histories and the first filters over the spectrum."""
    try:
        if FILTERS.keys() & set(s.methods):
            filter_curves(A, k, s, ref, case)
        return plot_case(case, out)
    except Exception as err:  # a plot is not worth losing the run for
        warn(f"warning: plots of {case.matrix} (k={k}) failed: {describe(err)}")
        return []


COLORS = {"autospec": "tab:red", "chfsi": "tab:blue", "lanczos": "black", "lobpcg": "tab:green", "rsi": "tab:orange"}


def plot_case(case, out: Path) -> list[Path]:
    """``<matrix>-k<k>-residuals.png`` (worst wanted residual vs matvecs, every method) and
    ``<matrix>-k<k>-filter.png`` (``|p(λ)|`` of the first filters over the spectrum, log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    stem = f"{safe_filename(case.matrix)}-k{case.k}"
    if case.histories:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.92)
        for method, (matvecs, res) in case.histories.items():
            style = {"marker": "o"} if len(res) == 1 else {}
            ax.semilogy(matvecs, np.maximum(res, 1e-300), label=method, color=COLORS.get(method, "grey"), lw=1.2,
                        **style)
        ax.axhline(case.tol, color="grey", lw=0.5, ls="--")
        ax.set(xlabel="matvecs (probe included)", ylabel="max_j ‖Av_j − θ_j v_j‖ / ‖A‖_est",
               title=f"{case.matrix}: {case.k} lowest eigenpairs")
        ax.legend(fontsize=8)
        written.append(save_figure(fig, out / f"{stem}-residuals.png"))
    if case.filters and case.points is not None:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.92)
        for label, values in case.filters.items():
            ax.semilogy(case.points, np.maximum(values, 1e-300), ".-", ms=3, lw=0.6, label=label,
                        color=COLORS.get(label.split()[0], "grey"))
        lowest, a, b = case.interval
        for x, name in ((lowest, "a_L"), (a, "a"), (b, "b")):
            ax.axvline(x, color="grey", lw=0.5, ls=":")
            ax.annotate(name, (x, 1), fontsize=7, color="grey")
        if case.points.min() > 0:
            ax.set_xscale("log")
        else:  # indefinite: logarithmic on both sides of a linear band around 0
            ax.set_xscale("symlog", linthresh=1e-3 * float(np.abs(case.points).max()))
        where = "exact eigenvalues" if case.exact else "probe Ritz values"
        ax.set(xlabel=f"λ ({where})", ylabel="|p(λ)|", title=f"{case.matrix}: first filter, k = {case.k}")
        ax.legend(fontsize=8)
        written.append(save_figure(fig, out / f"{stem}-filter.png"))
    return written
