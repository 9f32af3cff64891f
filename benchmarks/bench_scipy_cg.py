"""The shipped engine as a preconditioner of SciPy's CG on the shared SPD matrices (issue 3).

    python benchmarks/bench_scipy_cg.py [--engine linsys-cg-d10] [--maxiter 3000]

For every SPD matrix of ``shared/data/suitesparse``: ``scipy.sparse.linalg.cg(A, b,
M=autospec.load(engine).preconditioner(A), rtol=1e-8)`` against the same call with the Chebyshev
preconditioner of the same degree from the same probe (``ritz`` bounds), Gaussian b (seed 0),
x0 = 0, probe m = 50. Counts SciPy's iterations (callback) and checks the true residual.
"""

from __future__ import annotations

import argparse

import numpy as np
from tqdm import tqdm

import autospec
from autospec.linsys.cg import scipy_cg_iterations
from autospec.matrices.io import read_matrix
from autospec.core.operators import as_operator
from autospec.linsys.preconditioners import chebyshev_preconditioner
from autospec.core.probe import lanczos
from common import print_table, spd_matrices


def scipy_cg(A, b, M, rtol: float, maxiter: int) -> tuple[int, bool]:
    """SciPy's iterations and whether it converged with a true residual <= 1.5·rtol."""
    iters, x, converged = scipy_cg_iterations(A, b, rtol, maxiter, M)
    return iters, converged and np.linalg.norm(b - A @ x) <= rtol * 1.5 * np.linalg.norm(b)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", default="linsys-cg-d10")
    parser.add_argument("--maxiter", type=int, default=3000)
    parser.add_argument("--rtol", type=float, default=1e-8)
    args = parser.parse_args()
    engine = autospec.load(args.engine)
    rows = []
    for name, path in tqdm(spd_matrices(), desc="matrices"):
        A = read_matrix(path).tocsr().astype(np.float64)
        b = np.random.default_rng(0).standard_normal(A.shape[0])
        M_learned = engine.preconditioner(A, probe_steps=50, rng=0)
        op = as_operator(A, symmetric=True, seed=0)
        M_cheb = chebyshev_preconditioner(op, lanczos(op, steps=50, seed=0), engine.degree, "ritz").as_linear_operator()
        learned, learned_ok = scipy_cg(A, b, M_learned, args.rtol, args.maxiter)
        cheb, cheb_ok = scipy_cg(A, b, M_cheb, args.rtol, args.maxiter)
        rows.append({"matrix": name, "n": A.shape[0], "autospec": learned, "autospec ok": learned_ok,
                     "chebyshev": cheb, "chebyshev ok": cheb_ok, "fallback": bool(M_learned.fallback)})
    print_table(rows, list(rows[0]))
    both = [r for r in rows if r["autospec ok"] and r["chebyshev ok"]]
    fewer = sum(r["autospec"] < r["chebyshev"] for r in both)
    ties = sum(r["autospec"] == r["chebyshev"] for r in both)
    print(f"\n{len(rows)} SPD matrices: SciPy CG with the learned M converged on {sum(r['autospec ok'] for r in rows)}, "
          f"with Chebyshev M on {sum(r['chebyshev ok'] for r in rows)} (maxiter {args.maxiter}); where both converged "
          f"({len(both)}): fewer iterations with the learned M on {fewer}, equal on {ties}, more on {len(both) - fewer - ties}")


if __name__ == "__main__":
    main()
