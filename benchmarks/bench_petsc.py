"""autospec.petsc on 1 and 2 MPI ranks: KSPCG with no preconditioner, Chebyshev and the learned
polynomial — outer iterations, products with A, and global reductions per solve.

    .venv-petsc/bin/python benchmarks/bench_petsc.py [--problems poisson2d_300,poisson3d_40,anisotropic2d_300]
                                                    [--ranks 1,2] [--rtol 1e-8]

(``make test-petsc`` builds ``.venv-petsc``.) Each rank count runs as ``mpiexec -n R python
bench_petsc.py --worker``; the parent prints one table. ``reductions``: PETSc's event counts of
dot products and norms inside ``KSPSolve`` (each one global reduction on a parallel Vec; CG with
the unpreconditioned-residual test spends 3 per iteration); ``probe_red``: the distributed Lanczos
probe's own reductions (3 per step); ``mpi_red``: the MPI reductions PETSc's logging counted in
``KSPSolve`` (0 on one rank, where none is needed). ``native``: the Chebyshev polynomial run by
PETSc's own ``KSPCHEBYSHEV`` inside ``PCKSP`` on the interval autospec chose.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, print_table  # noqa: E402

CASES = (("cg", False), ("chebyshev", False), ("chebyshev", True), ("autospec", False), ("autospec", True))


def worker(problems: list[str], rtol: float) -> None:
    import numpy as np

    import autospec.petsc as ap
    from autospec.matrices.gallery import make_problem

    PETSc = ap.petsc()
    rank, size = PETSc.COMM_WORLD.getRank(), PETSc.COMM_WORLD.getSize()
    for problem in problems:
        _, A = make_problem(problem)
        mat = ap.matrix_from_scipy(A)
        b = ap.vector(mat, np.random.default_rng(0).standard_normal(A.shape[0]))
        for method, native in CASES:
            try:
                _, info = ap.solve(mat, b, method, rtol=rtol, native=native)
            except Exception as exc:  # e.g. native with a minimax polynomial: reported, not hidden
                row = {"problem": problem, "method": method + ("/native" if native else ""), "ranks": size,
                       "error": str(exc)[:80]}
            else:
                row = {"problem": problem, "n": A.shape[0], "method": method + ("/native" if native else ""),
                       "ranks": size, "degree": info.degree, "outer_iters": info.outer_iters, "matvecs": info.matvecs,
                       "reductions": info.reductions, "probe_red": info.probe_reductions,
                       "total_red": info.reductions + info.probe_reductions, "mpi_red": info.mpi_reductions,
                       "rel_residual": info.rel_residual, "converged": info.converged,
                       "seconds": round(info.seconds, 2)}
            if rank == 0:
                print("ROW " + json.dumps(row), flush=True)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default="poisson2d_300,poisson3d_40,anisotropic2d_300")
    parser.add_argument("--ranks", default="1,2")
    parser.add_argument("--rtol", type=float, default=1e-8)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.problems.split(","), args.rtol)
        return []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rows = []
    for ranks in (int(r) for r in args.ranks.split(",")):
        cmd = [sys.executable, __file__, "--worker", "--problems", args.problems, "--rtol", str(args.rtol)]
        if ranks > 1:
            cmd = [shutil.which("mpiexec") or "mpiexec", "--allow-run-as-root", "--oversubscribe", "-n", str(ranks), *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
        if out.returncode != 0:
            print(f"# {ranks} ranks failed:\n{out.stderr[-3000:]}", flush=True)
        rows += [json.loads(line[4:]) for line in out.stdout.splitlines() if line.startswith("ROW ")]
    rows.sort(key=lambda r: (r["problem"], r["method"], r["ranks"]))
    print(f"# OMP_NUM_THREADS=1 rtol={args.rtol} nproc={os.cpu_count()}")
    print_table(rows, ["problem", "n", "method", "ranks", "degree", "outer_iters", "matvecs", "reductions", "probe_red",
                       "total_red", "mpi_red", "rel_residual", "converged", "seconds", "error"])
    return rows


if __name__ == "__main__":
    main()
