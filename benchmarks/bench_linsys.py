"""Foundation benchmark: autospec CG vs SciPy CG, and Chebyshev-PCG (d=10, probe 50/200).

    python benchmarks/bench_linsys.py [--matrix-dir ../shared/data/suitesparse] [--max-n 20000]

Prints one table for the SPD matrices (iterations and wall time from one run) and one for the
non-SPD matrices (what ``autospec.solve`` reports for each: an exception class or a result).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import autospec
from autospec.linsys.cg import scipy_cg_iterations
from autospec.matrices.io import read_matrix
from common import SHARED, error_path_matrices, print_table, spd_matrices

RTOL, MAXITER, DEGREE = 1e-8, 20000, 10
CHEB_MAXITER = 2000  # outer iterations (x11 matvecs each); a '*' marks runs stopped there


def spd_rows(directory: Path, max_n: int) -> list[dict]:
    rows = []
    for name, path in spd_matrices(directory, max_n=max_n):
        A = read_matrix(path)
        b = np.random.default_rng(0).standard_normal(A.shape[0])
        t = time.perf_counter()
        scipy_iters, _, _ = scipy_cg_iterations(A, b, RTOL, MAXITER)
        scipy_s = time.perf_counter() - t
        _, cg = autospec.solve(A, b, method="cg", rtol=RTOL, maxiter=MAXITER)
        row = {"matrix": name, "n": A.shape[0], "nnz": A.nnz, "cg": cg.outer_iters, "scipy_cg": scipy_iters,
               "diff": cg.outer_iters - scipy_iters, "cg_s": cg.seconds, "scipy_s": scipy_s,
               "cg_true_res": cg.rel_residual}
        for m in (50, 200):
            _, ch = autospec.solve(A, b, method="chebyshev", degree=DEGREE, probe_steps=m, rtol=RTOL,
                                   maxiter=CHEB_MAXITER)
            row |= {f"cheb{m}_outer": ch.outer_iters if ch.converged else f"{ch.outer_iters}*",
                    f"cheb{m}_matvecs": ch.matvecs, f"cheb{m}_s": ch.seconds}
        rows.append(row)
        print(row, flush=True)
    return rows


def error_rows(directory: Path) -> list[dict]:
    rows = []
    for name, path, banner in error_path_matrices(directory):
        row = {"matrix": name, "banner": banner.replace("matrix coordinate ", "")}
        try:
            A = read_matrix(path)
            b = np.ones(A.shape[0])
        except autospec.AutospecError as err:
            rows.append(row | {"cg": f"{type(err).__name__} (reading)", "chebyshev": ""})
            continue
        for method in ("cg", "chebyshev"):
            try:
                _, info = autospec.solve(A, b, method=method, rtol=RTOL, maxiter=MAXITER)
                row[method] = f"converged={info.converged}, iters={info.outer_iters}, rel_res={info.rel_residual:.2e}"
            except autospec.AutospecError as err:
                row[method] = f"{type(err).__name__}: {str(err)[:70]}"
        rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--matrix-dir", type=Path, default=SHARED)
    parser.add_argument("--max-n", type=int, default=20000)
    args = parser.parse_args()
    rows = spd_rows(args.matrix_dir, args.max_n)
    print_table(rows, ["matrix", "n", "nnz", "cg", "scipy_cg", "diff", "cg_s", "scipy_s", "cg_true_res",
                       "cheb50_outer", "cheb50_matvecs", "cheb50_s", "cheb200_outer", "cheb200_matvecs", "cheb200_s"])
    small = [r for r in rows if r["n"] <= 5000]
    print(f"\nCG vs SciPy on {len(small)} SPD matrices with n <= 5000: max |diff| = "
          f"{max(abs(r['diff']) for r in small)}, within ±2 on {sum(abs(r['diff']) <= 2 for r in small)}")
    ratio = np.median([r["cg_s"] / r["scipy_s"] for r in rows])
    print(f"median wall-time ratio autospec CG / SciPy CG: {ratio:.2f}\n")
    print_table(error_rows(args.matrix_dir), ["matrix", "banner", "cg", "chebyshev"])


if __name__ == "__main__":
    main()
