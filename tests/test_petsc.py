"""autospec.petsc (issue 19): the polynomial preconditioners inside PETSc's KSPCG, on 1 and 2 MPI ranks.

Needs petsc4py (``make test-petsc`` builds ``.venv-petsc`` on Debian's ``python3-petsc4py-real``);
where it is absent or unimportable every test here is skipped with the reason. The 2-rank test also
needs ``mpiexec`` (Debian's ``openmpi-bin``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import autospec
from autospec.matrices.gallery import MissingDependencyError

try:
    import autospec.petsc as ap

    PETSc = ap.petsc()
    WHY = ""
except MissingDependencyError as exc:
    PETSc, WHY = None, f"petsc4py absent or unimportable here: {exc}"

pytestmark = pytest.mark.skipif(PETSc is None, reason=WHY or "petsc4py")
REPO = Path(__file__).resolve().parents[1]
PROBLEM = "poisson2d_32"
DRIVER = """
import json, sys, numpy as np
import autospec.petsc as ap
from autospec.matrices.gallery import make_problem
PETSc = ap.petsc()
_, A = make_problem(sys.argv[1])
mat = ap.matrix_from_scipy(A)
b = ap.vector(mat, np.random.default_rng(0).standard_normal(A.shape[0]))
rows = []
for method, native in (("cg", False), ("chebyshev", False), ("chebyshev", True), ("autospec", False)):
    x, info = ap.solve(mat, b, method, rtol=1e-8, native=native)
    rows.append({"method": method, "native": native, "outer_iters": info.outer_iters, "matvecs": info.matvecs,
                 "reductions": info.reductions, "probe_reductions": info.probe_reductions,
                 "mpi_reductions": info.mpi_reductions, "converged": info.converged, "rel_residual": info.rel_residual,
                 "local_rows": mat.getLocalSize()[0]})
if PETSc.COMM_WORLD.getRank() == 0:
    print(json.dumps(rows))
"""


def _problem():
    from autospec.matrices.gallery import make_problem

    _, A = make_problem(PROBLEM)
    return A, np.random.default_rng(0).standard_normal(A.shape[0])


def _run_driver(ranks: int) -> list[dict]:
    cmd = [sys.executable, "-c", DRIVER, PROBLEM]
    if ranks > 1:
        cmd = [shutil.which("mpiexec"), "--allow-run-as-root", "--oversubscribe", "-n", str(ranks), *cmd]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_distributed_probe_matches_the_library_probe():
    A, _ = _problem()
    mat = ap.matrix_from_scipy(A)
    mine, ref = ap.lanczos(mat, 30, seed=3, start="torch"), autospec.lanczos(A, 30, seed=3)
    np.testing.assert_allclose(mine.ritz.numpy(), ref.ritz.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(float(mine.upper), float(ref.upper), rtol=1e-8)
    np.testing.assert_allclose(mine.weights.numpy(), ref.weights.numpy(), atol=1e-8)
    assert mine.matvecs == 30 and mine.reductions == 1 + 2 * 30 and mine.size == A.shape[0]


@pytest.mark.parametrize("method", ["chebyshev", "autospec"])
def test_shell_applies_the_library_polynomial(method):
    import torch

    from autospec.core.operators import as_operator
    from autospec.linsys.preconditioners import PolynomialPreconditioner

    A, v = _problem()
    mat = ap.matrix_from_scipy(A)
    poly = ap.polynomial(mat, method)
    shell = ap.PolynomialShell(poly)
    pc = PETSc.PC().create()
    pc.setOperators(mat)
    shell.setUp(pc)
    x, y = ap.vector(mat, v), mat.createVecRight()
    shell.apply(pc, x, y)
    ref = PolynomialPreconditioner(as_operator(A), poly.poly, poly.scale)(torch.from_numpy(v)[:, None])[:, 0].numpy()
    np.testing.assert_allclose(y.getArray(), ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())


def test_one_rank_matches_autospec_solve_and_the_native_chebyshev():
    A, b_np = _problem()
    mat = ap.matrix_from_scipy(A)
    b = ap.vector(mat, b_np)
    for method in ("cg", "chebyshev", "autospec"):
        kwargs = {} if method == "cg" else {"start": "torch"}
        x, info = ap.solve(mat, b, method, rtol=1e-8, **kwargs)
        if method == "autospec":  # the learned polynomial without deflation, as SciPy's M (what a PC can be)
            _, ref = autospec.pcg(A, b_np, M=autospec.load("linsys-cg-d10").preconditioner(A), rtol=1e-8)
        else:
            _, ref = autospec.solve(A, b_np, method=method, rtol=1e-8)
        assert info.converged and info.rel_residual <= 1e-8
        assert abs(info.outer_iters - ref.outer_iters) <= max(1, 0.02 * ref.outer_iters), (method, info, ref)
        np.testing.assert_allclose(x.getArray(), np.linalg.solve(A.toarray(), b_np), rtol=0, atol=1e-5)
    shell = ap.solve(mat, b, "chebyshev", rtol=1e-8)[1]
    native = ap.solve(mat, b, "chebyshev", rtol=1e-8, native=True)[1]
    assert native.interval == shell.interval and native.outer_iters == shell.outer_iters
    # the polynomial costs no global reduction: both spend CG's 3 per iteration (2 dots, the residual norm)
    assert shell.reductions == native.reductions <= 3 * shell.outer_iters + 1


def test_native_needs_an_interval():
    A, b_np = _problem()
    mat = ap.matrix_from_scipy(A)
    poly = ap.polynomial(mat, "chebyshev")
    poly.interval = None
    ksp = PETSc.KSP().create()
    ksp.setOperators(mat)
    from autospec.errors import InputValueError

    with pytest.raises(InputValueError, match="not a Chebyshev polynomial"):
        import unittest.mock

        with unittest.mock.patch.object(ap, "polynomial", return_value=poly):
            ap.set_preconditioner(ksp, "chebyshev", native=True)


@pytest.mark.skipif(shutil.which("mpiexec") is None, reason="mpiexec absent (Debian's openmpi-bin)")
def test_two_ranks_match_one_rank():
    one, two = _run_driver(1), _run_driver(2)
    assert two[0]["local_rows"] < 32 * 32  # the rows really are split
    for a, b in zip(one, two):
        assert a["method"] == b["method"] and b["converged"]
        assert abs(a["outer_iters"] - b["outer_iters"]) <= 0.02 * a["outer_iters"], (a, b)
        assert b["reductions"] == a["reductions"]
        assert b["mpi_reductions"] >= b["reductions"]  # PETSc's own MPI count (one rank needs none)


def test_native_chebyshev_applies_the_same_polynomial_and_keeps_the_users_prefix():
    A, v = _problem()
    mat = ap.matrix_from_scipy(A)
    x = ap.vector(mat, v)
    out = {}
    for native in (False, True):
        ksp = PETSc.KSP().create()
        ksp.setOptionsPrefix("mine_")
        ksp.setOperators(mat)
        ksp.setType(PETSc.KSP.Type.CG)
        ap.set_preconditioner(ksp, "chebyshev", native=native)
        ksp.setUp()
        y = mat.createVecRight()
        ksp.getPC().apply(x, y)
        out[native] = y.getArray().copy()
        assert ksp.getOptionsPrefix() == "mine_"
    np.testing.assert_allclose(out[True], out[False], rtol=1e-9, atol=1e-12 * np.abs(out[False]).max())
