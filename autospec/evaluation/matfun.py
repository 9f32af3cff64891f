"""Evaluation of the ``matfun`` task: ``python evaluate.py task=matfun eval.output_dir=OUT``.

Every *case* is one matrix; every *function setting* (:class:`Spec`) runs a list of methods of
:mod:`autospec.matfun` on it and gives one row per method:

Cases (all seeded):

* ``synthetic/<family>/k<κ>/s<seed>`` — held-out synthetic spectra (every family of
  :mod:`autospec.core.spectra`, seeds from 30 000 000 on: training uses seeds below 10 000 000 and
  validation 10 000 000 + i) turned into dense SPD ``Q diag(λ) Qᵀ`` with a seeded random orthogonal
  Q; κ in the name is the realised ``λmax/λmin`` (Laplacian families cap it at their natural κ);
* ``suitesparse/<name>/k<κ>`` — the matrices of a folder (:mod:`autospec.matrices.io`), densified
  for the GEMM iterations and kept sparse for the matrix-free action; ``n > max_n`` gives one row
  saying it was skipped; a matrix that is not SPD fails the SPD functions with the library's
  error in their rows (the polar factor of a non-SPD matrix still runs);
* ``optimizer/<layer>.<kind>/k<κ>`` — optimizer state of a small MLP trained here
  (:mod:`autospec.matfun.optimizer_state`): gradients and momentum buffers (polar only, as Muon sees
  them) and Shampoo's Kronecker statistics ``L``, ``R`` (SPD: every function).

κ is ``σmax/σmin`` (``λmax/λmin`` for SPD), written into the case name so the CSV can be filtered
on it. For the polar factor the input is the case matrix itself (an SPD matrix has polar factor
``I``; the iterations see exactly its singular values, so it is as hard as any matrix with them).

Function settings (``functions`` in ``conf/eval/matfun.yaml``, :data:`DEFAULT_FUNCTIONS`): the
inverse square root and square root in float64 to tol 1e-6, the polar factor in bfloat16 with
exactly 5 iterations (``tol: null``) and in float32 to tol, and the matrix-free action ``f(A) z``
(``apply``, f in ``inv_sqrt``, ``sqrt``, ``inv``; degree 20; ``matmuls`` = matvecs, probe included;
``iters`` = degree). The ``autospec`` rows call ``method="autospec"`` like any other method: until a
learned engine is registered in :mod:`autospec.matfun` they carry its error and the run goes on.

Outputs: ``results.csv`` (:data:`CSV_COLUMNS`), ``results.md`` (per setting: a table of cases ×
methods, then the summary — per method median matmuls and rel_error, and the median paired ratio
to each reference method: matmuls for tolerance runs, rel_error for fixed-iteration runs and the
action; ``max_kappa`` restricts a setting's summary, e.g. inv_sqrt to κ ≤ 1e6) and one PNG per case
(iteration residual against matmuls, from ``info.residual_history``, matmuls spread evenly over the
iterations). The CSV and the Markdown are rewritten after every case, so a run that stops keeps
its partial results.
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from autospec import matfun
from autospec.core.spectra import ALL_FAMILIES
from autospec.errors import InputValueError
from autospec.evaluation.matfun_report import plot_case, summarize, summary_table, write_markdown
from autospec.evaluation.runner import Evaluation, Outcome, check_settings, describe, run_cases, write_rows
from autospec.matfun import optimizer_state
from autospec.matrices.gallery import synthetic_matrix
from autospec.matrices.io import list_matrices, load_matrix, matrix_name

CSV_COLUMNS = ("case", "n", "function", "method", "dtype", "iters", "matmuls", "seconds", "rel_error", "converged",
               "error")
DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DENSE_FUNCTIONS = ("inv_sqrt", "sqrt", "polar")
SYNTHETIC_SEED = 30_000_000

DEFAULT_FUNCTIONS: tuple[dict, ...] = (
    {"function": "inv_sqrt", "dtype": "float64", "tol": 1e-6,
     "methods": ["newton_schulz", "prism", "inverse_newton", "eigh", "autospec"],
     "references": ["prism", "newton_schulz"], "max_kappa": 1e6},
    {"function": "sqrt", "dtype": "float64", "tol": 1e-6,
     "methods": ["newton_schulz", "prism", "inverse_newton", "eigh", "autospec"],
     "references": ["prism", "newton_schulz"], "max_kappa": 1e6},
    {"function": "polar", "dtype": "bfloat16", "tol": None, "max_iters": 5,
     "methods": ["muon", "polar_express", "newton_schulz", "prism", "autospec"],
     "references": ["polar_express", "muon"], "max_n": 600},
    {"function": "polar", "dtype": "float32", "tol": 1e-6,  # no muon: its fixed coefficients never converge
     "methods": ["polar_express", "newton_schulz", "prism", "autospec"],
     "references": ["polar_express", "newton_schulz"]},
    {"function": "apply", "dtype": "float64", "f": ["inv_sqrt", "sqrt", "inv"], "degree": 20, "probe_steps": 50,
     "methods": ["chebyshev", "autospec"], "references": ["chebyshev"]},
)
SPEC_KEYS = ("function", "dtype", "methods", "tol", "max_iters", "f", "degree", "probe_steps", "references",
             "max_kappa", "max_n")
SYNTHETIC_KEYS = ("n", "families", "kappas", "seed", "count")
SUITESPARSE_KEYS = ("matrix_dir", "files", "max_n")
OPTIMIZER_KEYS = tuple(inspect.signature(optimizer_state.record).parameters)
TOP_KEYS = ("synthetic", "suitesparse", "optimizer_state", "functions", "seed", "engine", "plots")


# -- settings -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    """One function setting: ``function`` on matrices converted to ``dtype``, stopped at ``tol``
    (or after exactly ``max_iters`` steps when ``tol`` is None); ``f`` for ``apply``."""

    function: str
    dtype: str
    methods: tuple[str, ...]
    tol: float | None = 1e-6
    max_iters: int | None = None
    f: str | None = None
    degree: int = 20
    probe_steps: int = 50
    references: tuple[str, ...] = ()
    max_kappa: float | None = None  # the summary keeps cases with κ <= this
    max_n: int | None = None  # larger cases do not run this setting

    @property
    def name(self) -> str:
        """The ``function`` column: ``inv_sqrt``, ``polar``, ``apply:inv_sqrt``."""
        return f"apply:{self.f}" if self.function == "apply" else self.function

    @property
    def fixed(self) -> bool:
        """Fixed iteration count (compared by error), not a tolerance (compared by matmuls)."""
        return self.function == "apply" or self.tol is None

    @property
    def stop(self) -> str:
        if self.function == "apply":
            return f"degree {self.degree}"
        return f"{self.max_iters} iters" if self.tol is None else f"tol {self.tol:g}"

    @property
    def key(self) -> str:
        return f"{self.name} {self.dtype} {self.stop}"

    @property
    def needs_spd(self) -> bool:
        return self.function != "polar"


def parse_specs(functions: Iterable[Mapping]) -> list[Spec]:
    """Validate the ``functions`` settings (keys, functions, methods, dtypes) and expand ``apply``'s
    list of f into one :class:`Spec` each."""
    specs = []
    for i, item in enumerate(functions):
        item = dict(item)
        unknown = set(item) - set(SPEC_KEYS)
        if unknown:
            raise InputValueError(f"functions[{i}]: unknown settings {sorted(unknown)}; known: {', '.join(SPEC_KEYS)}")
        function = item.get("function")
        table = matfun.APPLY_METHODS if function == "apply" else matfun.METHODS.get(function)
        if table is None:
            raise InputValueError(f"functions[{i}]: unknown function {function!r}; choose from "
                                  f"{[*DENSE_FUNCTIONS, 'apply']}")
        dtype = item.get("dtype", "float64")
        allowed = ("float64", "float32") if function == "apply" else tuple(DTYPES)
        if dtype not in allowed:
            raise InputValueError(f"functions[{i}] ({function}): unknown dtype {dtype!r}; choose from {allowed}")
        methods = tuple(item.get("methods") or ())
        bad = [m for m in methods if m not in table]
        if not methods or bad:
            raise InputValueError(f"functions[{i}] ({function}): unknown methods {bad or '(none given)'}; "
                                  f"choose from {sorted(table)}")
        references = tuple(item.get("references") or ())
        if set(references) - set(methods):
            raise InputValueError(f"functions[{i}] ({function}): references {sorted(set(references) - set(methods))} "
                                  "are not among its methods")
        if function != "apply" and item.get("tol") is None and item.get("max_iters") is None:
            raise InputValueError(f"functions[{i}] ({function}): tol: null runs a fixed number of steps: set max_iters")
        fs = (item.get("f") or ["inv_sqrt"]) if function == "apply" else [None]
        fs = [fs] if isinstance(fs, str) else fs
        for f in fs:
            if f is not None and f not in matfun.SCALAR_FUNCTIONS:
                raise InputValueError(f"functions[{i}] (apply): unknown f {f!r}; choose from "
                                      f"{sorted(matfun.SCALAR_FUNCTIONS)}")
            specs.append(Spec(
                function=function, dtype=dtype, methods=methods, f=f, references=references,
                tol=None if item.get("tol") is None else float(item["tol"]),
                max_iters=None if item.get("max_iters") is None else int(item["max_iters"]),
                degree=int(item.get("degree", 20)), probe_steps=int(item.get("probe_steps", 50)),
                max_kappa=None if item.get("max_kappa") is None else float(item["max_kappa"]),
                max_n=None if item.get("max_n") is None else int(item["max_n"])))
    return specs


# -- cases ------------------------------------------------------------------------------------------------

@dataclass
class Case:
    """A matrix to evaluate: ``load()`` returns it (dense NumPy or SciPy sparse); ``spd`` False means
    only the polar settings apply (gradients, momentum)."""

    name: str
    load: Callable[[], np.ndarray | sp.spmatrix]
    spd: bool = True
    max_n: int | None = None  # larger matrices are skipped (one row says so)


def synthetic_cases(n: int = 256, families: Sequence[str] | str = "all", kappas: Sequence[float] = (1e2, 1e4, 1e6, 1e8),
                    seed: int = SYNTHETIC_SEED, count: int = 1) -> list[Case]:
    """``count`` cases per (family, κ); case i uses seed ``seed + i``."""
    families = list(ALL_FAMILIES) if families == "all" else [families] if isinstance(families, str) else list(families)
    bad = [f for f in families if f not in ALL_FAMILIES]
    if bad:
        raise InputValueError(f"unknown spectrum families {bad}; choose from {list(ALL_FAMILIES)} or 'all'")
    cases = []
    for family in families:
        for kappa in kappas:
            for _ in range(int(count)):
                s = int(seed) + len(cases)
                cases.append(Case(f"synthetic/{family}/s{s}",
                                  lambda f=family, k=float(kappa), s=s: synthetic_matrix(f, int(n), k, s)))
    return cases


def suitesparse_cases(matrix_dir: str | Path | None = "data/suitesparse", files: Iterable[str | Path] = (),
                      max_n: int | None = 5000) -> list[Case]:
    """Every matrix file of ``matrix_dir`` plus ``files`` (SPD-ness is checked by the functions)."""
    paths = [*(list_matrices(matrix_dir) if matrix_dir else []), *(Path(f) for f in files or ())]
    return [Case(f"suitesparse/{matrix_name(p)}", lambda p=p: load_matrix(p).matrix, max_n=max_n) for p in paths]


def optimizer_cases(**record_kwargs) -> list[Case]:
    """The matrices of :func:`autospec.matfun.optimizer_state.record` (recorded once, on first use)."""
    state: list = []

    def get(i: int) -> np.ndarray:
        if not state:
            state.extend(optimizer_state.record(**record_kwargs))
        return state[i].matrix

    names = [(f"{layer}.{kind}", kind in optimizer_state.SPD_KINDS) for layer in ("fc1", "fc2", "fc3")
             for kind in optimizer_state.KINDS]
    return [Case(f"optimizer/{name}", lambda i=i: get(i), spd=spd) for i, (name, spd) in enumerate(names)]


def condition_number(A) -> float:
    """``σmax/σmin`` of a dense or sparse matrix (``inf`` when singular, ``nan`` when it fails)."""
    D = A.toarray() if sp.issparse(A) else np.asarray(A)
    try:
        if D.shape[0] == D.shape[1] and np.isrealobj(D) and np.array_equal(D, D.T):
            s = np.abs(np.linalg.eigvalsh(D))
        else:
            s = np.linalg.svd(D, compute_uv=False)
    except (np.linalg.LinAlgError, ValueError):
        return math.nan
    return float(s.max() / s.min()) if s.min() > 0 else math.inf


# -- rows ---------------------------------------------------------------------------------------------------

@dataclass
class Row(Outcome):
    """One line of ``results.csv`` (``None`` fields written empty); ``kappa``, ``spec`` and
    ``history`` feed the summary and the plots."""

    case: str
    n: int | None
    function: str
    method: str
    dtype: str
    iters: int | None = None
    matmuls: int | None = None
    rel_error: float | None = None
    kappa: float = math.nan
    spec: str = ""
    history: list[float] = field(default_factory=list)


def _kappa_tag(kappa: float) -> str:
    return f"k{kappa:.1e}" if math.isfinite(kappa) else f"k{kappa}"


def _call(spec: Spec, method: str, A, dense: torch.Tensor | None, z: np.ndarray, seed: int, engine):
    kwargs = {"engine": engine} if method == "autospec" and engine is not None else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # divergence shows in the row (converged=False)
        if spec.function == "apply":
            op = A.astype(spec.dtype) if sp.issparse(A) else np.asarray(A, dtype=spec.dtype)
            return matfun.apply(op, z, f=spec.f, degree=spec.degree, method=method, probe_steps=spec.probe_steps,
                                rng=seed, **kwargs)[1]
        fn = getattr(matfun, spec.function)
        return fn(dense.to(DTYPES[spec.dtype]), method=method, tol=spec.tol, max_iters=spec.max_iters, **kwargs)[1]


def evaluate_case(case: Case, specs: Sequence[Spec], seed: int = 0, engine=None) -> list[Row]:
    """Rows of every applicable (setting, method) on one case; a failure is a row that says why."""
    try:
        A = case.load()
        n = A.shape[0]
    except Exception as err:
        return [Row(case.name, None, "", "", "", error=describe(err))]
    if case.max_n is not None and max(A.shape) > case.max_n:
        return [Row(case.name, n, "", "", "", error=f"skipped: n = {max(A.shape)} > max_n = {case.max_n}")]
    dense = torch.from_numpy(A.toarray() if sp.issparse(A) else np.asarray(A))
    kappa = condition_number(dense.numpy())
    name = f"{case.name}/{_kappa_tag(kappa)}"
    z = np.random.default_rng(seed).standard_normal(n)
    rows = []
    for spec in specs:
        if (spec.needs_spd and not case.spd) or (spec.max_n is not None and max(A.shape) > spec.max_n):
            continue
        for method in spec.methods:
            row = Row(name, n, spec.name, method, spec.dtype, kappa=kappa, spec=spec.key)
            rows.append(row)
            try:
                info = _call(spec, method, A, dense, z, seed, engine)
            except Exception as err:  # a failed method is a row that says why; the evaluation goes on
                row.error = describe(err)
                continue
            row.iters, row.seconds, row.rel_error = info.iters, info.seconds, info.rel_error
            row.matmuls = info.matvecs if spec.function == "apply" else info.matmuls
            row.converged, row.history = bool(info.converged), list(info.residual_history)
    return rows


# -- summary and report ---------------------------------------------------------------------------------

def write_csv(rows: Iterable[Row], path: str | Path) -> Path:
    """``results.csv`` with :data:`CSV_COLUMNS` in that order."""
    return write_rows(rows, CSV_COLUMNS, path)


def evaluate_matfun(
    output_dir: str | Path,
    *,
    synthetic: Mapping | None = None,
    suitesparse: Mapping | None = None,
    optimizer_state: Mapping | None = None,
    functions: Iterable[Mapping] = DEFAULT_FUNCTIONS,
    seed: int = 0,
    engine=None,
    plots: bool = True,
    progress: bool = True,
) -> Evaluation:
    """Run every setting of ``functions`` on the synthetic, SuiteSparse and optimizer-state cases
    (a ``None`` section is skipped; see :func:`synthetic_cases`, :func:`suitesparse_cases`,
    :func:`optimizer_cases` for their keys) and write the outputs."""
    specs = parse_specs(functions)
    cases = []
    if synthetic is not None:
        cases += synthetic_cases(**check_settings("synthetic", synthetic, SYNTHETIC_KEYS))
    if suitesparse is not None:
        cases += suitesparse_cases(**check_settings("suitesparse", suitesparse, SUITESPARSE_KEYS))
    if optimizer_state is not None:
        cases += optimizer_cases(**check_settings("optimizer_state", optimizer_state, OPTIMIZER_KEYS))
    if not cases:
        raise InputValueError("nothing to evaluate: set synthetic, suitesparse or optimizer_state")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "results.csv", out / "results.md"
    meta = {"cases": len(cases), "seed": seed, "engine": engine if engine is not None else "default"}

    def run_case(case: Case) -> tuple[list[Row], list]:
        try:
            rows = evaluate_case(case, specs, seed=int(seed), engine=engine)
        except Exception as err:  # anything unexpected: the case says why, the run goes on
            rows = [Row(case.name, None, "", "", "", error=describe(err))]
        return rows, [(case.name, lambda: [p for p in [plot_case(rows, specs, out)] if p])]

    def report(rows: list[Row]) -> None:
        write_csv(rows, csv_path)
        write_markdown(rows, summarize(rows, specs), specs, md_path, meta)

    rows, pictures = run_cases(cases, run_case, report, plots=plots, progress=progress, desc="matfun cases",
                               name=lambda case: case.name)
    return Evaluation(rows, summarize(rows, specs), csv_path, md_path, pictures)


def print_summary(result: Evaluation) -> None:
    """The end-of-run report: summary table, failed rows per method (with a first reason), outputs."""
    print(summary_table(result.summary))
    failures: dict[str, list[Row]] = {}
    for r in result.rows:
        if r.error:
            failures.setdefault(r.method or "(whole case)", []).append(r)
    total = sum(map(len, failures.values()))
    print(f"{len(result.rows)} rows over {len({r.case for r in result.rows})} cases, {total} failed")
    for method, failed in failures.items():
        print(f"  {method}: {len(failed)} failed, e.g. {failed[0].case}: {failed[0].error[:160]}")
    print(f"wrote {result.csv}, {result.markdown} and {len(result.plots)} plots")


def evaluate_config(cfg: Mapping) -> Evaluation:
    """Run :func:`evaluate_matfun` from the ``eval`` block of ``conf/evaluate.yaml`` (``task=matfun``,
    ``conf/eval/matfun.yaml``) and print the summary; unknown keys raise ``InputValueError``."""
    cfg = dict(cfg)
    check_settings("eval", cfg, ("output_dir", *TOP_KEYS))
    start = time.perf_counter()
    result = evaluate_matfun(cfg["output_dir"], **{k: cfg[k] for k in TOP_KEYS if k in cfg})
    print_summary(result)
    print(f"{time.perf_counter() - start:.0f} s")
    return result
