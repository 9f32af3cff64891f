"""Ablation of the learned linsys choice on the shared SuiteSparse SPD matrices (issue 13).

    python benchmarks/bench_linsys_ablation.py [--engine linsys-cg-d10] [--min-n 400] [--max-n 5000]

For every SPD matrix with ``min_n <= n <= max_n``, scalings ``none`` and ``jacobi``, Gaussian b
(seed 0), probe m = 50 (seed 0), d = 10, rtol 1e-8: PCG outer iterations of every candidate of the
menu, counted in the eigenbasis (PCG on ``A`` with ``M = p(A)`` is PCG on ``diag(λ)`` with weights
``Qᵀb``: identical in exact arithmetic; the acceptance run with real PCG is bench_evaluate.py).
Columns: ``zero`` — the engine's zero-output start (Chebyshev, ritz bounds); ``petsc``; ``fixed`` —
the best fixed rule (the menu candidate with the lowest mean log-cost over the training labels);
``autospec`` — the engine's choice; ``menu`` — the best candidate in hindsight; ratios against the
better of zero and petsc ("best Chebyshev").
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import scipy.sparse as sp
import torch
from bench_engine import best_fixed_candidate, learned_count
from common import REPO, SHARED, print_table, spd_matrices

from autospec.core.probe import lanczos
from autospec.learned import load
from autospec.linsys.cg import pcg_iterations
from autospec.linsys.labels import LabelSettings, label_spectrum
from autospec.matrices.io import read_matrix

MAX_ITERS = 20000


def cases(directory, min_n: int, max_n: int):
    for name, path in spd_matrices(directory, max_n=max_n, min_n=min_n):
        A = sp.csr_matrix(read_matrix(path), dtype=np.float64)
        b = np.random.default_rng(0).standard_normal(A.shape[0])
        for scaling in ("none", "jacobi"):
            d = 1 / np.sqrt(A.diagonal()) if scaling == "jacobi" else np.ones(A.shape[0])
            yield name, scaling, sp.csr_matrix(sp.diags(d) @ A @ sp.diags(d)), d * b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="linsys-cg-d10")
    parser.add_argument("--matrix-dir", default=SHARED)
    parser.add_argument("--min-n", type=int, default=400)
    parser.add_argument("--max-n", type=int, default=5000)
    parser.add_argument("--labels", default=str(REPO / "data" / "linsys-labels.safetensors"))
    args = parser.parse_args()
    engine = load(args.engine)
    settings = LabelSettings(degree=engine.degree, probe_steps=engine.probe_steps, max_iters=MAX_ITERS)
    fixed = best_fixed_candidate(args.labels, engine.task.max_iters)
    rows = []
    for name, scaling, A, b in cases(args.matrix_dir, args.min_n, args.max_n):
        lam, Q = np.linalg.eigh(A.toarray())
        lam = torch.as_tensor(lam)
        w = torch.as_tensor(Q.T @ b).reshape(1, -1, 1)
        probe = lanczos(A, steps=engine.probe_steps, seed=0)
        counts = label_spectrum(lam, w, probe, settings).tolist()
        learned = learned_count(engine, probe, counts)
        cg = int(pcg_iterations(lam[None], torch.ones_like(lam)[None], w, settings.rtol, MAX_ITERS)[0])
        best = min(counts[0], counts[1])
        row = {"matrix": name, "scaling": scaling, "n": lam.numel(), "cg": cg, "zero": counts[0], "petsc": counts[1],
               "fixed": counts[fixed], "autospec": learned, "menu": min(counts), "autospec/best": learned / best,
               "overhead": learned * (engine.degree + 1) / cg}
        rows.append(row)
        print(" ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    ok = [r for r in rows if r["cg"] <= MAX_ITERS and min(r["zero"], r["petsc"]) <= MAX_ITERS]
    print()
    print_table(rows, list(rows[0]))

    def med(key, den):
        return statistics.median([r[key] / min(r["zero"], r["petsc"]) if den == "best" else r[key] / r[den] for r in ok])

    print()
    print_table([{"cases (converged)": len(ok), "fixed candidate": fixed,
                  "median zero/best": med("zero", "best"), "median fixed/best": med("fixed", "best"),
                  "median autospec/best": med("autospec", "best"), "median menu/best": med("menu", "best"),
                  "autospec <= best": f"{100 * sum(r['autospec'] <= min(r['zero'], r['petsc']) for r in ok) / len(ok):.0f}%",
                  "median autospec/zero": med("autospec", "zero"),
                  "median overhead": statistics.median(r["overhead"] for r in ok)}],
                ["cases (converged)", "fixed candidate", "median zero/best", "median fixed/best", "median autospec/best",
                 "median menu/best", "autospec <= best", "median autospec/zero", "median overhead"])


if __name__ == "__main__":
    main()
