"""evaluate.py and autospec.evaluation: the CSV contract, end-to-end runs (function and CLI), failed
matrices reported in their rows, and the minimax oracle (positive, optimal, exact iteration counts)."""

import csv
import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
import torch
from conftest import REPO, poisson2d

from autospec.evaluation import runner
from autospec.linsys.cg import pcg
from autospec.training.export import export_system
from autospec.evaluation.linsys import CSV_COLUMNS, Row, evaluate_linsys, summarize
from autospec.linsys.oracle import (
    minimax_polynomial,
    oracle_preconditioner,
    pcg_iterations_on_spectrum,
    quotient_vandermonde,
    spectrum,
    unit_vandermonde,
)
from autospec.core.recurrences import chebyshev_three_term, evaluate
from autospec.training.system import AutospecSystem

CONTRACT = ["matrix", "n", "nnz", "method", "degree", "probe_steps", "outer_iters", "matvecs", "seconds",
            "rel_residual", "converged"]  # DESIGN.md §7, in this order
PROBE = 12
RTOL = 1e-8


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """An exported untrained engine (its polynomial is Chebyshev on the ritz bounds)."""
    system = AutospecSystem(task={"name": "linsys", "degree": 10}, engine={"backbone": "deepsets", "width": 8},
                            probe={"steps": PROBE})
    return export_system(system, tmp_path_factory.mktemp("engine") / "tiny")


def _write_good(directory):
    scipy.io.mmwrite(directory / "poisson8.mtx", poisson2d(8))
    scipy.io.mmwrite(directory / "poisson10.mtx", poisson2d(10), symmetry="symmetric")


@pytest.fixture(scope="module")
def matrices(tmp_path_factory):
    """Two small SPD matrices, a malformed file and a symmetric indefinite matrix."""
    directory = tmp_path_factory.mktemp("matrices")
    _write_good(directory)
    (directory / "broken.mtx").write_text("%%MatrixMarket matrix coordinate real general\n3 3 2\n1 1 oops\n")
    scipy.io.mmwrite(directory / "indefinite.mtx", (poisson2d(6) - 2.0 * sp.eye(36)).tocsr())
    return directory


@pytest.fixture(scope="module")
def run(matrices, engine, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    result = evaluate_linsys(out, matrices, engine=engine, probe_steps=[PROBE], rtol=RTOL, maxiter=2000,
                             progress=False)
    return out, result


def _read(path):
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, [dict(zip(header, line)) for line in reader]


def test_csv_has_the_contract_columns_in_order(run):
    out, _ = run
    header, _ = _read(out / "results.csv")
    assert header[: len(CONTRACT)] == CONTRACT
    assert header == list(CSV_COLUMNS) == [*CONTRACT, "scaling", "bounds", "error"]


def test_every_method_runs_and_converges_on_the_spd_matrices(run):
    out, _ = run
    _, rows = _read(out / "results.csv")
    good = [r for r in rows if r["matrix"] in ("poisson8", "poisson10")]
    expected = {("cg", "0", ""), ("scipy_cg", "0", ""), ("chebyshev", str(PROBE), "ritz"), ("chebyshev", str(PROBE), "petsc"),
                ("autospec", str(PROBE), "learned"), ("nystrom", "0", "adaptive"), ("oracle", "0", "exact")}
    for matrix in ("poisson8", "poisson10"):
        for scaling in ("none", "jacobi"):
            mine = [r for r in good if r["matrix"] == matrix and r["scaling"] == scaling]
            assert {(r["method"], r["probe_steps"], r["bounds"].split("-k")[0]) for r in mine} == expected
    for r in good:
        assert r["error"] == "" and r["converged"] == "True", r
        assert float(r["rel_residual"]) <= 10 * RTOL and int(r["outer_iters"]) > 0 and int(r["matvecs"]) > 0
        assert r["n"] in ("64", "100") and float(r["seconds"]) >= 0
    # the polynomial methods need fewer outer iterations than CG, and the oracle is the best of them
    for matrix in ("poisson8", "poisson10"):
        by = {r["method"] + r["bounds"]: int(r["outer_iters"]) for r in good if r["matrix"] == matrix
              and r["scaling"] == "none"}
        oracle = next(v for k, v in by.items() if k.startswith("oracle"))
        assert oracle <= min(by["chebyshevritz"], by["chebyshevpetsc"]) < by["cg"]
        assert abs(by["scipy_cg"] - by["cg"]) <= 2  # SciPy's CG is the same algorithm


def test_malformed_and_non_spd_matrices_are_reported_in_their_rows(run):
    out, result = run
    _, rows = _read(out / "results.csv")
    broken = [r for r in rows if r["matrix"] == "broken"]
    indefinite = [r for r in rows if r["matrix"] == "indefinite"]
    assert broken and indefinite
    assert all("not a valid Matrix Market file" in r["error"] and r["converged"] == "False" for r in broken)
    assert all("not positive definite" in r["error"] and r["converged"] == "False" for r in indefinite)
    assert all(r["outer_iters"] == "" for r in broken + indefinite)
    # the run went on after the failures: the matrices are evaluated in name order
    assert list(dict.fromkeys(r.matrix for r in result.rows)) == ["broken", "indefinite", "poisson10", "poisson8"]


def test_markdown_table_and_plots_are_written(run):
    out, result = run
    text = (out / "results.md").read_text()
    assert "## scaling: none" in text and "## scaling: jacobi" in text
    assert (f"| matrix | n | cg | scipy_cg | chebyshev-ritz@{PROBE} | chebyshev-petsc@{PROBE} | autospec@{PROBE} | nystrom "
            "| oracle |") in text
    assert "median autospec / best Chebyshev" in text and "median autospec / oracle" in text
    assert "## Errors" in text and "broken" in text and "indefinite" in text
    for matrix in ("poisson8", "poisson10"):
        for scaling in ("none", "jacobi"):
            for kind in ("residuals", "polynomial"):
                png = out / f"{matrix}-{scaling}-{kind}.png"
                assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(result.plots) == 8
    summary = {(s["scaling"], s["probe_steps"]): s for s in result.summary}
    assert summary[("all", PROBE)]["cases"] == 4
    # the untrained engine is exactly Chebyshev with ritz bounds
    assert summary[("all", PROBE)]["vs_chebyshev"] >= 1.0


def test_evaluate_cli(tmp_path, engine):
    directory = tmp_path / "mats"
    directory.mkdir()
    _write_good(directory)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "evaluate.py", "task=linsys", f"eval.matrix_dir={directory}", f"eval.output_dir={out}",
         f"eval.engine={engine}", f"eval.probe_steps=[{PROBE}]", "eval.scalings=[jacobi]", "eval.plots=false",
         f"hydra.run.dir={tmp_path / 'hydra'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    header, rows = _read(out / "results.csv")
    assert header[: len(CONTRACT)] == CONTRACT
    assert len(rows) == 2 * 7 and all(r["converged"] == "True" for r in rows)
    assert (out / "results.md").is_file() and "median autospec / best Chebyshev" in proc.stdout


def test_evaluate_cli_writes_only_into_the_output_dir(tmp_path):
    """``eval.output_dir`` given: it is the run directory too — no ``outputs/evaluate/<time>`` in the
    working directory, no empty ``evaluate.log`` (issue 18, point 8)."""
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    proc = subprocess.run(
        [sys.executable, str(REPO / "evaluate.py"), "task=linsys", "eval.matrix_dir=null", "eval.gallery=[poisson2d_8]",
         f"eval.output_dir={out}", f"eval.probe_steps=[{PROBE}]", "eval.scalings=[none]", "eval.plots=false",
         "eval.oracle_max_n=0"],
        cwd=work, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(work.iterdir()) == []
    assert (out / "results.csv").is_file() and not list(out.glob("*.log"))


def test_missing_engine_fails_only_the_autospec_rows(tmp_path):
    result = evaluate_linsys(tmp_path, None, gallery=["poisson2d_16"], engine=tmp_path / "nowhere",
                             probe_steps=[PROBE], scalings=["none"], plots=False, progress=False)
    by_method = {r.method: r for r in result.rows}
    assert "could not be loaded" in by_method["autospec"].error and not by_method["autospec"].converged
    assert all(r.converged and not r.error for r in result.rows if r.method != "autospec")
    assert by_method["cg"].n == 256
    assert "could not be loaded" in (tmp_path / "results.md").read_text()


def test_failed_downloads_become_rows(tmp_path, engine, monkeypatch):
    cached = tmp_path / "HB" / "tiny.mtx"
    cached.parent.mkdir()
    scipy.io.mmwrite(cached, poisson2d(5))

    def fake_fetch(names, progress=True):
        assert names == ["HB/tiny", "Nowhere/offline"]
        return [cached], {"Nowhere/offline": OSError("offline: no route to host")}

    monkeypatch.setattr(runner, "fetch_suite", fake_fetch)
    result = evaluate_linsys(tmp_path / "out", None, suite=["HB/tiny", "Nowhere/offline"], engine=engine,
                             probe_steps=[PROBE], scalings=["none"], plots=False, progress=False)
    assert all(r.converged for r in result.rows if r.matrix == "tiny")
    offline = [r for r in result.rows if r.matrix == "offline"]
    assert offline and all("offline: no route to host" in r.error for r in offline)


def test_summary_ratios():
    def row(matrix, method, iters, bounds="", probe=50, converged=True, scaling="none"):
        return Row(matrix, 10, 10, method, 0 if method == "cg" else 10, probe if method in ("chebyshev", "autospec")
                   else 0, scaling, bounds, outer_iters=iters, converged=converged)

    rows = [row("a", "cg", 110), row("a", "chebyshev", 20, "ritz"), row("a", "chebyshev", 30, "petsc"),
            row("a", "autospec", 10, "learned"), row("a", "oracle", 8, "exact-k0"),
            row("b", "cg", 55), row("b", "chebyshev", 9, "ritz", converged=False), row("b", "chebyshev", 10, "petsc"),
            row("b", "autospec", 12, "fallback-ritz"), row("b", "oracle", 12, "exact-k2")]
    (s,) = summarize(rows)
    assert s["cases"] == 2 and s["le_chebyshev"] == 0.5 and s["fallbacks"] == 1
    assert math.isclose(s["vs_chebyshev"], (0.5 + 1.2) / 2)
    assert math.isclose(s["vs_oracle"], (10 / 8 + 1.0) / 2)
    assert math.isclose(s["overhead_autospec"], (10 * 11 / 110 + 12 * 11 / 55) / 2)
    assert math.isclose(s["overhead_chebyshev"], (20 * 11 / 110 + 10 * 11 / 55) / 2)


# -- the oracle -------------------------------------------------------------------------------------

def _chebyshev_value(lam, degree=10):
    """``max |1 − λ p(λ)|`` of the degree-d Chebyshev preconditioner on the exact interval [λmin, λmax]."""
    b = lam[-1]
    poly = chebyshev_three_term(torch.tensor(lam[0] / b), torch.tensor(1.0), degree)
    x = torch.from_numpy(lam / b)
    return float((1 - x * evaluate(poly, x)).abs().max())


@pytest.mark.parametrize("name", ["nos4", "bcsstk01"])
def test_minimax_is_positive_and_beats_chebyshev_on_exact_bounds(name):
    from autospec.matrices.io import read_matrix

    lam, _ = spectrum(read_matrix(REPO / "data" / "suitesparse" / "unit" / f"{name}.mtx"), vectors=False)
    for k in (0, 1, 4):
        poly = minimax_polynomial(lam, 10, k)
        p = poly(lam)
        assert (p > 0).all() and poly.min_value > 0
        assert math.isclose(poly.value, np.abs(1 - lam[k:] * p[k:]).max(), rel_tol=1e-9, abs_tol=1e-12)
    assert minimax_polynomial(lam, 10, 0).value <= _chebyshev_value(lam) + 1e-9


def test_minimax_on_a_subsample_holds_on_every_eigenvalue():
    lam = np.logspace(-3, 0, 3000)
    full = minimax_polynomial(lam, 8)
    sampled = minimax_polynomial(lam, 8, max_points=150)  # the exchange adds the violators
    assert sampled.value <= full.value * (1 + 1e-6)
    assert (sampled(lam) > 0).all()
    assert full.value <= _chebyshev_value(lam, 8) + 1e-9


def test_quotient_vandermonde_divides_by_x():
    rng = np.random.default_rng(0)
    a = rng.standard_normal(7)
    a[0] += 1 - (-1.0) ** np.arange(7) @ a  # R(0) = 1
    x = np.linspace(1e-3, 1, 50)
    expected = (1 - unit_vandermonde(x, 6) @ a) / x
    np.testing.assert_allclose(quotient_vandermonde(x, 6) @ a, expected, rtol=1e-9)


def test_oracle_iterations_in_the_eigenbasis_match_real_pcg():
    A = poisson2d(10)
    b = np.random.default_rng(3).standard_normal(100)
    M, info = oracle_preconditioner(A, b, degree=6, ks=(0, 1, 2, 4), rtol=RTOL, maxiter=500, shortlist=4)
    assert set(info.candidates) == set(info.predicted) == set(info.iterations) == {0, 1, 2, 4}
    assert info.k in (0, 1, 2, 4) and info.iterations[info.k] == min(info.iterations.values())
    for k in info.iterations:  # well conditioned: the eigenbasis model is the real count
        assert abs(info.iterations[k] - info.predicted[k]) <= 1
    x, real = pcg(M.op, b, rtol=RTOL, maxiter=500, M=M)  # the returned preconditioner is the chosen one
    assert real.converged and real.outer_iters == info.solve_info.outer_iters == info.iterations[info.k]
    np.testing.assert_allclose(x.numpy(), info.solution.numpy())
    lam, Q = spectrum(A)
    P = np.stack([info.candidates[k](lam) for k in (0, 4)], -1)
    both = pcg_iterations_on_spectrum(lam, Q.T @ b, P, RTOL, 500)
    assert both.tolist() == [info.predicted[0], info.predicted[4]]
    _, short = oracle_preconditioner(A, b, degree=6, ks=(0, 1, 2, 4), rtol=RTOL, maxiter=500, shortlist=1)
    assert len(short.iterations) == 1


def test_oracle_rejects_indefinite_matrices():
    from autospec.errors import NotPositiveDefiniteError

    with pytest.raises(NotPositiveDefiniteError, match="not positive definite"):
        oracle_preconditioner(poisson2d(4) - 3.0 * sp.eye(16))
