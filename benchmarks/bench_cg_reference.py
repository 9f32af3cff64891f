"""How exact can "same iterations as SciPy" be, and the 2-D Poisson figure (issue 2).

    python benchmarks/bench_cg_reference.py [--max-n 5000]

1. SciPy's CG against itself: the same system ``P A Pᵀ (P b)`` with a random symmetric permutation
   P (seed 1) has identical iterates in exact arithmetic; only the floating-point summation order
   changes. For every shared SPD matrix with n <= max_n: SciPy's iterations on A and on PAPᵀ next to
   autospec's CG on A (rtol 1e-8, maxiter 20000, b Gaussian seed 0).
2. 2-D Poisson 100×100: outer iterations of plain CG, Chebyshev-PCG and the shipped engine (d = 10,
   probe 50, rtol 1e-8).
"""

from __future__ import annotations

import argparse

import numpy as np

import autospec
from autospec.linsys.cg import scipy_cg_iterations
from autospec.matrices.gallery import poisson2d
from autospec.matrices.io import read_matrix
from common import print_table, spd_matrices

RTOL, MAXITER = 1e-8, 20000


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-n", type=int, default=5000)
    args = parser.parse_args()
    rows = []
    for name, path in spd_matrices(max_n=args.max_n):
        A = read_matrix(path).tocsr()
        b = np.random.default_rng(0).standard_normal(A.shape[0])
        perm = np.random.default_rng(1).permutation(A.shape[0])
        scipy_iters, _, _ = scipy_cg_iterations(A, b, RTOL, MAXITER)
        permuted, _, _ = scipy_cg_iterations(A[perm][:, perm].tocsr(), b[perm], RTOL, MAXITER)
        _, ours = autospec.solve(A, b, method="cg", rtol=RTOL, maxiter=MAXITER)
        rows.append({"matrix": name, "n": A.shape[0], "scipy": scipy_iters, "scipy on PAPᵀ − scipy": permuted - scipy_iters,
                     "autospec − scipy": ours.outer_iters - scipy_iters})
    print_table(rows, list(rows[0]))
    within = lambda key: sum(abs(r[key]) <= 2 for r in rows)  # noqa: E731
    print(f"\n{len(rows)} SPD matrices: SciPy on PAPᵀ within ±2 of SciPy on {within('scipy on PAPᵀ − scipy')} "
          f"(max |diff| {max(abs(r['scipy on PAPᵀ − scipy']) for r in rows)}); autospec CG within ±2 on "
          f"{within('autospec − scipy')} (max |diff| {max(abs(r['autospec − scipy']) for r in rows)})")
    A = poisson2d(100)
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    counts = {m: autospec.solve(A, b, method=m, degree=10, probe_steps=50, rtol=RTOL)[1].outer_iters
              for m in ("cg", "chebyshev", "autospec")}
    print(f"2-D Poisson 100x100: cg {counts['cg']}, chebyshev (ritz) {counts['chebyshev']} (target <= 40), "
          f"autospec {counts['autospec']} outer iterations")


if __name__ == "__main__":
    main()
