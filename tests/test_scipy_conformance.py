"""SciPy's own ``cg`` tests against :func:`autospec.pcg` (issue 18, point 9).

SciPy ships its iterative-solver tests in the wheel (``scipy/sparse/linalg/_isolve/tests/
test_iterative.py``). Every test of that file that runs ``cg`` is run here, assertions unchanged,
with ``cg`` replaced by a wrapper that only converts types: the solution is already NumPy for
NumPy input, so the wrapper maps ``info`` to SciPy's integer code (0 converged, else the
iterations done). 42 cases: 8 matrices × 4 case tests, 2 exact-preconditioner tests, and the
solver-level tests of atol, b = 0, x0, positional arguments and invalid atol.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import autospec

iterative = pytest.importorskip("scipy.sparse.linalg._isolve.tests.test_iterative",
                                reason="this SciPy wheel does not ship its iterative-solver tests")
scipy_cg = importlib.import_module("scipy.sparse.linalg._isolve").cg


def cg(*args, **kwargs):
    """``autospec.pcg`` with SciPy's return convention (types only)."""
    x, info = autospec.pcg(*args, **kwargs)
    return x, 0 if info.converged else max(info.outer_iters, 1)


cg.__name__ = "cg"


def _cases():
    cases = [case for case in iterative.IterativeParams().generate_tests() if case.solver is scipy_cg]
    for case in cases:
        case.solver = cg
    return cases


CASES = _cases()
IDS = [case.name for case in CASES]
PER_CASE = ("test_maxiter", "test_convergence", "test_precond_dummy", "test_x0_equals_Mb")


def test_the_suite_has_42_cg_cases():
    inverse = [c for c in iterative.IterativeParams().cases if c.name in ("poisson1d", "poisson2d")]
    solver_level = 5 + 3  # atol, zero rhs, x0 working, x0 exact, positional; invalid atol × 3
    assert len(CASES) == 8 and len(CASES) * len(PER_CASE) + len(inverse) + solver_level == 42


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("test", PER_CASE)
def test_case(test, case):
    getattr(iterative, test)(case)


@pytest.mark.parametrize("name", ["poisson1d", "poisson2d"])
def test_precond_inverse(name, monkeypatch):
    case = next(c for c in iterative.IterativeParams().cases if c.name == name)
    monkeypatch.setattr(iterative, "_SOLVERS", [cg])
    iterative.test_precond_inverse(case)


@pytest.mark.parametrize("test", ["test_atol", "test_zero_rhs", "test_x0_working", "test_positional_error"])
def test_solver_level(test):
    getattr(iterative, test)(cg)


def test_x0_solves_problem_exactly():
    iterative.test_x0_solves_problem_exactly(cg)


@pytest.mark.parametrize("atol", ["legacy", None, -1])
def test_invalid_atol(atol):
    iterative.test_invalid_atol(cg, atol)


def test_torch_input_gets_torch_back_and_callbacks_get_the_callers_type():
    torch = pytest.importorskip("torch")
    A = CASES[0].A
    seen = []
    x, _ = autospec.pcg(A, CASES[0].b, callback=seen.append)
    assert isinstance(x, np.ndarray) and all(isinstance(xk, np.ndarray) for xk in seen)
    seen.clear()
    x, _ = autospec.pcg(torch.from_numpy(A.toarray()), torch.from_numpy(CASES[0].b), callback=seen.append)
    assert isinstance(x, torch.Tensor) and all(isinstance(xk, torch.Tensor) for xk in seen)
