"""Learned filter vs ChFSI on held-out synthetic eigenvalue problems (issue: eigenvalue task).

    python benchmarks/bench_eigfilter_engine.py [--engine eigfilter-d15] [--problems 60] [--n 2000] [--oracles]
        [--also eigfilter-upper-d15] [--plans 6 11]

Held-out seeded spectra from every family (κ 1e1–1e6), reflected and shifted to be indefinite at
random exactly as in training (``EigfilterTask.prepare``, seeds never used in training), as sparse
diagonal matrices of size n; ``autospec.eigsh`` with k = 4 and 16, tol 1e-8, degree 15, block
``default_block(k, n)``, a matvec budget of ``50·n`` per run, ``method="autospec"`` (the learned filter) and ``"chfsi"``,
both with eigsh's degree escalation (``--max-degree 15``: fixed degree 15) and without the
whole-space switch (``whole_space=False``: the filters alone). Prints the
per-family median matvec ratio, the share of problems worse by >10 % and the converged counts.

``--also NAME ...`` runs further engines (e.g. the per-iteration ``eigfilter-upper-d15``) and
``--plans I ...`` fixed plans of :mod:`autospec.eigen.plans` for every problem (what the menu alone
gives, without a learned choice); each is reported against ChFSI like the engine.

``--oracles`` adds two filters that know the spectrum — ChFSI with the exact ``λmax`` as the upper
end, and with the exact interval ``[λ_{s+1}, λmax]`` (s = block) at every outer iteration, the
rate-optimal degree-m filter for block subspace iteration — to bound what any learned choice of
the Chebyshev interval can gain at this degree and block.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from autospec.training.data import make_batch
from autospec.eigen.api import filtered_subspace_iteration, solve_eigenproblem
from autospec.eigen.filters import FilterContext, chebyshev_filter, default_block
from autospec.eigen.plans import FixedPlan
from autospec.core.spectra import ALL_FAMILIES
from common import print_table

HELD_OUT_SEED = 40_000_000
TASK = {"name": "eigfilter"}


@dataclasses.dataclass(frozen=True)
class OracleFilter:
    """ChFSI with the exact upper end ``λmax`` and, when ``cut`` is given, the exact lower end."""

    upper: float
    cut: float | None = None
    degree: int = 15
    escalates: bool = True  # raised degrees as for ChFSI (autospec.eigen.filters.filter_degree)

    def __call__(self, ctx: FilterContext):
        lower = ctx.lower if self.cut is None else self.cut
        return chebyshev_filter(self.degree)(dataclasses.replace(ctx, lower=lower, upper=self.upper))


def measure(engine: str, problems: int, n: int, ks: list[int], budget: int, oracles: bool = False,
            max_degree: int | None = None, also: tuple = (), fixed: tuple = ()) -> list[dict]:
    methods = ("chfsi", "autospec", *(("oracle_b", "oracle_ab") if oracles else ()), *also,
               *(f"plan{i}" for i in fixed))
    rows = []
    for i in tqdm(range(problems), desc="problems"):
        batch = make_batch(HELD_OUT_SEED + i, 1, (n, n), (1e1, 1e6), ALL_FAMILIES, 50, task=TASK)
        lam = batch["lam"][0].numpy()
        A = sp.diags(lam).tocsr()
        for k in ks:
            row = {"family": batch["families"][0], "k": k, "indefinite": bool(lam[0] < 0 < lam[-1])}
            for method in methods:
                if method.startswith("plan"):
                    vals, _, info = filtered_subspace_iteration(A, k, FixedPlan(int(method[4:])), tol=1e-8, rng=i,
                                                                max_matvecs=budget * n, max_degree=max_degree,
                                                                whole_space=False)
                elif method.startswith("oracle"):
                    cut = float(np.sort(lam)[default_block(k, n)]) if method == "oracle_ab" else None
                    vals, _, info = filtered_subspace_iteration(A, k, OracleFilter(float(lam.max()), cut), tol=1e-8,
                                                                rng=i, max_matvecs=budget * n, max_degree=max_degree,
                                                                whole_space=False)
                else:
                    learned = method == "autospec" or method in also
                    vals, _, info = solve_eigenproblem(A, k=k, method="autospec" if learned else method,
                                          engine=(engine if method == "autospec" else method) if learned else None,
                                          tol=1e-8, rng=i, max_matvecs=budget * n, max_degree=max_degree,
                                          whole_space=False)
                row[method] = info.matvecs
                row[f"{method}_ok"] = info.converged and bool(np.allclose(np.asarray(vals), lam[:k],
                                                                          atol=1e-6 * np.abs(lam).max()))
            row["ratio"] = row["autospec"] / row["chfsi"]
            for oracle in methods[2:]:
                row[f"{oracle}_ratio"] = row[oracle] / row["chfsi"] if row[f"{oracle}_ok"] else float("nan")
            rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", default="eigfilter-d15")
    parser.add_argument("--problems", type=int, default=60)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--ks", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--budget", type=int, default=50, help="matvec budget per run, in units of n")
    parser.add_argument("--oracles", action="store_true", help="also run the exact-interval ChFSI oracles")
    parser.add_argument("--also", nargs="*", default=[], help="further engines, each reported against ChFSI")
    parser.add_argument("--plans", type=int, nargs="*", default=[], help="fixed plans (autospec.eigen.plans.PLANS)")
    parser.add_argument("--max-degree", type=int, default=None,
                        help="cap of the escalated filter degree (default: eigsh's; 15 = fixed-degree ChFSI)")
    args = parser.parse_args()
    rows = measure(args.engine, args.problems, args.n, args.ks, args.budget, args.oracles, args.max_degree,
                   tuple(args.also), tuple(args.plans))
    both = [r for r in rows if r["chfsi_ok"] and r["autospec_ok"]]
    table = []
    for fam in sorted({r["family"] for r in rows}):
        sel = [r for r in both if r["family"] == fam]
        table.append({"family": fam, "runs": sum(r["family"] == fam for r in rows), "both converged": len(sel),
                      "median chfsi matvecs": statistics.median([r["chfsi"] for r in sel]) if sel else "",
                      "median autospec matvecs": statistics.median([r["autospec"] for r in sel]) if sel else "",
                      "median ratio": statistics.median([r["ratio"] for r in sel]) if sel else "",
                      "worse >10%": sum(r["ratio"] > 1.1 for r in sel)})
    print_table(table, list(table[0]))
    for k in args.ks:
        sel = [r for r in both if r["k"] == k]
        ratios = [r["ratio"] for r in sel]
        print(f"k={k}: {len(sel)} problems both converged (chfsi {sum(r['chfsi_ok'] for r in rows if r['k'] == k)}, "
              f"autospec {sum(r['autospec_ok'] for r in rows if r['k'] == k)} of {sum(r['k'] == k for r in rows)}); "
              f"median autospec/chfsi matvecs {statistics.median(ratios):.3f} (target <= 0.80), "
              f"max {max(ratios):.3f} (target <= 1.10), worse >10% on {sum(x > 1.1 for x in ratios)}")
        others = [*(("oracle_b", "oracle_ab") if args.oracles else ()), *args.also, *(f"plan{i}" for i in args.plans)]
        for oracle in others:
            values = [r[f"{oracle}_ratio"] for r in sel if np.isfinite(r[f"{oracle}_ratio"])]
            note = {"oracle_b": "exact λmax", "oracle_ab": "exact [λ_(s+1), λmax]"}.get(oracle, "")
            print(f"k={k}: {oracle}/chfsi matvecs median {statistics.median(values):.3f}, max {max(values):.3f} "
                  f"over {len(values)} problems (converged: {sum(r[f'{oracle}_ok'] for r in rows if r['k'] == k)}) {note}")


if __name__ == "__main__":
    main()
