"""Evaluation of the ``eigfilter`` task: the k lowest eigenpairs with every :func:`autospec.eigsh` method.

For every real symmetric matrix (files of a folder, a downloaded suite, generated gallery problems;
SPD or indefinite) and every k, each method (``autospec`` = learned filter, ``chfsi``, ``lanczos``,
``lobpcg``, ``rsi``) computes the k smallest (``which="SA"``) eigenpairs to
``max_j ‖Av_j − θ_j v_j‖/‖A‖_est <= tol`` (the residual of :mod:`autospec.eigen`) within a matvec
budget of ``budget_per_row·n`` (capped at ``max_matvecs``). A run that does not converge is a row
with ``converged=False`` and the best pairs it saw; a run that raises is a row whose ``error`` says why.

For ``n <= exact_max_n`` dense ``eigvalsh`` gives ``eig_error = max_j |θ_j − λ_j| / ‖A‖₂``, ``kappa``
(``max|λ| / min|λ|``) and ``definite``; a run is *correct* when it converged and
``eig_error <= 10·tol`` (a residual below tol places every θ_j within tol·‖A‖ of *some*
eigenvalue; the exact comparison also catches missed copies of repeated eigenvalues).

Outputs: ``results.csv`` (:data:`CSV_COLUMNS`), ``results.md`` (matvecs per matrix × method for each
k, median matvec ratio of every method to ``chfsi``, correctness pass rates) and PNG plots per
(matrix, k): the worst wanted residual against matvecs (all methods), and ``|p(λ)|`` of the
Chebyshev and learned filters of the first outer iteration over the spectrum (the exact one for
``n <= exact_max_n``, else the probe's Ritz values). CSV and Markdown are rewritten after every
case, so an interrupted run keeps its partial results.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from autospec.eigen import (
    BUDGET_PER_ROW,
    DEFAULT_DEGREE,
    DEFAULT_PROBE_STEPS,
    FILTERS,
    METHODS,
    WHICH,
    FilterContext,
    chebyshev_filter,
    eigsh,
    filtered_subspace_iteration,
)
from autospec.errors import InputValueError
from autospec.evaluation import Source, matrix_sources
from autospec.operators import as_operator
from autospec.reporting import (
    Evaluation,
    check_settings,
    describe,
    markdown_table,
    median,
    safe_filename,
    save_figure,
    write_rows,
)

CSV_COLUMNS = ("matrix", "n", "nnz", "method", "k", "degree", "outer_iters", "matvecs", "seconds", "max_residual",
               "converged", "eig_error", "kappa", "definite", "stop", "top_degree", "error")
CONTRACT_COLUMNS = CSV_COLUMNS[:11]  # DESIGN.md §7; the rest are appended
DEFAULT_ENGINE = "eigfilter-d15"
REFERENCE = "chfsi"  # the matvec ratios are taken against this method
RATIO_SLACK = 1.1  # "worse" = more than 10 % more matvecs than the reference
CORRECT_FACTOR = 10.0  # correct: converged and eig_error <= CORRECT_FACTOR·tol
KAPPA_MAX = 1e8  # the correctness target covers kappa <= this


@dataclass
class Row:
    """One line of ``results.csv``; ``None`` fields are written empty."""

    matrix: str
    n: int | None
    nnz: int | None
    method: str
    k: int
    degree: int
    outer_iters: int | None = None
    matvecs: int | None = None
    seconds: float | None = None
    max_residual: float | None = None
    converged: bool = False
    eig_error: float | None = None
    kappa: float | None = None
    definite: str = ""
    stop: str = ""  # tol | whole space | stagnated | budget | other
    top_degree: int | None = None  # filter methods: the largest degree used (0: no filter step, see `stop`)
    error: str = ""

    @property
    def iterated(self) -> bool:
        """Converged by its own iteration, not by the whole-space Rayleigh–Ritz of the filter methods
        (``top_degree == 0`` marks that in files written before the ``stop`` value existed)."""
        return self.converged and self.stop != "whole space" and self.top_degree != 0

    def correct(self, tol: float) -> bool:
        return self.converged and self.eig_error is not None and self.eig_error <= CORRECT_FACTOR * tol


@dataclass
class Reference:
    """What the dense spectrum tells (``n <= exact_max_n``): eigenvalues, ‖A‖₂, κ, definiteness."""

    eigenvalues: np.ndarray
    norm: float
    kappa: float
    definite: str  # positive | semidefinite | indefinite | negative

    @classmethod
    def of(cls, A: sp.spmatrix) -> Reference:
        lam = np.linalg.eigvalsh(A.toarray())
        absolute = np.abs(lam)
        norm = float(absolute.max())
        zero = A.shape[0] * np.finfo(float).eps * norm
        definite = ("positive" if lam[0] > zero else "negative" if lam[-1] < -zero
                    else "semidefinite" if lam[0] >= -zero or lam[-1] <= zero else "indefinite")
        smallest = float(absolute.min())
        return cls(lam, norm, norm / smallest if smallest > 0 else math.inf, definite)

    def error(self, vals: np.ndarray, which: str) -> float:
        """``max_j |θ_j − λ_j| / ‖A‖₂`` against the k wanted exact eigenvalues."""
        k = len(vals)
        wanted = self.eigenvalues[:k] if which == "SA" else self.eigenvalues[-k:]
        return float(np.abs(np.sort(vals) - wanted).max() / self.norm)


@dataclass
class Case:
    """What the plots of one (matrix, k) need."""

    matrix: str
    k: int
    tol: float
    histories: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # method -> (matvecs, residual)
    filters: dict[str, np.ndarray] = field(default_factory=dict)  # label -> |p(λ)| at `points`
    points: np.ndarray | None = None  # λ of the filter operator (−λ(A) for which="LA")
    exact: bool = False  # points are the exact spectrum (else the probe's Ritz values)
    interval: tuple[float, float, float] | None = None  # (a_L, a, b) of the first filter


@dataclass
class _Settings:
    methods: list[str]
    which: str
    tol: float
    degree: int
    engine: object
    seed: int
    probe_steps: int
    budget_per_row: int
    max_matvecs: int | None
    whole_space: bool

    def budget(self, n: int) -> int:
        budget = self.budget_per_row * n
        return budget if self.max_matvecs is None else min(budget, self.max_matvecs)


# -- one (matrix, k) -------------------------------------------------------------------------------

def _stop(info) -> str:
    if info.whole_space:
        return "whole space"
    if info.converged:
        return "tol"
    return "stagnated" if info.stagnated else "budget" if "budget" in info.message else "other"


def _run(A: sp.csr_matrix, k: int, method: str, s: _Settings, ref: Reference | None, row: Row, case: Case) -> None:
    """One eigsh run filling ``row`` (and ``case.histories``); exceptions become ``row.error``."""
    try:
        vals, _, info = eigsh(A, k=k, which=s.which, method=method, tol=s.tol, degree=s.degree, engine=s.engine,
                              seed=s.seed, max_matvecs=s.budget(A.shape[0]), probe_steps=s.probe_steps,
                              whole_space=s.whole_space)
    except Exception as err:  # a failed run is a row that says why; the evaluation goes on
        row.error = describe(err)
        return
    row.outer_iters, row.matvecs, row.seconds = info.outer_iters, info.matvecs, info.seconds
    row.top_degree = info.degree if method in FILTERS else None
    row.max_residual, row.converged, row.stop = info.max_residual, bool(info.converged), _stop(info)
    if ref is not None:
        row.eig_error = ref.error(vals.cpu().numpy(), s.which)
    matvecs, residual = zip(*info.history)
    case.histories[method] = (np.asarray(matvecs), np.asarray(residual))


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
        filtered_subspace_iteration(A, k, _CaptureFilter(), which=which, probe_steps=probe_steps, seed=seed,
                                    whole_space=False)
    except _FirstContext as stop:
        return stop.args[0]
    raise RuntimeError("the subspace iteration never called its filter")


def filter_curves(A, k: int, s: _Settings, ref: Reference | None, case: Case) -> None:
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
            tqdm.write(f"warning: filter {label} of {case.matrix} failed: {describe(err)}")


def _check_symmetric(A) -> sp.csr_matrix:
    """Real, square, symmetric, finite (raises saying what is wrong); float64 CSR."""
    as_operator(A, symmetric=True)
    return sp.csr_matrix(A, dtype=np.float64)


# -- the evaluation ----------------------------------------------------------------------------------

def evaluate_eigen(
    output_dir: str | Path,
    matrix_dir: str | Path | None = None,
    *,
    files: Iterable[str | Path] = (),
    suite=None,
    gallery: Iterable[str] = (),
    matrices: Iterable[str] | None = None,
    engine=DEFAULT_ENGINE,
    methods: Sequence[str] = METHODS,
    ks: Sequence[int] = (4, 16),
    gallery_ks: Sequence[int] | None = None,
    gallery_methods: Sequence[str] | None = None,
    which: str = "SA",
    tol: float = 1e-8,
    degree: int = DEFAULT_DEGREE,
    probe_steps: int = DEFAULT_PROBE_STEPS,
    budget_per_row: int = BUDGET_PER_ROW,
    max_matvecs: int | None = None,
    whole_space: bool = True,
    max_n: int | None = None,
    exact_max_n: int = 5000,
    seed: int = 0,
    plots: bool = True,
    progress: bool = True,
) -> Evaluation:
    """Run every method for every matrix and k; write ``results.csv``, ``results.md`` and plots.

    ``matrices`` keeps only those names; ``max_n`` skips larger matrices (rows say so);
    ``gallery_ks``/``gallery_methods`` (default: ``ks``/``methods``) limit the generated problems;
    ``whole_space=False`` keeps the filters from switching to the whole-space Rayleigh–Ritz
    (:func:`autospec.eigen.eigsh`), for comparing filters.
    """
    bad = [m for m in [*methods, *(gallery_methods or ())] if m not in METHODS]
    if bad:
        raise InputValueError(f"unknown methods {bad}; choose from {', '.join(METHODS)}")
    if which not in WHICH:
        raise InputValueError(f"which={which!r}: choose from {', '.join(WHICH)}")
    ks = [int(k) for k in ks]
    if not ks or any(k < 1 for k in [*ks, *(gallery_ks or ())]):
        raise InputValueError(f"ks must be a non-empty list of positive integers, got {ks}")
    if not isinstance(whole_space, bool):
        raise InputValueError(f"whole_space must be true or false, got {whole_space!r}")
    settings = _Settings(list(methods), which, float(tol), int(degree), engine, int(seed), int(probe_steps),
                         int(budget_per_row), None if max_matvecs is None else int(max_matvecs), whole_space)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    gallery = list(gallery or ())
    sources = matrix_sources(matrix_dir, files, suite, gallery, progress)
    if matrices is not None:
        keep = set(matrices)
        sources = [s for s in sources if s.name in keep]
    if not sources:
        raise InputValueError("nothing to evaluate: set matrix_dir, files, suite or gallery (and check `matrices`)")
    generated = set(gallery)
    plan = {s.name: ([int(k) for k in gallery_ks or ks], list(gallery_methods or methods)) if s.name in generated
            else (ks, list(methods)) for s in sources}
    meta = {"engine": str(engine), "which": which, "tol": settings.tol, "degree": settings.degree,
            "probe_steps": settings.probe_steps, "budget_per_row": settings.budget_per_row,
            "max_matvecs": settings.max_matvecs, "whole_space": whole_space, "exact_max_n": exact_max_n, "seed": settings.seed}
    csv_path, md_path = out / "results.csv", out / "results.md"
    rows: list[Row] = []
    pictures: list[Path] = []
    bar = tqdm(total=sum(len(plan[s.name][0]) for s in sources), desc="cases", unit="case", disable=not progress)
    for source in sources:
        source_ks, source_methods = plan[source.name]
        bar.set_postfix_str(source.name)
        A, ref, why = _load(source, max_n, exact_max_n)
        for k in source_ks:
            case_rows, case = _evaluate_case(source.name, A, ref, why, k, source_methods, settings)
            rows += case_rows
            if plots and A is not None and not why:
                pictures += _plots(A, k, settings, ref, case, out)
            bar.update()
            summary = summarize(rows, settings.tol)
            write_csv(rows, csv_path)
            write_markdown(rows, summary, md_path, meta)
    bar.close()
    summary = summarize(rows, settings.tol)
    return Evaluation(rows, summary, csv_path, md_path, pictures)


def _load(source: Source, max_n: int | None, exact_max_n: int) -> tuple[sp.csr_matrix | None, Reference | None, str]:
    """The matrix, its dense reference (small n) and, if it cannot be evaluated, why."""
    if source.error:
        return None, None, source.error
    try:
        A = source.load()
    except Exception as err:
        return None, None, describe(err)
    try:
        A = _check_symmetric(A)
    except Exception as err:  # rectangular, complex, nonsymmetric: skipped, the rows say why
        return A, None, f"skipped: {describe(err)}"
    if max_n is not None and A.shape[0] > max_n:
        return A, None, f"skipped: n = {A.shape[0]} > max_n = {max_n}"
    try:
        return A, Reference.of(A) if A.shape[0] <= exact_max_n else None, ""
    except Exception as err:
        return A, None, describe(err)


def _evaluate_case(name: str, A, ref: Reference | None, why: str, k: int, methods: Sequence[str],
                   s: _Settings) -> tuple[list[Row], Case]:
    n, nnz = (None, None) if A is None else (A.shape[0], A.nnz)
    if not why and k >= n:
        why = f"skipped: k = {k} >= n = {n}"
    case = Case(name, k, s.tol)
    rows = []
    for method in methods:
        row = Row(name, n, nnz, method, k, s.degree if method in FILTERS else 0, error=why)
        if ref is not None:
            row.kappa, row.definite = ref.kappa, ref.definite
        rows.append(row)
        if not why:
            _run(A, k, method, s, ref, row, case)
    return rows, case


def _plots(A, k: int, s: _Settings, ref: Reference | None, case: Case, out: Path) -> list[Path]:
    try:
        if FILTERS.keys() & set(s.methods):
            filter_curves(A, k, s, ref, case)
        return plot_case(case, out)
    except Exception as err:  # a plot is not worth losing the run for
        tqdm.write(f"warning: plots of {case.matrix} (k={k}) failed: {describe(err)}")
        return []


# -- report ---------------------------------------------------------------------------------------------

def write_csv(rows: Iterable[Row], path: str | Path) -> Path:
    """``results.csv`` with :data:`CSV_COLUMNS` in that order."""
    return write_rows(rows, CSV_COLUMNS, path)


def read_csv(path: str | Path) -> list[Row]:
    """The rows of a ``results.csv`` written by :func:`write_csv` (empty cells: ``None``)."""
    kinds = {f.name: f.type for f in fields(Row)}

    def parse(name: str, text: str):
        kind = kinds[name]
        if kind == "bool":
            return text == "True"
        if kind == "str":
            return text
        if text == "":
            return None
        return int(text) if kind.startswith("int") else float(text)

    with open(path, newline="") as f:
        return [Row(**{name: parse(name, text) for name, text in line.items()}) for line in csv.DictReader(f)]


def summarize(rows: Sequence[Row], tol: float, reference: str = REFERENCE) -> dict:
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


def _cell(r: Row | None, tol: float) -> str:
    if r is None:
        return ""
    if r.error:
        return "—" if r.error.startswith("skipped") else "✗"
    wrong = r.converged and r.eig_error is not None and not r.correct(tol)
    return f"{r.matvecs}" + ("" if r.converged else "*") + ("!" if wrong else "")


def write_markdown(rows: Sequence[Row], summary: Mapping, path: str | Path, meta: Mapping) -> Path:
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
        table: dict[str, dict[str, Row]] = {}
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
    errors = dict.fromkeys(f"- {r.matrix} (k={r.k}, {r.method}): {r.error}" for r in rows if r.error)
    if errors:
        lines += ["", "## Errors", "", *errors]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)


# -- plots -----------------------------------------------------------------------------------------------

COLORS = {"autospec": "tab:red", "chfsi": "tab:blue", "lanczos": "black", "lobpcg": "tab:green", "rsi": "tab:orange"}


def plot_case(case: Case, out: Path) -> list[Path]:
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


# -- entry point for evaluate.py ---------------------------------------------------------------------------

def print_summary(result: Evaluation) -> None:
    """The end-of-run report: summary tables, failures, where the outputs are."""
    failed = [r for r in result.rows if r.error and not r.error.startswith("skipped")]
    skipped = sum(r.error.startswith("skipped") for r in result.rows)
    print(summary_tables(result.summary))
    print(f"{len(result.rows)} rows, {len(failed)} failed, {skipped} skipped (see the error column)")
    for error in list(dict.fromkeys(r.error for r in failed))[:5]:
        print(f"  {error}")
    print(f"wrote {result.csv}, {result.markdown} and {len(result.plots)} plots")


SETTINGS = tuple(f.name for f in fields(_Settings)) + ("matrix_dir", "files", "suite", "gallery", "matrices", "ks",
                                                       "gallery_ks", "gallery_methods", "max_n", "exact_max_n", "plots")


def evaluate_config(cfg: Mapping) -> Evaluation:
    """Run :func:`evaluate_eigen` from the ``eval`` block (``conf/eval/eigfilter.yaml``); print the summary."""
    check_settings("eval", cfg, ("output_dir", *SETTINGS))
    result = evaluate_eigen(cfg["output_dir"], **{k: cfg[k] for k in SETTINGS if k in cfg})
    print_summary(result)
    return result
