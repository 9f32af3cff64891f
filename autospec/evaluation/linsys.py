"""SuiteSparse evaluation of the ``linsys`` task: learned preconditioners next to the baselines.

For every matrix (files of a folder, the paper's downloaded set, generated gallery problems) and
every scaling (``none``; ``jacobi``: ``D A D`` with ``D = diag(A)^{-1/2}``) CG solves ``A x = b`` with
a seeded Gaussian ``b``, ``x_0 = 0``, to ``‖b − A x‖ <= rtol‖b‖`` with

* ``cg``: no preconditioner;
* ``chebyshev``: the degree-d Chebyshev preconditioner on ``ritz`` and ``petsc`` probe bounds;
* ``autospec``: the learned engine (``bounds`` = ``learned``, or ``fallback-ritz`` when the
  safeguard replaced it by Chebyshev);
* ``nystrom``: Nyström PCG (:mod:`autospec.linsys.sketched`, μ = 0, adaptive rank; ``matvecs``
  include the sketch's products);
* ``oracle`` (n <= ``oracle_max_n``): the minimax polynomial for the exact spectrum
  (:mod:`autospec.linsys.oracle`, ``bounds`` = ``exact-k<k>``); its ``seconds`` and ``matvecs`` are those
  of the final PCG run (the eigendecomposition is not counted: it is a bound, not a method).

Outputs: ``results.csv`` (:data:`CSV_COLUMNS`; a failed row keeps its cause in ``error`` and has
``converged=False``), ``results.md`` (outer iterations per matrix × method, summary rows) and PNG
plots of residual histories and of ``|1 − λ p(λ)|`` on the spectrum. The CSV and the table are
rewritten after every matrix, so an interrupted run keeps its partial results.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from autospec.core.operators import Operator, as_operator
from autospec.errors import InputValueError
from autospec.learned import LearnedEngine, load
from autospec.linsys.cg import SolveInfo, scipy_cg_iterations
from autospec.linsys.oracle import (
    ORACLE_KS,
    SHORTLIST,
    MinimaxPolynomial,
    oracle_preconditioner,
    spectrum,
)
from autospec.core.probe import lanczos
from autospec.evaluation.linsys_report import (
    CHEBYSHEV_BOUNDS,
    plot_case,
    summarize,
    summary_table,
    write_markdown,
)
from autospec.evaluation.runner import (
    Evaluation,
    MatrixRow,
    check_settings,
    describe,
    run_cases,
    select_sources,
    write_rows,
)
from autospec.core.recurrences import chebyshev_three_term, evaluate
from autospec.linsys.learned import plan_from_probe
from autospec.linsys.solve import DEFAULT_ENGINE, jacobi_scaling, solve

CSV_COLUMNS = ("matrix", "n", "nnz", "method", "degree", "probe_steps", "outer_iters", "matvecs", "seconds",
               "rel_residual", "converged", "scaling", "bounds", "error")

Polynomial = Callable[[np.ndarray], np.ndarray]  # λ (A's units) -> p_A(λ)


@dataclass
class Row(MatrixRow):
    """One line of ``results.csv`` (``matrix, n, nnz, method`` first); ``None`` fields are written empty."""

    degree: int
    probe_steps: int
    scaling: str
    bounds: str
    rel_residual: float | None = None

    @property
    def label(self) -> str:
        """Column of the pivot table: ``cg``, ``oracle``, ``chebyshev-ritz@50``, ``autospec@200``."""
        if self.method == "chebyshev":
            return f"chebyshev-{self.bounds}@{self.probe_steps}"
        return f"{self.method}@{self.probe_steps}" if self.method == "autospec" else self.method

    @property
    def iterations(self) -> float:
        """Outer iterations to convergence: ``inf`` when not converged, ``nan`` when the run failed."""
        if self.error:
            return math.nan
        return float(self.outer_iters) if self.converged else math.inf



@dataclass
class Case:
    """What the plots of one (matrix, scaling) need."""

    matrix: str
    scaling: str
    histories: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # label -> (matvecs, residuals)
    polynomials: dict[str, Polynomial] = field(default_factory=dict)  # label -> p_A
    eigenvalues: np.ndarray | None = None
    interval: tuple[float, float] | None = None  # plot range when the spectrum is unknown


# -- one (matrix, scaling) ----------------------------------------------------------------------------

@dataclass
class _Problem:
    """The (optionally Jacobi-scaled) system ``A_s y = b_s`` and, for small n, its spectrum."""

    A: sp.csr_matrix  # the original matrix
    b: np.ndarray
    d: np.ndarray | None  # x = d ⊙ y for Jacobi scaling
    A_s: sp.csr_matrix | None  # D A D (or A), built only when the spectrum is computed
    eig: tuple[np.ndarray, np.ndarray] | None

    def operator(self, seed: int) -> Operator:
        """The operator ``autospec.solve`` builds for this scaling (same probe for the same seed)."""
        op = as_operator(self.A, symmetric=True, seed=seed)
        return op if self.d is None else jacobi_scaling(op)


def _prepare(A, b: np.ndarray, scaling: str, spectrum_max_n: int, seed: int) -> _Problem:
    """Validate (square, real, finite, symmetric, positive diagonal for Jacobi) and scale; for
    ``n <= spectrum_max_n`` the exact spectrum proves positive definiteness (or raises)."""
    op = as_operator(A, symmetric=True, seed=seed)
    A = sp.csr_matrix(A, dtype=np.float64)
    d = jacobi_scaling(op).d.cpu().numpy() if scaling == "jacobi" else None
    if A.shape[0] > spectrum_max_n:
        return _Problem(A, b, d, None, None)
    A_s = A if d is None else sp.csr_matrix(sp.diags(d) @ A @ sp.diags(d))
    return _Problem(A, b, d, A_s, spectrum(A_s))


def _planned(n: int | None, probes: Sequence[int], oracle_max_n: int, degree: int) -> list[tuple[str, int, int, str]]:
    """``(method, degree, probe_steps, bounds)`` of every row of one (matrix, scaling)."""
    plan = [("cg", 0, 0, ""), ("scipy_cg", 0, 0, "")]
    for m in probes:
        plan += [("chebyshev", degree, m, b) for b in CHEBYSHEV_BOUNDS] + [("autospec", degree, m, "learned")]
    plan.append(("nystrom", 0, 0, "adaptive"))
    if n is not None and n <= oracle_max_n:
        plan.append(("oracle", degree, 0, "exact"))
    return plan


def _history(info: SolveInfo, per_iteration: int) -> tuple[np.ndarray, np.ndarray]:
    """Residual history against matvecs: ``setup + k·(d+1)`` after k outer iterations."""
    k = np.arange(len(info.residual_history))
    setup = info.matvecs - info.outer_iters * per_iteration - info.residual_checks
    return setup + k * per_iteration, np.asarray(info.residual_history)


def _chebyshev_polynomial(interval: tuple[float, float], degree: int) -> Polynomial:
    """``p_A(λ) = p(λ/b)/b`` of the Chebyshev preconditioner on ``[a, b]`` (as ``solve`` built it)."""
    a, b = interval
    poly = chebyshev_three_term(torch.tensor(a / b), torch.tensor(1.0), degree)
    return lambda lam: evaluate(poly, torch.from_numpy(lam / b)).numpy() / b


def _learned_polynomial(engine: LearnedEngine, op: Operator, probe_steps: int, seed: int) -> Polynomial:
    """The polynomial ``solve(method="autospec")`` applied: same operator, probe and safeguard
    (with deflation it acts on the deflated operator, but the polynomial is the one applied)."""
    M, _, _ = plan_from_probe(engine, op, lanczos(op, steps=probe_steps, seed=seed))
    return lambda lam: M.polynomial(lam).numpy()


def _run_scipy_cg(row: Row, problem: _Problem, cfg: dict) -> None:
    """``scipy.sparse.linalg.cg`` on the same system, the reference for wall time (Jacobi scaling as
    its preconditioner ``M = D²``, which gives the iterates of CG on ``D A D``)."""
    M = None if problem.d is None else sp.diags(problem.d**2)
    start = time.perf_counter()
    row.outer_iters, x, row.converged = scipy_cg_iterations(problem.A, problem.b, cfg["rtol"], cfg["maxiter"], M)
    row.seconds = time.perf_counter() - start
    row.matvecs = row.outer_iters
    row.rel_residual = float(np.linalg.norm(problem.b - problem.A @ x) / np.linalg.norm(problem.b))


def _run_oracle(problem: _Problem, cfg: dict) -> tuple[SolveInfo, MinimaxPolynomial]:
    """The oracle's chosen PCG run on the scaled system; the residual is the original system's."""
    b_s = problem.b if problem.d is None else problem.d * problem.b
    _, meta = oracle_preconditioner(problem.A_s, b_s, degree=cfg["degree"], ks=cfg["oracle_ks"], rtol=cfg["rtol"],
                                    maxiter=cfg["maxiter"], shortlist=cfg["oracle_shortlist"], eig=problem.eig)
    info = meta.solve_info
    if problem.d is not None:
        x = problem.d * meta.solution.numpy()
        info.rel_residual = float(np.linalg.norm(problem.b - problem.A @ x) / np.linalg.norm(problem.b))
    return info, meta.polynomial


def _evaluate_case(name: str, problem: _Problem, scaling: str, plan, engine, engine_error: str, cfg: dict,
                   want_polynomials: bool) -> tuple[list[Row], Case]:
    n, nnz = problem.A.shape[0], problem.A.nnz
    case = Case(name, scaling, eigenvalues=None if problem.eig is None else problem.eig[0])
    rows = []
    for method, degree, probe_steps, bounds in plan:
        row = Row(name, n, nnz, method, degree, probe_steps, scaling, bounds)
        rows.append(row)
        if method == "autospec" and engine is None:
            row.error = engine_error
            continue
        try:
            if method == "scipy_cg":
                _run_scipy_cg(row, problem, cfg)
                continue
            if method == "oracle":
                info, poly = _run_oracle(problem, cfg)
                row.bounds = f"exact-k{poly.k}"
            else:
                polynomial = {"chebyshev": {"degree": degree, "probe_steps": probe_steps},
                              "autospec": {"engine": engine, "probe_steps": probe_steps}}.get(method, {})
                _, info = solve(problem.A, problem.b, method=method, rtol=cfg["rtol"], maxiter=cfg["maxiter"],
                                rng=cfg["seed"], scaling=scaling, bounds=bounds if method == "chebyshev" else "ritz",
                                **polynomial)
                poly = None
                if method == "chebyshev":
                    poly = _chebyshev_polynomial(info.bounds, degree)
                    case.interval = case.interval or info.bounds
                elif method == "autospec":
                    row.degree = info.degree
                    row.bounds = "fallback-ritz" if info.fallback else "learned"
                    if want_polynomials:
                        poly = _learned_polynomial(engine, problem.operator(cfg["seed"]), probe_steps, cfg["seed"])
        except Exception as err:  # a failed run is a row that says why; the evaluation goes on
            row.error = describe(err)
            continue
        row.outer_iters, row.matvecs, row.seconds = info.outer_iters, info.matvecs, info.seconds
        row.rel_residual, row.converged = info.rel_residual, bool(info.converged)
        case.histories[row.label] = _history(info, row.degree + 1)
        if poly is not None:
            case.polynomials[row.label] = poly
    return rows, case


# -- the evaluation ---------------------------------------------------------------------------------

def evaluate_linsys(
    output_dir: str | Path,
    matrix_dir: str | Path | None = None,
    *,
    files: Iterable[str | Path] = (),
    suite=None,
    gallery: Iterable[str] = (),
    engine: str | Path | LearnedEngine = DEFAULT_ENGINE,
    degree: int = 10,
    probe_steps: Sequence[int] = (50, 200),
    scalings: Sequence[str] = ("none", "jacobi"),
    rtol: float = 1e-8,
    maxiter: int = 20000,
    seed: int = 0,
    oracle_max_n: int = 5000,
    oracle_ks: Sequence[int] = ORACLE_KS,
    oracle_shortlist: int = SHORTLIST,
    plots: bool = True,
    progress: bool = True,
    shard: int = 0,
    shards: int = 1,
) -> Evaluation:
    """Evaluate CG, Chebyshev, autospec and the oracle on every matrix; write the outputs.
    ``shard``/``shards``: only the matrices ``shard, shard + shards, ...`` (one job of a sweep,
    :mod:`autospec.evaluation.sweep`).

    A matrix that cannot be read or is not SPD yields rows whose ``error`` says why; an engine
    that cannot be loaded fails only the ``autospec`` rows.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    probes = [int(m) for m in probe_steps]
    cfg = {"degree": int(degree), "rtol": float(rtol), "maxiter": int(maxiter), "seed": int(seed),
           "oracle_ks": [int(k) for k in oracle_ks], "oracle_shortlist": int(oracle_shortlist)}
    for s in scalings:
        if s not in ("none", "jacobi"):
            raise InputValueError(f"unknown scaling {s!r}; choose from none, jacobi")
    try:
        engine_obj, engine_error = load(engine), ""
    except Exception as err:
        engine_obj, engine_error = None, f"engine {str(engine)!r} could not be loaded: {describe(err)}"
    engine_name = engine_obj.name if engine_obj is not None else str(engine)
    meta = {"engine": engine_name, "degree": cfg["degree"], "rtol": cfg["rtol"], "maxiter": cfg["maxiter"],
            "seed": cfg["seed"], "engine_error": engine_error}
    csv_path, md_path = out / "results.csv", out / "results.md"
    sources = select_sources(matrix_dir, files, suite, gallery, shard=shard, shards=shards, progress=progress)

    def run_source(source) -> tuple[list[Row], list]:
        matrix, err = None, source.error
        if not err:
            try:
                matrix = source.load()
            except Exception as exc:
                err = describe(exc)
        n = None if matrix is None else matrix.shape[0]
        plan = _planned(n, probes, oracle_max_n, cfg["degree"])
        b = None if matrix is None else np.random.default_rng(cfg["seed"]).standard_normal(n)
        rows, drawings = [], []
        for scaling in scalings:
            problem, why = None, err
            if not err:
                try:
                    problem = _prepare(matrix, b, scaling, oracle_max_n, cfg["seed"])
                except Exception as exc:  # not symmetric, not positive definite, ...: every row says so
                    why = describe(exc)
            if problem is None:
                rows += _failed(source.name, matrix, scaling, plan, why)
                continue
            case_rows, case = _evaluate_case(source.name, problem, scaling, plan, engine_obj, engine_error, cfg, plots)
            rows += case_rows
            drawings.append((f"{source.name} ({scaling})", lambda case=case: plot_case(case, out)))
        return rows, drawings

    def report(rows: list[Row]) -> None:
        write_csv(rows, csv_path)
        write_markdown(rows, summarize(rows), md_path, meta)

    rows, pictures = run_cases(sources, run_source, report, plots=plots, progress=progress, desc="matrices",
                               name=lambda source: source.name)
    summary = summarize(rows)
    return Evaluation(rows, summary, csv_path, md_path, pictures)


def _failed(name: str, matrix, scaling: str, plan, error: str) -> list[Row]:
    n, nnz = (None, None) if matrix is None else (matrix.shape[0], matrix.nnz)
    return [Row(name, n, nnz, m, d, p, scaling, bd, error=error) for m, d, p, bd in plan]


# -- report -------------------------------------------------------------------------------------------

def write_csv(rows: Iterable[Row], path: str | Path) -> Path:
    """``results.csv`` with :data:`CSV_COLUMNS` in that order."""
    return write_rows(rows, CSV_COLUMNS, path)


def print_summary(result: Evaluation) -> None:
    """The end-of-run report: summary table, failures, where the outputs are."""
    failed = [r for r in result.rows if r.error]
    print(summary_table(result.summary))
    print(f"{len(result.rows)} rows, {len(failed)} failed" + (" (see the error column)" if failed else ""))
    for error in list(dict.fromkeys(r.error for r in failed))[:5]:
        print(f"  {error}")
    print(f"wrote {result.csv}, {result.markdown} and {len(result.plots)} plots")


def evaluate_config(cfg: Mapping) -> Evaluation:
    """Run :func:`evaluate_linsys` from the ``eval`` block of ``conf/evaluate.yaml`` and print the summary."""
    keys = ("matrix_dir", "files", "suite", "gallery", "engine", "degree", "probe_steps", "scalings", "rtol",
            "maxiter", "seed", "oracle_max_n", "oracle_ks", "oracle_shortlist", "plots", "shard", "shards")
    check_settings("eval", cfg, ("output_dir", *keys))
    result = evaluate_linsys(cfg["output_dir"], **{k: cfg[k] for k in keys if k in cfg})
    print_summary(result)
    return result
