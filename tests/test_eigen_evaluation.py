"""``evaluate.py task=eigfilter`` and autospec.eigen_evaluation: the CSV contract, eig_error against
dense eigvalsh, failed runs and skipped matrices reported in their rows, summaries and config errors."""

import csv
import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
from conftest import REPO, poisson2d

from autospec.evaluation import eigen as eigen_evaluation
from autospec.evaluation.eigen import CSV_COLUMNS, Row, evaluate_config, evaluate_eigen, read_csv, summarize
from autospec.errors import InputValueError

CONTRACT = ["matrix", "n", "nnz", "method", "k", "degree", "outer_iters", "matvecs", "seconds", "max_residual",
            "converged"]  # DESIGN.md §7, in this order
FAST = {"ks": [3], "methods": ["chfsi", "lanczos"], "probe_steps": 20, "progress": False}


@pytest.fixture(scope="module")
def matrices(tmp_path_factory):
    """An SPD Laplacian, a symmetric indefinite matrix and a nonsymmetric one."""
    directory = tmp_path_factory.mktemp("matrices")
    scipy.io.mmwrite(directory / "lap.mtx", poisson2d(12), symmetry="symmetric")  # n = 144: the filter runs
    diag = np.linspace(-1.0, 3.0, 40)  # n = 40 <= 16·block: Rayleigh–Ritz on the whole space
    scipy.io.mmwrite(directory / "indef.mtx", sp.diags(diag) + 0.01 * sp.eye(40, k=1) + 0.01 * sp.eye(40, k=-1))
    scipy.io.mmwrite(directory / "nonsym.mtx", sp.csr_matrix(np.triu(np.ones((10, 10)))))
    return directory


def _read(path):
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, [dict(zip(header, line)) for line in reader]


@pytest.fixture(scope="module")
def result(matrices, tmp_path_factory):
    return evaluate_eigen(tmp_path_factory.mktemp("out"), matrices, plots=False, **FAST)


def test_csv_has_the_contract_columns_in_order(result):
    header, rows = _read(result.csv)
    assert header[: len(CONTRACT)] == CONTRACT
    assert header == list(CSV_COLUMNS)
    assert {(r["matrix"], r["method"]) for r in rows} == {(m, meth) for m in ("indef", "lap", "nonsym")
                                                        for meth in FAST["methods"]}


def test_converged_chfsi_matches_eigvalsh(result, matrices):
    for name in ("lap", "indef"):
        row = next(r for r in result.rows if r.matrix == name and r.method == "chfsi")
        assert row.converged and not row.error and row.stop == ("whole space" if name == "indef" else "tol")
        assert row.max_residual <= 1e-8 and row.matvecs > 0 and row.degree == 15
        assert row.top_degree == 0 if name == "indef" else row.top_degree >= 15  # 0: no filter step
        assert row.eig_error < 1e-7
    lap = next(r for r in result.rows if r.matrix == "lap")
    assert lap.definite == "positive"
    lam = np.linalg.eigvalsh(poisson2d(12).toarray())
    assert lap.kappa == pytest.approx(lam[-1] / lam[0])
    assert next(r for r in result.rows if r.matrix == "indef").definite == "indefinite"


def test_nonsymmetric_matrix_is_skipped_with_the_reason(result):
    rows = [r for r in result.rows if r.matrix == "nonsym"]
    assert rows and all(r.error.startswith("skipped") and "symmetric" in r.error for r in rows)
    assert not any(r.converged for r in rows)
    assert "—" in result.markdown.read_text()


def test_failing_method_gives_an_error_row_and_the_run_goes_on(matrices, tmp_path, monkeypatch):
    real = eigen_evaluation.solve_eigenproblem

    def flaky(A, *args, method, **kwargs):
        if method == "lanczos":
            raise RuntimeError("boom")
        return real(A, *args, method=method, **kwargs)

    monkeypatch.setattr(eigen_evaluation, "solve_eigenproblem", flaky)
    out = evaluate_eigen(tmp_path, matrices, matrices=["lap", "indef"], plots=False, **FAST)
    _, rows = _read(out.csv)
    failed = [r for r in rows if r["method"] == "lanczos"]
    assert len(failed) == 2 and all(r["error"] == "RuntimeError: boom" and r["converged"] == "False" for r in failed)
    assert all(r["converged"] == "True" for r in rows if r["method"] == "chfsi")
    assert "RuntimeError: boom" in out.markdown.read_text()


def test_unavailable_engine_fails_only_autospec_rows(matrices, tmp_path):
    out = evaluate_eigen(tmp_path, matrices, matrices=["lap"], engine=str(tmp_path / "missing.json"),
                         plots=True, **{**FAST, "methods": ["autospec", "chfsi"]})
    autospec_row, chfsi_row = out.rows
    assert autospec_row.error and not chfsi_row.error and chfsi_row.converged
    names = sorted(p.name for p in out.plots)
    assert names == ["lap-k3-filter.png", "lap-k3-residuals.png"]


def test_budget_stops_hopeless_runs_without_raising(matrices, tmp_path):
    out = evaluate_eigen(tmp_path, matrices, matrices=["lap"], max_matvecs=60, plots=False,
                         **{**FAST, "methods": ["chfsi", "lobpcg", "rsi"]})
    for row in out.rows:
        assert not row.error and not row.converged and row.stop in ("budget", "other")
        assert math.isfinite(row.max_residual) and row.eig_error is not None


def test_results_csv_reads_back(result):
    rows = read_csv(result.csv)
    key = lambda r: (r.matrix, r.method, r.k, r.degree, r.matvecs, r.converged, r.stop, r.top_degree, r.error)  # noqa: E731
    assert [key(r) for r in rows] == [key(r) for r in result.rows]
    assert summarize(rows, tol=1e-8) == summarize(result.rows, tol=1e-8)


def test_summary_ratios_and_correctness():
    def row(matrix, method, matvecs, converged=True, eig_error=0.0, kappa=10.0):
        return Row(matrix, 10, 30, method, 4, 15, outer_iters=1, matvecs=matvecs, seconds=0.1, max_residual=1e-9,
                   converged=converged, eig_error=eig_error, kappa=kappa)

    rows = [row("a", "chfsi", 100), row("a", "autospec", 50), row("b", "chfsi", 100), row("b", "autospec", 200),
            row("c", "chfsi", 100, converged=False), row("c", "autospec", 80, eig_error=1.0),
            row("d", "chfsi", 100, kappa=1e12), row("d", "autospec", 120, kappa=1e12),
            row("e", "chfsi", 30), row("e", "autospec", 30), row("f", "chfsi", 900), row("f", "autospec", 300)]
    rows[-4].top_degree = rows[-3].top_degree = 0  # tiny n: no filter ran (files before `stop` said so)
    rows[-1].stop, rows[-1].top_degree = "whole space", 200  # switched mid-run: not a filter comparison
    summary = summarize(rows, tol=1e-8)
    (ratio,) = summary["ratios"]
    assert ratio["cases"] == 3 and ratio["median"] == pytest.approx(1.2) and ratio["worse"] == pytest.approx(2 / 3)
    auto = next(c for c in summary["correctness"] if c["method"] == "autospec")
    assert (auto["cases"], auto["converged"], auto["correct"], auto["wrong"]) == (5, 5, 4, 1)


def test_bad_settings_raise_clear_errors(matrices, tmp_path):
    with pytest.raises(InputValueError, match="whole_space"):
        evaluate_eigen(tmp_path, matrices, whole_space="no")
    with pytest.raises(InputValueError, match="unknown eval settings.*bogus"):
        evaluate_config({"output_dir": str(tmp_path), "matrix_dir": str(matrices), "bogus": 1})
    with pytest.raises(InputValueError, match="unknown methods"):
        evaluate_eigen(tmp_path, matrices, methods=["chfsi", "arnoldi"])
    with pytest.raises(InputValueError, match="nothing to evaluate"):
        evaluate_eigen(tmp_path, matrices, matrices=["absent"])


@pytest.mark.slow
def test_cli_eigfilter(matrices, tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "evaluate.py", "task=eigfilter", f"eval.matrix_dir={matrices}", f"eval.output_dir={out}",
           "eval.ks=[3]", "eval.methods=[chfsi,lobpcg]", "eval.matrices=[lap]"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    header, rows = _read(out / "results.csv")
    assert header[: len(CONTRACT)] == CONTRACT and len(rows) == 2
    assert (out / "results.md").exists() and "wrote" in done.stdout
    bad = subprocess.run([*cmd[:4], "+eval.bogus=1"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "unknown eval settings" in bad.stderr
