"""evaluate.py task=matfun and autospec.matfun_evaluation: the CSV contract, failures kept in their
rows, exact references, the κ filter of the summary, config errors, and the optimizer-state matrices."""

import csv
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
from conftest import REPO, poisson2d

from autospec import matfun
from autospec.matfun import optimizer_state
from autospec.errors import InputValueError
from autospec.evaluation.matfun import CSV_COLUMNS, evaluate_config, evaluate_matfun

CONTRACT = ["case", "n", "function", "method", "dtype", "iters", "matmuls", "seconds", "rel_error",
            "converged"]  # DESIGN.md §7, in this order
SMALL_STATE = {"steps": 20, "d_in": 6, "hidden": 12, "classes": 3, "batch": 8}
FUNCTIONS = [
    {"function": "inv_sqrt", "dtype": "float64", "tol": 1e-6, "methods": ["boom", "newton_schulz", "prism", "eigh"],
     "references": ["prism"], "max_kappa": 1e6},
    {"function": "sqrt", "dtype": "float64", "tol": 1e-6, "methods": ["newton_schulz", "eigh"]},
    {"function": "polar", "dtype": "bfloat16", "tol": None, "max_iters": 5, "methods": ["muon", "polar_express"],
     "references": ["polar_express"]},
    {"function": "apply", "dtype": "float64", "f": ["inv_sqrt", "inv"], "degree": 8, "probe_steps": 10,
     "methods": ["chebyshev"]},
]


def _boom(A, *, tol, max_iters, engine):
    raise RuntimeError("this method always fails")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny evaluation: 2 synthetic cases (κ 1e2, 1e8), an SPD and an indefinite matrix file, the
    optimizer state of a tiny MLP; a registered method that always fails."""
    directory = tmp_path_factory.mktemp("matrices")
    scipy.io.mmwrite(directory / "poisson5.mtx", poisson2d(5))
    scipy.io.mmwrite(directory / "indefinite.mtx", (poisson2d(4) - 2.0 * sp.eye(16)).tocsr())
    out = tmp_path_factory.mktemp("out")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(matfun.METHODS["inv_sqrt"], "boom", _boom)
        result = evaluate_matfun(out, synthetic={"n": 24, "families": ["log_uniform"], "kappas": [1e2, 1e8]},
                                 suitesparse={"matrix_dir": directory}, optimizer_state=SMALL_STATE,
                                 functions=FUNCTIONS, plots=False, progress=False)
    return out, result


def _read(path):
    """(header, rows as dicts) of a CSV file."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    return list(reader.fieldnames), rows


def test_csv_has_the_contract_columns_in_order(run):
    out, _ = run
    header, rows = _read(out / "results.csv")
    assert header == [*CONTRACT, "error"] == list(CSV_COLUMNS)
    assert rows and all(len(r) == len(header) for r in rows)


def test_cases_functions_and_methods(run):
    _, result = run
    cases = {r.case.rsplit("/", 1)[0] for r in result.rows}
    assert {"synthetic/log_uniform/s30000000", "synthetic/log_uniform/s30000001", "suitesparse/poisson5",
            "suitesparse/indefinite", "optimizer/fc2.gradient", "optimizer/fc2.shampoo_L"} <= cases
    grad = [r for r in result.rows if "fc1.momentum" in r.case]
    assert grad and {r.function for r in grad} == {"polar"}  # rectangular state: polar only
    stat = {r.function for r in result.rows if "fc1.shampoo_R" in r.case}
    assert stat == {"inv_sqrt", "sqrt", "polar", "apply:inv_sqrt", "apply:inv"}
    synth = [r for r in result.rows if r.case.startswith("synthetic") and r.function == "inv_sqrt"]
    kappas = sorted(float(r.case.split("/k")[-1]) for r in synth if r.method == "eigh")  # realised κ in the name
    assert kappas == pytest.approx(sorted(r.kappa for r in synth if r.method == "eigh"), rel=0.06)
    assert kappas[0] <= 1e2 and kappas[1] > 1e6
    assert not [r for r in result.rows if r.case.startswith("optimizer") and r.method != "boom" and r.error]
    action = [r for r in result.rows if r.function.startswith("apply") and not r.error]
    assert action and all(r.iters == 8 and r.matmuls > r.iters for r in action)  # matvecs, probe included


def test_failing_method_is_a_row_and_the_run_goes_on(run):
    _, result = run
    boom = [r for r in result.rows if r.method == "boom"]
    assert len(boom) == len({r.case for r in result.rows if r.function == "inv_sqrt"}) > 0
    assert all(r.error and not r.converged for r in boom)
    assert all("RuntimeError: this method always fails" in r.error for r in boom if "indefinite" not in r.case)
    ns = [r for r in result.rows if r.function == "inv_sqrt" and r.method == "newton_schulz"
          and "indefinite" not in r.case]
    assert ns and all(r.error == "" and r.converged and r.rel_error < 1e-5 for r in ns)
    # the indefinite matrix fails the SPD functions with the library's reason, but its polar rows run
    indefinite = [r for r in result.rows if "indefinite" in r.case]
    assert all("positive definite" in r.error for r in indefinite if r.function != "polar" and r.method != "boom")
    assert all(r.error == "" for r in indefinite if r.function == "polar")


def test_exact_reference_rows_are_exact(run):
    _, result = run
    eigh = [r for r in result.rows if r.method == "eigh" and not r.error]
    assert len(eigh) >= 10
    assert all(r.rel_error < 1e-9 and r.matmuls == 0 and r.converged for r in eigh)
    assert all(r.rel_error < 1e-13 for r in eigh if r.kappa < 1e4 or r.function == "sqrt")


def test_summary_filters_kappa_and_pairs_ratios(run):
    out, result = run
    kappas = {r.case: r.kappa for r in result.rows if r.function == "inv_sqrt" and "indefinite" not in r.case}
    small = sum(k <= 1e6 for k in kappas.values())
    assert 0 < small < len(kappas)
    rows = {(s["function"], s["dtype"], s["method"]): s for s in result.summary}
    assert rows[("inv_sqrt", "float64", "newton_schulz")]["cases"] == small + 1  # + the indefinite matrix
    assert rows[("inv_sqrt", "float64", "newton_schulz")]["failed"] == 1
    assert rows[("sqrt", "float64", "newton_schulz")]["cases"] == len(kappas) + 1  # no max_kappa there
    ratio, pairs = rows[("inv_sqrt", "float64", "newton_schulz")]["ratios"]["prism"]
    assert pairs == small and ratio > 0
    assert rows[("inv_sqrt", "float64", "boom")]["failed"] == small + 1
    err_ratio, _ = rows[("polar", "bfloat16", "muon")]["ratios"]["polar_express"]
    assert math.isfinite(err_ratio)
    text = (out / "results.md").read_text()
    assert "## Summary" in text and "## inv_sqrt float64 tol 1e-06 (summary: κ <= 1e+06)" in text
    assert "## Errors" in text and "this method always fails" in text


def test_plots_are_written(tmp_path):
    result = evaluate_matfun(tmp_path, synthetic={"n": 16, "families": ["uniform"], "kappas": [1e3]},
                             functions=FUNCTIONS[1:3], progress=False)
    kappa = result.rows[0].case[-7:].replace("+", "_")
    assert [p.name for p in result.plots] == [f"synthetic_uniform_s30000000_k{kappa}.png"]
    assert result.plots[0].stat().st_size > 1000


def test_optimizer_state_is_reproducible_and_spd_where_it_should_be():
    first, again = optimizer_state.record(**SMALL_STATE), optimizer_state.record(**SMALL_STATE)
    other = optimizer_state.record(seed=1, **SMALL_STATE)
    assert [m.name for m in first] == [f"fc{i}.{k}" for i in (1, 2, 3) for k in optimizer_state.KINDS]
    for a, b, c in zip(first, again, other):
        assert np.array_equal(a.matrix, b.matrix) and not np.array_equal(a.matrix, c.matrix)
        assert a.matrix.dtype == np.float64 and np.isfinite(a.matrix).all()
        if a.spd:
            assert np.array_equal(a.matrix, a.matrix.T)
            assert np.linalg.eigvalsh(a.matrix).min() > 0
    by = {m.name: m.matrix for m in first}
    assert by["fc1.gradient"].shape == by["fc1.momentum"].shape == (12, 6)
    assert by["fc1.shampoo_L"].shape == (12, 12) and by["fc1.shampoo_R"].shape == (6, 6)
    assert by["fc3.gradient"].shape == (3, 12)


@pytest.mark.parametrize("cfg, words", [
    ({"output_dir": "x", "synthtic": {}}, ["synthtic", "known"]),
    ({"output_dir": "x", "synthetic": {"n": 8, "kapas": [10]}}, ["synthetic", "kapas"]),
    ({"output_dir": "x", "optimizer_state": {"stepz": 3}}, ["optimizer_state", "stepz"]),
    ({"output_dir": "x", "synthetic": {"n": 8}, "functions": [{"function": "inv_sqrt", "methods": ["nope"]}]},
     ["nope", "newton_schulz"]),
    ({"output_dir": "x", "synthetic": {"n": 8}, "functions": [{"function": "cbrt", "methods": ["eigh"]}]},
     ["cbrt"]),
    ({"output_dir": "x", "synthetic": {"n": 8}, "functions": [{"function": "polar", "methods": ["muon"],
                                                                 "tol": None}]}, ["max_iters"]),
    ({"output_dir": "x", "synthetic": {"n": 8}, "functions": [{"function": "sqrt", "methods": ["eigh"],
                                                                 "tolerance": 1}]}, ["tolerance"]),
])
def test_bad_config_is_a_clear_error(cfg, words, tmp_path):
    cfg["output_dir"] = str(tmp_path)
    with pytest.raises(InputValueError) as err:
        evaluate_config(cfg)
    assert all(w in str(err.value) for w in words), str(err.value)


@pytest.mark.slow
def test_cli_runs_the_matfun_task(tmp_path):
    cmd = [sys.executable, "evaluate.py", "task=matfun", f"eval.output_dir={tmp_path}", "eval.synthetic.n=16",
           "eval.synthetic.families=[uniform]", "eval.synthetic.kappas=[100]", "eval.suitesparse=null",
           "eval.optimizer_state=null", "eval.plots=false"]
    done = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    header, rows = _read(tmp_path / "results.csv")
    assert header[: len(CONTRACT)] == CONTRACT and rows
    assert "median matmuls" in done.stdout
    bad = subprocess.run([*cmd, "+eval.bogus=1"], check=False, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "bogus" in bad.stderr
