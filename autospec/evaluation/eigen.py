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
from dataclasses import KW_ONLY, dataclass, field, fields
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from autospec.core.operators import as_operator
from autospec.eigen.api import FILTERS, METHODS, solve_eigenproblem
from autospec.eigen.filters import DEFAULT_DEGREE
from autospec.eigen.subspace import BUDGET_PER_ROW, DEFAULT_PROBE_STEPS, WHICH
from autospec.errors import InputValueError
from autospec.evaluation.eigen_report import (
    CORRECT_FACTOR,
    case_figures,
    summarize,
    summary_tables,
    write_markdown,
)
from autospec.evaluation.runner import (
    Evaluation,
    MatrixRow,
    Source,
    check_settings,
    describe,
    run_cases,
    select_sources,
    write_rows,
)
from autospec.learned import DEFAULT_ENGINES

CSV_COLUMNS = ("matrix", "n", "nnz", "method", "k", "degree", "outer_iters", "matvecs", "seconds", "max_residual",
               "converged", "eig_error", "kappa", "definite", "stop", "top_degree", "error")
CONTRACT_COLUMNS = CSV_COLUMNS[:11]  # DESIGN.md §7; the rest are appended
DEFAULT_ENGINE = DEFAULT_ENGINES["eigfilter"]


@dataclass
class Row(MatrixRow):
    """One line of ``results.csv`` (``matrix, n, nnz, method`` first); ``None`` fields are written empty."""

    k: int
    degree: int
    _: KW_ONLY
    max_residual: float | None = None
    eig_error: float | None = None
    kappa: float | None = None
    definite: str = ""
    stop: str = ""  # tol | whole space | stagnated | budget | other
    top_degree: int | None = None  # filter methods: the largest degree used (0: no filter step, see `stop`)

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
        vals, _, info = solve_eigenproblem(A, k=k, which=s.which, method=method, tol=s.tol,
                                           degree=s.degree if method in FILTERS else None,
                                           engine=s.engine if method == "autospec" else None, rng=s.seed,
                                           max_matvecs=s.budget(A.shape[0]), probe_steps=s.probe_steps,
                                           whole_space=s.whole_space)
    except Exception as err:  # a failed run is a row that says why; the evaluation goes on
        row.error = describe(err)
        return
    row.outer_iters, row.matvecs, row.seconds = info.outer_iters, info.matvecs, info.seconds
    row.top_degree = info.degree if method in FILTERS else None
    row.max_residual, row.converged, row.stop = info.max_residual, bool(info.converged), _stop(info)
    if ref is not None:
        row.eig_error = ref.error(np.asarray(vals), s.which)
    matvecs, residual = zip(*info.history)
    case.histories[method] = (np.asarray(matvecs), np.asarray(residual))


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
    sources = select_sources(matrix_dir, files, suite, gallery, matrices=matrices, progress=progress)
    generated = set(gallery)
    plan = {s.name: ([int(k) for k in gallery_ks or ks], list(gallery_methods or methods)) if s.name in generated
            else (ks, list(methods)) for s in sources}
    meta = {"engine": str(engine), "which": which, "tol": settings.tol, "degree": settings.degree,
            "probe_steps": settings.probe_steps, "budget_per_row": settings.budget_per_row,
            "max_matvecs": settings.max_matvecs, "whole_space": whole_space, "exact_max_n": exact_max_n, "seed": settings.seed}
    csv_path, md_path = out / "results.csv", out / "results.md"

    def run_source(source) -> tuple[list[Row], list]:
        source_ks, source_methods = plan[source.name]
        A, ref, why = _load(source, max_n, exact_max_n)
        rows, drawings = [], []
        for k in source_ks:
            case_rows, case = _evaluate_case(source.name, A, ref, why, k, source_methods, settings)
            rows += case_rows
            if A is not None and not why:
                drawings.append((f"{source.name} (k={k})",
                                 lambda k=k, case=case: case_figures(A, k, settings, ref, case, out)))
        return rows, drawings

    def report(rows: list[Row]) -> None:
        write_csv(rows, csv_path)
        write_markdown(rows, summarize(rows, settings.tol), md_path, meta)

    rows, pictures = run_cases(sources, run_source, report, plots=plots, progress=progress, desc="matrices",
                               name=lambda source: source.name)
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


# -- report ---------------------------------------------------------------------------------------------

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


def write_csv(rows: Iterable[Row], path: str | Path) -> Path:
    """``results.csv`` with :data:`CSV_COLUMNS` in that order."""
    return write_rows(rows, CSV_COLUMNS, path)


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
