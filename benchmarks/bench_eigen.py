"""Lowest-k eigenpairs of the shared SuiteSparse matrices: ChFSI vs Lanczos (ARPACK) vs LOBPCG vs RSI.

For every real symmetric matrix in the directory with k < n <= --max-n (rectangular, complex and
nonsymmetric files are skipped), runs ``autospec.eigen.eigsh`` with each method and prints one row:
matrix, n, method, outer_iters, matvecs (probe included), seconds, max_residual (the common
definition ``max_j ‖Av_j − θ_j v_j‖/‖A‖_est``), converged, why it stopped, and ``eig_err`` =
``max_j |θ_j − λ_j|/‖A‖₂`` against dense ``numpy.linalg.eigvalsh``. Budget: ``--budget-per-row``·n
matvecs (the library default is 200).

    python benchmarks/bench_eigen.py [--dir /work/shared/data/suitesparse] [--k 16] [--tol 1e-8]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# single-threaded BLAS for every method (SciPy's ARPACK/LOBPCG, NumPy, torch): blocks are small and
# threads only add synchronisation; must be set before NumPy loads
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np
import scipy.io
import scipy.sparse as sp
import torch

from autospec.eigen import eigsh

METHODS = ("chfsi", "lanczos", "lobpcg", "rsi")


def load_symmetric(path: Path, max_n: int) -> sp.csr_matrix | None:
    """The matrix as float64 CSR, or None when it is not real, square, symmetric and small enough."""
    A = scipy.io.mmread(str(path))
    A = sp.csr_matrix(A)
    if A.shape[0] != A.shape[1] or A.shape[0] > max_n or np.iscomplexobj(A.data):
        return None
    A = A.astype(np.float64)
    if abs(A - A.T).max() > 1e-10 * abs(A).max():
        return None
    return A


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/work/shared/data/suitesparse")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--tol", type=float, default=1e-8)
    parser.add_argument("--max-n", type=int, default=5000)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--matrices", nargs="*", default=None, help="names to run (default: all)")
    parser.add_argument("--budget-per-row", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)

    files = sorted(p for p in Path(args.dir).iterdir() if p.name.endswith((".mtx", ".mtx.gz")))
    header = (f"{'matrix':<16}{'n':>6} {'method':<8}{'outer':>7}{'matvecs':>9}{'seconds':>9}{'max_res':>10} "
              f"{'conv':<6}{'stop':<10}{'eig_err':>9}")
    print(header)
    print("-" * len(header))
    for path in files:
        name = path.name.split(".")[0]
        if args.matrices and name not in args.matrices:
            continue
        A = load_symmetric(path, args.max_n)
        if A is None or A.shape[0] <= args.k:
            continue
        exact = np.linalg.eigvalsh(A.toarray())
        norm = np.abs(exact).max()
        for method in args.methods:
            vals, _, info = eigsh(A, k=args.k, method=method, tol=args.tol, seed=0,
                                  max_matvecs=args.budget_per_row * A.shape[0])
            err = np.abs(vals.numpy() - exact[: args.k]).max() / norm
            stop = ("tol" if info.converged else "stagnated" if info.stagnated
                    else "budget" if "budget" in info.message else "other")
            print(f"{name:<16}{A.shape[0]:>6} {method:<8}{info.outer_iters:>7}{info.matvecs:>9}{info.seconds:>9.2f}"
                  f"{info.max_residual:>10.1e} {info.converged!s:<6}{stop:<10}{err:>9.1e}", flush=True)


if __name__ == "__main__":
    main()
