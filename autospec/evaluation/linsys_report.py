"""What the ``linsys`` evaluation writes: the summary (autospec against the best Chebyshev, the
oracle and SciPy's CG), ``results.md`` and the figures of one (matrix, scaling)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from autospec.evaluation.runner import write_markdown_file, markdown_table, median, safe_filename, save_figure

CHEBYSHEV_BOUNDS = ("ritz", "petsc")
GRID_POINTS = 2000  # |1 − λp(λ)| plot grid when the spectrum is not computed


def summarize(rows: Sequence) -> list[dict]:
    """Summary per scaling (and ``all`` scalings pooled) and probe size, over the matrices where
    autospec and at least one of them converged:

    * ``vs_chebyshev``: median of ``autospec / best Chebyshev`` outer iterations (same probe);
    * ``le_chebyshev``: fraction of cases with autospec <= best Chebyshev;
    * ``vs_oracle``: median of ``autospec / oracle``;
    * ``overhead_autospec``, ``overhead_chebyshev``: median matvec overhead ``outer·(d+1)/cg``;
    * ``time_vs_scipy``: median wall time of autospec over SciPy's CG (both converged);
    * ``fallbacks``: autospec runs where the safeguard used Chebyshev.
    """
    table: dict[tuple[str, str], dict] = {}
    for r in rows:
        table.setdefault((r.matrix, r.scaling), {})[r.label] = r
    probes = sorted({r.probe_steps for r in rows if r.method == "autospec"})
    scalings = list(dict.fromkeys(r.scaling for r in rows))
    out = []
    for scaling in [*scalings, "all"] if len(scalings) > 1 else scalings:
        for m in probes:
            ratios, wins, vs_oracle, over_a, over_c, times, fallbacks = [], [], [], [], [], [], 0
            for (_, s), cells in table.items():
                auto = cells.get(f"autospec@{m}")
                if scaling not in ("all", s) or auto is None or auto.error:
                    continue
                fallbacks += auto.bounds == "fallback-ritz"
                cheb = [cells[f"chebyshev-{bd}@{m}"] for bd in CHEBYSHEV_BOUNDS if f"chebyshev-{bd}@{m}" in cells]
                best = min((c for c in cheb if not c.error), key=lambda c: c.iterations, default=None)
                if best is not None and not (math.isinf(auto.iterations) and math.isinf(best.iterations)):
                    ratios.append(auto.iterations / best.iterations)
                    wins.append(auto.iterations <= best.iterations)
                oracle = cells.get("oracle")
                if oracle is not None and not oracle.error and math.isfinite(oracle.iterations):
                    vs_oracle.append(auto.iterations / oracle.iterations)
                reference = cells.get("scipy_cg")
                if reference is not None and reference.converged and auto.converged and reference.seconds:
                    times.append(auto.seconds / reference.seconds)
                cg = cells.get("cg")
                if cg is not None and math.isfinite(cg.iterations) and cg.outer_iters > 0:
                    if math.isfinite(auto.iterations):
                        over_a.append(auto.outer_iters * (auto.degree + 1) / cg.outer_iters)
                    if best is not None and math.isfinite(best.iterations):
                        over_c.append(best.outer_iters * (best.degree + 1) / cg.outer_iters)
            out.append({"scaling": scaling, "probe_steps": m, "cases": len(ratios), "vs_chebyshev": median(ratios),
                        "le_chebyshev": float(np.mean(wins)) if wins else math.nan, "vs_oracle": median(vs_oracle),
                        "overhead_autospec": median(over_a), "overhead_chebyshev": median(over_c),
                        "time_vs_scipy": median(times), "fallbacks": fallbacks})
    return out


SUMMARY_COLUMNS = {
    "scaling": "scaling", "probe_steps": "probe", "cases": "cases",
    "vs_chebyshev": "median autospec / best Chebyshev", "le_chebyshev": "autospec <= best Chebyshev",
    "vs_oracle": "median autospec / oracle", "overhead_autospec": "matvec overhead autospec",
    "overhead_chebyshev": "matvec overhead best Chebyshev", "time_vs_scipy": "median wall autospec / SciPy CG",
    "fallbacks": "safeguard fallbacks",
}


def summary_table(summary: Sequence[dict]) -> str:
    """The summary as a Markdown table (fractions as percentages)."""
    return markdown_table(summary, SUMMARY_COLUMNS, percent=["le_chebyshev"])


def _cell(r: object | None) -> str:
    if r is None:
        return ""
    if r.error:
        return "✗"
    text = f"{r.outer_iters}" + ("" if r.converged else "*") + ("†" if r.bounds == "fallback-ritz" else "")
    return text + (f" (k={r.bounds[len('exact-k'):]})" if r.method == "oracle" else "")


def write_markdown(rows: Sequence, summary: Sequence[dict], path: str | Path, meta: Mapping) -> Path:
    """``results.md``: per scaling, outer iterations (rows: matrices; columns: method × probe), then
    the summary rows and the errors."""
    labels = list(dict.fromkeys(r.label for r in rows))
    legend = (f"Engine `{meta['engine']}`, degree {meta['degree']}, rtol {meta['rtol']:g}, maxiter {meta['maxiter']}, "
              f"seed {meta['seed']}; b Gaussian (seeded), x0 = 0. Entries: outer PCG iterations; `*` not converged "
              "within maxiter, `†` safeguard fell back to Chebyshev (ritz), `✗` failed (see Errors and "
              "`results.csv`). Chebyshev bounds: `ritz` = [θmin, 1.01(θmax + r)], `petsc` = [0.1, 1.1]·θmax; "
              "oracle = minimax polynomial on the exact spectrum with the k smallest eigenvalues left to CG.")
    lines = ["# autospec evaluation: linsys", "", legend]
    if meta.get("engine_error"):
        lines += ["", f"**{meta['engine_error']}**"]
    for scaling in dict.fromkeys(r.scaling for r in rows):
        cells: dict[str, dict] = {}
        sizes: dict[str, int | None] = {}
        for r in rows:
            if r.scaling == scaling:
                cells.setdefault(r.matrix, {})[r.label] = r
                sizes[r.matrix] = r.n
        lines += ["", f"## scaling: {scaling}", "", "| matrix | n | " + " | ".join(labels) + " |",
                  "|---|---:|" + "---:|" * len(labels)]
        lines += [f"| {m} | {sizes[m] if sizes[m] is not None else ''} | "
                  + " | ".join(_cell(c.get(label)) for label in labels) + " |" for m, c in cells.items()]
        part = [s for s in summary if s["scaling"] == scaling]
        if part:
            lines += ["", summary_table(part)]
    pooled = [s for s in summary if s["scaling"] == "all"]
    if pooled:
        lines += ["", "## all scalings", "", summary_table(pooled)]
    errors = (f"- {r.matrix} ({r.scaling}, {r.label}): {r.error}" for r in rows if r.error)
    return write_markdown_file(lines, errors, path)


# -- entry point for evaluate.py ------------------------------------------------------------------------


def plot_case(case, out: Path) -> list[Path]:
    """``<matrix>-<scaling>-residuals.png`` (all methods, against outer iterations and matvecs) and
    ``<matrix>-<scaling>-polynomial.png`` (``|1 − λ p(λ)|`` on the spectrum, or on a grid of the
    Chebyshev interval when n is too large for ``eigh``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    stem = f"{safe_filename(case.matrix)}-{case.scaling}"
    probes = sorted({label.partition("@")[2] for label in case.histories} - {""}, key=int)
    if case.histories:
        fig, (ax_it, ax_mv) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.92, wspace=0.05)
        for label, (matvecs, res) in case.histories.items():
            style = _style(label, probes)
            ax_it.semilogy(np.arange(res.size), np.maximum(res, 1e-300), label=label, **style)
            ax_mv.semilogy(matvecs, np.maximum(res, 1e-300), label=label, **style)
        ax_it.set(xlabel="outer iterations", ylabel="‖r‖ / ‖b‖", title=f"{case.matrix} (scaling: {case.scaling})")
        ax_mv.set(xlabel="matvecs (probe included)")
        ax_mv.legend(fontsize=7, loc="upper right")
        written.append(save_figure(fig, out / f"{stem}-residuals.png"))
    lam = case.eigenvalues
    if lam is None and case.interval is not None:
        a, b = case.interval
        lam = np.geomspace(a / 10, b, GRID_POINTS)
    if case.polynomials and lam is not None:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.92)
        # on the eigenvalues: markers only (a line would cross the spectral gaps, where no eigenvalue is)
        points = {"marker": ".", "ms": 3, "ls": "none"} if case.eigenvalues is not None else {}
        values = []
        for label, p in case.polynomials.items():
            r = np.maximum(np.abs(1 - lam * p(lam)), 1e-17)
            values.append(r)
            ax.loglog(lam, r, label=label, **{**_style(label, probes), **points})
        ax.set_ylim(*_polynomial_ylim(np.concatenate(values)))
        where = "eigenvalues" if case.eigenvalues is not None else "grid of the Chebyshev interval"
        ax.set(xlabel=f"λ ({where})", ylabel="|1 − λ p(λ)|", title=f"{case.matrix} (scaling: {case.scaling})")
        ax.axhline(1.0, color="grey", lw=0.5)
        ax.legend(fontsize=7)
        written.append(save_figure(fig, out / f"{stem}-polynomial.png"))
    return written


def _polynomial_ylim(values: np.ndarray) -> tuple[float, float]:
    """A y-range that shows the polynomials' levels, not the oracle's interpolation dips to 1e-14 (or a
    runaway polynomial's 1e30): from the 2nd percentile (at least 1e-8) to twice the largest value
    (between 1.5 and 1e3)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 1e-8, 2.0
    low = max(float(np.percentile(finite, 2)) / 2, 1e-8)
    high = min(max(2 * float(finite.max()), 1.5), 1e3)
    return min(low, high / 10), high


def _style(label: str, probes: list[str]) -> dict:
    """Colour by method, line style by probe size (solid for the smallest)."""
    colors = {"cg": "black", "chebyshev-ritz": "tab:blue", "chebyshev-petsc": "tab:green", "autospec": "tab:red",
              "oracle": "tab:purple"}
    base, _, probe = label.partition("@")
    styles = ("-", "--", ":", "-.")
    return {"color": colors.get(base, "grey"), "lw": 1.2, "ls": styles[probes.index(probe) % 4] if probe else "-"}
