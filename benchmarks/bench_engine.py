"""Learned engine vs Chebyshev on held-out synthetic spectra (issue: training pipeline).

    python benchmarks/bench_engine.py [--engine linsys-cg-d10] [--spectra 200] [--max-iters 5000]

For held-out seeded spectra across all families (n 500–4000, κ 1e2–1e8), probe m=50, degree 10,
rtol 1e-8: PCG outer iterations on ``diag(λ)`` with a Gaussian right-hand side, for the engine
(after its safeguard, exactly as ``autospec.solve`` would run it) and for Chebyshev with ``ritz``
and ``petsc`` bounds from the same probe. Prints per-family medians and the acceptance figures.
"""

from __future__ import annotations

import argparse
import math

import torch

from autospec.training.data import make_batch
from autospec.learned import load
from autospec.core.recurrences import chebyshev_three_term, evaluate
from autospec.core.spectra import ALL_FAMILIES
from autospec.linsys.cg import pcg_iterations
from common import print_table

HELD_OUT_SEED = 20_000_000


def measure(engine_name: str, spectra: int, batch: int, max_iters: int) -> list[dict]:
    engine = load(engine_name)
    task, rows = engine.task, []
    for i in range(math.ceil(spectra / batch)):
        b = make_batch(HELD_OUT_SEED + i, batch, (500, 4000), (1e2, 1e8), ALL_FAMILIES, engine.probe_steps)
        probe, lam, w = b["probe"], b["lam"], b["weights"]

        def iters(poly, scale):
            s = scale.unsqueeze(-1)
            return pcg_iterations(lam / s, evaluate(poly, lam / s), w, 1e-8, max_iters)

        ritz_poly, ritz_scale = task.polynomial(probe)
        ritz = iters(ritz_poly, ritz_scale)
        petsc_scale = 1.1 * probe.theta_max
        petsc = iters(chebyshev_three_term(torch.full_like(petsc_scale, 0.1 / 1.1), torch.ones_like(petsc_scale),
                                           task.degree), petsc_scale)
        poly, scale = engine.coefficients_from_probe(probe)
        safe = task.safe(poly, scale, probe)
        learned = torch.where(safe, iters(poly, scale), ritz)  # the safeguard falls back to ritz Chebyshev
        for j in range(len(lam)):
            best = min(int(ritz[j]), int(petsc[j]))
            rows.append({"family": b["families"][j], "n": lam.shape[-1], "kappa": float(lam[j, -1] / lam[j, 0]),
                         "autospec": int(learned[j]), "ritz": int(ritz[j]), "petsc": int(petsc[j]),
                         "ratio": int(learned[j]) / best, "fallback": not bool(safe[j])})
    return rows[:spectra]


def median(xs):
    return float(torch.tensor(xs, dtype=torch.float64).median())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", default="linsys-cg-d10")
    parser.add_argument("--spectra", type=int, default=200)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--max-iters", type=int, default=5000)
    args = parser.parse_args()
    rows = measure(args.engine, args.spectra, args.batch, args.max_iters)
    table = []
    for fam in sorted({r["family"] for r in rows}):
        sel = [r for r in rows if r["family"] == fam]
        table.append({"family": fam, "spectra": len(sel), "median autospec": median([r["autospec"] for r in sel]),
                      "median ritz": median([r["ritz"] for r in sel]), "median petsc": median([r["petsc"] for r in sel]),
                      "median ratio": median([r["ratio"] for r in sel]),
                      "worse >5%": sum(r["ratio"] > 1.05 for r in sel), "fallbacks": sum(r["fallback"] for r in sel)})
    print_table(table, list(table[0]))
    ratios = [r["ratio"] for r in rows]
    worse = sum(x > 1.05 for x in ratios) / len(ratios)
    print(f"\n{len(rows)} held-out spectra, engine {args.engine}: median autospec / best-Chebyshev outer "
          f"iterations = {median(ratios):.3f} (target <= 0.80); worse than Chebyshev by >5% on {100 * worse:.1f}% "
          f"(target <= 5%); safeguard fallbacks {sum(r['fallback'] for r in rows)}; "
          f"median vs ritz {median([r['autospec'] / r['ritz'] for r in rows]):.3f}, "
          f"vs petsc {median([r['autospec'] / r['petsc'] for r in rows]):.3f}")


if __name__ == "__main__":
    main()
