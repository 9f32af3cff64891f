"""Counts of every front door on five shared matrices, for before/after checks of changes that must
not move a number (issue 17's contract commits): ``python benchmarks/check_contract_counts.py`` on
two snapshots, then ``diff``. Runs with the old ``seed=`` keyword too (none is passed)."""

import warnings

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import autospec
from autospec import matfun
from autospec.eigen.api import solve_eigenproblem
from autospec.matrices.io import read_matrix
from common import SHARED

warnings.simplefilter("ignore")
out = []
for name in ["bcsstk01", "nos4", "bcsstk05", "662_bus", "gr_30_30"]:
    A = sp.csr_matrix(read_matrix(SHARED / f"{name}.mtx"))
    n = A.shape[0]
    b = np.random.default_rng(0).standard_normal(n)
    for m in ["cg", "chebyshev", "autospec"]:
        for sc in ["none", "jacobi"]:
            x, i = autospec.solve(A, b, method=m, scaling=sc)
            out.append((name, m, sc, i.outer_iters, i.matvecs, i.deflated, f"{i.rel_residual:.6e}"))
    M = autospec.load("linsys-cg-d10").preconditioner(A)
    it = []
    spla.cg(A, b, M=M, rtol=1e-8, maxiter=3000, callback=lambda xk: it.append(1))
    out.append((name, "scipy+M", len(it)))
    for m in ["chfsi", "rsi", "autospec", "lanczos", "lobpcg"]:
        v, V, i = autospec.eigsh(A, k=4, method=m, max_matvecs=200 * n)
        out.append((name, m, i.outer_iters, i.matvecs, i.converged, f"{i.max_residual:.6e}"))
        v, V, i = solve_eigenproblem(A, k=4, method=m, whole_space=False, max_matvecs=200 * n)
        out.append((name, "sep-" + m, i.outer_iters, i.matvecs, i.converged))
    for m in ["chebyshev", "autospec"]:
        y, i = matfun.apply(A, b, method=m)
        out.append((name, "apply-" + m, i.matvecs, f"{i.rel_error:.6e}", i.converged))
for row in out:
    print(*row)
