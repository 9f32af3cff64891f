"""The learned linsys engine vs Chebyshev on held-out spectra (issue 13).

    python benchmarks/bench_engine.py [--engine linsys-cg-d10] [--spectra 200] [--operators 60]
                                      [--labels data/linsys-labels.safetensors]

Two held-out sets, neither seen in training: synthetic spectra of every family (seeds 20,000,000+,
n 500–4000 — training used n ≤ 2048) and spectra of random sparse SPD operators
(:mod:`autospec.matrices.random_spd`, seeds 100,000+; training used seeds below 10,000). Probe
m = 50, degree 10, rtol 1e-8, PCG outer iterations on ``diag(λ)`` with a Gaussian right-hand side.
Columns per spectrum:

* ``autospec`` — the engine's choice exactly as ``autospec.solve`` makes it (safeguard included;
  a deflated candidate counted by deflated PCG);
* ``zero`` — the engine's zero-output start (Chebyshev, ``ritz`` bounds); ``petsc`` — Chebyshev on
  ``[0.1, 1.1]·θ_max``; "best Chebyshev" is the better of the two for that spectrum;
* ``fixed`` — the best fixed rule on the same menu: the single candidate with the lowest mean
  log-cost over the training labels, used for every spectrum;
* ``menu`` — hindsight: the best candidate of the menu for that spectrum (what a perfect choice gets).
"""

from __future__ import annotations

import argparse
import math
import statistics

import torch
from common import REPO, print_table

from autospec.core.operators import Diagonal
from autospec.core.probe import lanczos
from autospec.core.spectra import ALL_FAMILIES, sample_spectra
from autospec.learned import load
from autospec.linsys.labels import LabelSettings, label_costs, label_spectrum, load_labels
from autospec.matrices.random_spd import operator_spectrum

HELD_OUT_SEED = 20_000_000
HELD_OUT_OPERATORS = 100_000


def held_out(spectra: int, operators: int):
    """Yield ``(set, family, λ, seed)`` for both held-out sets."""
    gen = torch.Generator().manual_seed(HELD_OUT_SEED)
    for i in range(spectra):
        n = int(math.exp(math.log(500) + (math.log(4000) - math.log(500)) * float(torch.rand(1, generator=gen))))
        lam, names = sample_spectra(gen, 1, n, (1e2, 1e8), ALL_FAMILIES)
        yield "synthetic", names[0], lam[0], HELD_OUT_SEED + i
    for i in range(operators):
        name, lam = operator_spectrum(HELD_OUT_OPERATORS + i)
        yield "operators", name, torch.as_tensor(lam), HELD_OUT_OPERATORS + i


def labelled_held_out(spectra: int, operators: int, settings: LabelSettings):
    """Yield ``(set, family, λ, probe, counts)``: every held-out spectrum with its probe and the
    exact PCG count of every candidate (a Gaussian right-hand side seeded like the probe)."""
    for source, family, lam, seed in held_out(spectra, operators):
        lam = lam.double()
        w = torch.randn(1, lam.numel(), 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        probe = lanczos(Diagonal(lam), steps=settings.probe_steps, seed=seed)
        yield source, family, lam, probe, label_spectrum(lam, w, probe, settings).tolist()


def best_fixed_candidate(labels: str, max_iters: int) -> int:
    tensors, _ = load_labels(labels)
    return int(label_costs(tensors["counts"], max_iters).mean(0).argmin())


def learned_count(engine, probe, counts: list[int]) -> int:
    """The engine's choice, priced by the exact label counts (which count a deflated candidate by
    deflated PCG, as ``autospec.solve`` runs it)."""
    index, _ = engine.task.choose(probe, engine.outputs(probe))
    return counts[index]


def measure(engine_name: str, spectra: int, operators: int, labels: str) -> list[dict]:
    engine = load(engine_name)
    task = engine.task
    settings = LabelSettings(degree=task.degree, probe_steps=engine.probe_steps, rtol=task.rtol, max_iters=task.max_iters)
    fixed = best_fixed_candidate(labels, task.max_iters)
    rows = []
    for source, family, lam, probe, counts in labelled_held_out(spectra, operators, settings):
        learned = learned_count(engine, probe, counts)
        best = min(counts[0], counts[1])
        rows.append({"set": source, "family": family.split("/")[0].split("+")[0], "autospec": learned,
                     "zero": counts[0], "petsc": counts[1], "fixed": counts[fixed], "menu": min(counts),
                     "ratio": learned / best, "vs_zero": learned / counts[0], "fixed_ratio": counts[fixed] / best,
                     "menu_ratio": min(counts) / best})
        print(f"{source:9s} {family:28s} n={lam.numel():5d} autospec {learned:5d} zero {counts[0]:5d} "
              f"petsc {counts[1]:5d} menu {min(counts):5d}", flush=True)
    return rows


def median(xs) -> float:
    return float(statistics.median(xs))


def summarize(rows: list[dict], label: str) -> dict:
    ratios = [r["ratio"] for r in rows]
    return {"set": label, "spectra": len(rows), "median autospec/best Cheb": median(ratios),
            "worse >5%": f"{100 * sum(x > 1.05 for x in ratios) / len(rows):.1f}%",
            "median autospec/zero": median([r["vs_zero"] for r in rows]),
            "median fixed/best Cheb": median([r["fixed_ratio"] for r in rows]),
            "median menu/best Cheb": median([r["menu_ratio"] for r in rows])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="linsys-cg-d10")
    parser.add_argument("--spectra", type=int, default=200)
    parser.add_argument("--operators", type=int, default=60)
    parser.add_argument("--labels", default=str(REPO / "data" / "linsys-labels.safetensors"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = measure(args.engine, args.spectra, args.operators, args.labels)
    families = []
    for (source, fam) in sorted({(r["set"], r["family"]) for r in rows}):
        sel = [r for r in rows if (r["set"], r["family"]) == (source, fam)]
        families.append({"set": source, "family": fam, "spectra": len(sel),
                         **{f"median {k}": median([r[k] for r in sel]) for k in ("autospec", "zero", "petsc", "menu")},
                         "median ratio": median([r["ratio"] for r in sel]), "worse >5%": sum(r["ratio"] > 1.05 for r in sel)})
    print()
    print_table(families, list(families[0]))
    print()
    summary = [summarize([r for r in rows if r["set"] == s], s) for s in ("synthetic", "operators") if any(r["set"] == s for r in rows)]
    print_table(summary + [summarize(rows, "all")], list(summary[0]))


if __name__ == "__main__":
    main()
