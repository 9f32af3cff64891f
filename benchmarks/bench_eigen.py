"""Lowest-k eigenpairs of the shared SuiteSparse matrices: ChFSI vs Lanczos (ARPACK) vs LOBPCG vs RSI
(and the learned filter, ``autospec``, once its engine exists).

A thin wrapper over :func:`autospec.evaluation.eigen.evaluate_eigen` (the ``python evaluate.py
task=eigfilter`` evaluation) that prints one line per run: matrix, n, method, k, outer_iters,
matvecs (probe included), seconds, max_residual (``max_j ‖Av_j − θ_j v_j‖/‖A‖_est``), converged,
why it stopped, and ``eig_err`` = ``max_j |θ_j − λ_j|/‖A‖₂`` against dense ``numpy.linalg.eigvalsh``
(n <= 5000), then the summary tables. Rectangular, complex and nonsymmetric files are skipped.
Budget: ``--budget-per-row``·n matvecs (the library default is 200), capped at ``--max-matvecs``.

    python benchmarks/bench_eigen.py [--dir /work/shared/data/suitesparse] [--k 4 16] [--tol 1e-8]
    python benchmarks/bench_eigen.py --summarize OUT1 OUT2 ...   # summary tables of several runs' union (later wins)
"""

from __future__ import annotations

import argparse
import os
import tempfile

# single-threaded BLAS for every method (SciPy's ARPACK/LOBPCG, NumPy, torch): blocks are small and
# threads only add synchronisation; must be set before NumPy loads
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import torch

from autospec.eigen.api import METHODS
from autospec.evaluation.eigen import evaluate_eigen, read_csv, summarize, summary_tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/work/shared/data/suitesparse")
    parser.add_argument("--k", type=int, nargs="+", default=[16])
    parser.add_argument("--tol", type=float, default=1e-8)
    parser.add_argument("--max-n", type=int, default=5000)
    parser.add_argument("--methods", nargs="+", default=[m for m in METHODS if m != "autospec"])
    parser.add_argument("--matrices", nargs="*", default=None, help="names to run (default: all)")
    parser.add_argument("--budget-per-row", type=int, default=200)
    parser.add_argument("--max-matvecs", type=int, default=None)
    parser.add_argument("--out", default=None, help="write results.csv/results.md (and plots) here")
    parser.add_argument("--plots", action="store_true")
    parser.add_argument("--summarize", nargs="+", metavar="OUT", default=None,
                        help="only print the summary tables of the union of these runs' results.csv "
                             "(a case in several runs: the last one's row)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.summarize:
        cases = {(row.matrix, row.k, row.method): row  # a later run replaces an earlier one's case
                 for out in args.summarize for row in read_csv(os.path.join(out, "results.csv"))}
        print(summary_tables(summarize(list(cases.values()), args.tol)))
        return

    out = args.out or tempfile.mkdtemp(prefix="bench_eigen-")
    result = evaluate_eigen(out, args.dir, matrices=args.matrices, methods=args.methods, ks=args.k, tol=args.tol,
                            budget_per_row=args.budget_per_row, max_matvecs=args.max_matvecs, max_n=args.max_n,
                            plots=args.plots)
    header = (f"{'matrix':<16}{'n':>6} {'method':<9}{'k':>3}{'outer':>7}{'matvecs':>9}{'seconds':>9}{'max_res':>10} "
              f"{'conv':<6}{'stop':<10}{'eig_err':>9}")
    print(header)
    print("-" * len(header))
    for r in result.rows:
        if r.error:
            continue  # skipped or failed: see results.md
        err = "" if r.eig_error is None else f"{r.eig_error:.1e}"
        print(f"{r.matrix:<16}{r.n:>6} {r.method:<9}{r.k:>3}{r.outer_iters:>7}{r.matvecs:>9}{r.seconds:>9.2f}"
              f"{r.max_residual:>10.1e} {r.converged!s:<6}{r.stop:<10}{err:>9}")
    print()
    print(summary_tables(result.summary))
    print(f"full results: {result.csv}, {result.markdown}")


if __name__ == "__main__":
    main()
