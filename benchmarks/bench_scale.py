"""n ≥ 10⁶: generated problems solved by CG, Chebyshev-PCG and the learned engine, vs SciPy's ``cg``.

    python benchmarks/bench_scale.py [--problems poisson2d_1000,poisson3d_100,anisotropic2d_1000]
                                     [--methods scipy_cg,cg,chebyshev,autospec] [--rtol 1e-6] [--maxiter 20000]

Every (problem, method) runs in a fresh child process so that its peak memory is its own: the
child builds the matrix (pyamg gallery, float64 CSR), resets the kernel's high-water mark
(``/proc/self/clear_refs``), records the resident size, solves, and reports ``VmHWM`` — the peak
resident memory *during the solve* — and ``extra_MB`` = peak − resident before the solve (what the
solver itself allocates: vectors, the probe's n×m Lanczos basis, the torch copy of A).
The right-hand side is seeded Gaussian; ``rel_residual`` is the true ``‖b − Ax‖/‖b‖`` measured here.
``matvecs`` counts every product with A (probe and true-residual checks included; SciPy's ``cg``:
iterations + 1). Threads: the parent sets ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` (``--threads``,
default 1) for the children and prints it, and torch uses the same number.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, print_table  # noqa: E402

PROBLEMS = ("poisson2d_1000", "poisson3d_100", "anisotropic2d_1000")
METHODS = ("scipy_cg", "cg", "chebyshev", "autospec")


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS (Linux ≥ 4.0)
    except OSError:
        pass


def run_one(problem: str, method: str, rtol: float, maxiter: int, threads: int) -> dict:
    """One solve in this process; returns its row."""
    import numpy as np
    import scipy.sparse.linalg as spla
    import torch

    import autospec
    from autospec.matrices.gallery import make_problem

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    _, A = make_problem(problem)
    build = time.perf_counter() - t0
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    gc.collect()
    _reset_peak()
    rss0 = _status_mb("VmRSS")
    start = time.perf_counter()
    if method == "scipy_cg":
        iters = [0]

        def count(_):
            iters[0] += 1

        x, code = spla.cg(A, b, rtol=rtol, atol=0.0, maxiter=maxiter, callback=count)
        seconds = time.perf_counter() - start
        row = {"outer_iters": iters[0], "matvecs": iters[0] + 1, "degree": 0, "fallback": ""}
    else:
        x, info = autospec.solve(A, b, method=method, rtol=rtol, maxiter=maxiter)
        seconds = time.perf_counter() - start
        row = {"outer_iters": info.outer_iters, "matvecs": info.matvecs, "degree": info.degree,
               "fallback": info.fallback or ""}
    peak = _status_mb("VmHWM")
    rel = float(np.linalg.norm(b - A @ x) / np.linalg.norm(b))
    matrix_mb = (A.data.nbytes + A.indices.nbytes + A.indptr.nbytes) / 2**20
    return {"problem": problem, "n": A.shape[0], "nnz": A.nnz, "method": method, **row,
            "seconds": round(seconds, 2), "rel_residual": rel, "converged": rel <= rtol,
            "peak_MB": round(peak), "extra_MB": round(peak - rss0), "matrix_MB": round(matrix_mb),
            "build_s": round(build, 1)}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--rtol", type=float, default=1e-6)
    parser.add_argument("--maxiter", type=int, default=20000, help="outer iterations (each method's own)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one", nargs=2, metavar=("PROBLEM", "METHOD"), help=argparse.SUPPRESS)
    parser.add_argument("--csv", default=None, help="also write the rows to this CSV")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(*args.one, args.rtol, args.maxiter, args.threads)), flush=True)
        return []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "OPENBLAS_NUM_THREADS": str(args.threads)}
    print(f"# OMP_NUM_THREADS={args.threads} rtol={args.rtol} maxiter={args.maxiter} nproc={os.cpu_count()}",
          flush=True)
    rows = []
    for problem in args.problems.split(","):
        for method in args.methods.split(","):
            out = subprocess.run([sys.executable, __file__, "--one", problem, method, "--rtol", str(args.rtol),
                                  "--maxiter", str(args.maxiter), "--threads", str(args.threads)],
                                 env=env, cwd=REPO, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"# {problem} {method} failed:\n{out.stderr[-2000:]}", flush=True)
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(json.dumps(row), flush=True)
            rows.append(row)
    scipy_wall = {r["problem"]: r["seconds"] for r in rows if r["method"] == "scipy_cg"}
    for r in rows:
        r["wall_vs_scipy"] = round(r["seconds"] / scipy_wall[r["problem"]], 2) if r["problem"] in scipy_wall else ""
    print_table(rows, ["problem", "n", "nnz", "method", "degree", "outer_iters", "matvecs", "seconds",
                       "wall_vs_scipy", "rel_residual", "converged", "peak_MB", "extra_MB", "matrix_MB", "fallback"])
    if args.csv:
        import csv

        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return rows


if __name__ == "__main__":
    main()
