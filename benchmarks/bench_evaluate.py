"""Acceptance benchmark of the SuiteSparse evaluation (issue 4): autospec against the better
Chebyshev preconditioner (same probe) and the minimax oracle, d=10, rtol 1e-8, both scalings.

    python benchmarks/bench_evaluate.py [--engine NAME_OR_PATH] [--matrix-dir ../shared/data/suitesparse]
                                        [--min-n 400] [--max-n N] [--probe-steps 50 200] [--output-dir DIR] [--plots]

Runs ``autospec.evaluation.linsys.evaluate_linsys`` on every SPD matrix of the shared collection with
``min_n <= n <= max_n`` (its ``index.csv``), writes results.csv/results.md to the output folder and
prints the summary and the acceptance numbers at probe 50 over both scalings: fraction of cases
with autospec <= better Chebyshev (target >= 90%), median autospec/Chebyshev ratio (<= 0.85) and
median autospec/oracle ratio (<= 1.15).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from common import REPO, SHARED, spd_matrices

from autospec.evaluation.linsys import evaluate_linsys, summary_table
from autospec.linsys.solve import DEFAULT_ENGINE

TARGETS = (("le_chebyshev", ">=", 0.90, "autospec <= better Chebyshev"),
           ("vs_chebyshev", "<=", 0.85, "median autospec / better Chebyshev"),
           ("vs_oracle", "<=", 1.15, "median autospec / oracle"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default=DEFAULT_ENGINE, help="shipped engine name or artifact path")
    parser.add_argument("--matrix-dir", type=Path, default=SHARED)
    parser.add_argument("--min-n", type=int, default=400)
    parser.add_argument("--max-n", type=int, default=None)
    parser.add_argument("--probe-steps", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--output-dir", type=Path, default=REPO / "outputs" / "bench_evaluate")
    parser.add_argument("--plots", action="store_true", help="also write the PNG plots (slower)")
    args = parser.parse_args()

    matrices = spd_matrices(args.matrix_dir, max_n=args.max_n, min_n=args.min_n)
    print(f"{len(matrices)} SPD matrices with {args.min_n} <= n" + (f" <= {args.max_n}" if args.max_n else "")
          + f" from {args.matrix_dir}; engine {args.engine}", flush=True)
    start = time.perf_counter()
    result = evaluate_linsys(args.output_dir, None, files=[path for _, path in matrices], engine=args.engine,
                             degree=10, probe_steps=args.probe_steps, scalings=("none", "jacobi"), rtol=1e-8,
                             maxiter=20000, seed=0, plots=args.plots)
    print(f"\n{summary_table(result.summary)}\n")
    failed = [r for r in result.rows if r.error]
    print(f"{len(result.rows)} rows ({len(failed)} failed) in {time.perf_counter() - start:.0f} s; "
          f"per-matrix table: {result.markdown}")
    pooled = next((s for s in result.summary if s["scaling"] == "all" and s["probe_steps"] == 50), None)
    if pooled is None:
        print("no autospec results at probe 50: nothing to accept")
        return
    print(f"\nacceptance (probe 50, both scalings, {pooled['cases']} cases):")
    for key, op, target, text in TARGETS:
        value = pooled[key]
        ok = not math.isnan(value) and (value >= target if op == ">=" else value <= target)
        print(f"  {text}: {value:.3f} (target {op} {target}) {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
