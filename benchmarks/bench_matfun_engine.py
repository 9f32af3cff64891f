"""The learned ``matfun`` engines against their classical baselines (issue 5), from one seeded run.

1. Action ``p(A) z ≈ f(A) z`` (degree 20, Lanczos m = 50): relative error of the shipped engine
   over the Chebyshev interpolant's, on held-out synthetic spectra (seed 20_000_000+, κ in
   [1e2, 1e8], every family, n = 1000) and on the SPD SuiteSparse matrices (n ≤ 4000); and the same
   ratio for an oracle that knows the whole spectrum (the bound for any degree-20 polynomial).
2. Dense ``A^{−1/2}`` in float64 to ``‖X A X − I‖_F/√n ≤ 1e-6``: matmuls of the engine over PRISM's
   and coupled Newton–Schulz's, on held-out synthetic matrices (κ in [1e2, 1e6], n = 256, random
   bases) and SPD SuiteSparse matrices with κ ≤ 1e6 (n ≤ 2000); also the engine's zero-correction
   start (the adaptive minimax design alone), to show what the learned shifts add.
3. Polar factor in bfloat16, 5 iterations (16 matmuls each): orthogonality error ``‖QᵀQ − I‖_F/√n``
   of the engine, PolarExpress and Muon on synthetic 512×256 matrices (σ² from every family), with
   the distance to the true polar factor and the number of singular directions a method flipped
   (an orthogonal Q with flipped directions has a small orthogonality error but is wrong).

    python benchmarks/bench_matfun_engine.py [--matrix-dir DIR] [--cases 24] [--parts action dense polar]
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np
import torch

from autospec import matfun
from autospec.engine.model import Engine
from autospec.learned import LearnedEngine, load
from autospec.matrices.io import read_matrix
from autospec.core.spectra import ALL_FAMILIES, sample_spectrum

SEED = 20_000_000  # held out: training streams start at 0..2, validation at 10_000_000
ROOT = Path(__file__).resolve().parents[1]


def spectra(cases: int, n: int, kappa_range: tuple[float, float], seed: int):
    gen = torch.Generator().manual_seed(seed)
    lo, hi = (math.log(k) for k in kappa_range)
    for i in range(cases):
        family = ALL_FAMILIES[i % len(ALL_FAMILIES)]
        kappa = math.exp(lo + (hi - lo) * float(torch.rand(1, generator=gen, dtype=torch.float64)))
        yield family, kappa, sample_spectrum(gen, family, n, kappa)


def rotated(lam: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    Q = torch.linalg.qr(torch.randn(len(lam), len(lam), generator=gen, dtype=torch.float64)).Q
    A = (Q * lam) @ Q.T
    return (A + A.T) / 2


def spd_matrices(directory: Path, max_n: int, max_kappa: float = math.inf):
    index = directory / "index.csv"
    rows = list(csv.DictReader(index.open())) if index.exists() else []
    for row in rows:
        if row.get("spd") == "True" and int(row["n"]) <= max_n and float(row["cond2"]) <= max_kappa:
            path = directory / row["file"]
            if path.exists():
                yield row["name"], float(row["cond2"]), read_matrix(path)


def summary(ratios) -> str:
    r = np.asarray(ratios, dtype=float)
    return f"median {np.median(r):.3f}, geo-mean {np.exp(np.log(r).mean()):.3f}, better {np.mean(r < 1):.0%} ({len(r)} cases)"


def action(args) -> None:
    print("\n## 1. Action p(A) z, degree 20: rel error learned / Chebyshev interpolant\n")
    for f in ("inv_sqrt", "sqrt", "inv"):
        try:
            matfun.apply(np.eye(4), np.ones(4), f=f, method="autospec")
        except Exception as err:  # no shipped engine for this f
            print(f"{f}: no shipped engine ({type(err).__name__})")
            continue
        gen = np.random.default_rng(SEED)
        synth, oracle, suite = [], [], []
        for _, _, lam in spectra(args.cases, 1000, (1e2, 1e8), SEED):
            A, z = np.diag(lam.numpy()), gen.standard_normal(len(lam))
            synth.append(_apply_ratio(A, z, f))
            oracle.append(_oracle_error(lam.numpy(), z, f) / matfun.apply(A, z, f=f, method="chebyshev")[1].rel_error)
        for name, _, A in spd_matrices(args.matrix_dir, 4000):
            suite.append(_apply_ratio(A, gen.standard_normal(A.shape[0]), f))
        print(f"{f:9s} synthetic: {summary(synth)}")
        print(f"{f:9s} synthetic, oracle (least squares on the true spectrum): {summary(oracle)}")
        print(f"{f:9s} SuiteSparse SPD: {summary(suite)}")


def _apply_ratio(A, z, f: str) -> float:
    _, base = matfun.apply(A, z, f=f, method="chebyshev")
    _, learned = matfun.apply(A, z, f=f, method="autospec")
    return learned.rel_error / base.rel_error


def _oracle_error(lam: np.ndarray, z: np.ndarray, f: str, degree: int = 20) -> float:
    """Relative error of the degree-d polynomial that minimises ``Σ_i (p(λ_i) − f(λ_i))²`` on the
    exact spectrum — the minimiser of the expected squared error over Gaussian z, so no degree-d
    polynomial does better on average: the bound on what any engine can reach."""
    fl = matfun.SCALAR_FUNCTIONS[f](torch.from_numpy(lam)).numpy()
    x = (2 * lam - lam.min() - lam.max()) / (lam.max() - lam.min())
    V = np.polynomial.chebyshev.chebvander(x, degree)
    p = V @ np.linalg.lstsq(V, fl, rcond=None)[0]
    return float(np.linalg.norm((p - fl) * z) / np.linalg.norm(fl * z))


def dense(args) -> None:
    print("\n## 2. Dense inverse square root, float64, tol 1e-6: matmuls\n")
    gen = torch.Generator().manual_seed(SEED + 1)
    cases = [(f"{fam} κ={k:.0e}", rotated(lam, gen)) for fam, k, lam in spectra(args.cases, 256, (1e2, 1e6), SEED + 1)]
    cases += [(name, torch.from_numpy(A.toarray())) for name, _, A in spd_matrices(args.matrix_dir, 2000, 1e6)]
    shipped = load("matfun-coupled-inv_sqrt")
    zero = LearnedEngine(Engine(**shipped.task.layout), shipped.task, {**shipped.meta, "name": "zero corrections"})
    runs = {"autospec": ("autospec", shipped), "zero": ("autospec", zero), "prism": ("prism", None),
            "newton_schulz": ("newton_schulz", None)}
    rows = {"synthetic": [], "SuiteSparse": []}
    for i, (name, A) in enumerate(cases):
        counts = {}
        for key, (method, engine) in runs.items():
            _, info = matfun.inv_sqrt(A, method=method, tol=1e-6, max_iters=200, engine=engine)
            counts[key] = (info.matmuls if info.rel_error <= 1e-6 else math.inf, info.sketch_matmuls)
        rows["synthetic" if i < args.cases else "SuiteSparse"].append(counts)
    print("| set | median matmuls autospec | zero corrections | PRISM | NS | autospec / PRISM (median, max) | "
          "zero / PRISM | autospec / NS | autospec thin products | PRISM thin |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key, data in rows.items():
        if not data:
            continue
        get = {m: np.array([c[m][0] for c in data], dtype=float) for m in runs}
        thin = {m: np.median([c[m][1] for c in data]) for m in runs}
        vs_prism = get["autospec"] / get["prism"]
        print(f"| {key} ({len(data)}) | {np.median(get['autospec']):.0f} | {np.median(get['zero']):.0f} | "
              f"{np.median(get['prism']):.0f} | {np.median(get['newton_schulz']):.0f} | "
              f"{np.median(vs_prism):.3f}, {vs_prism.max():.3f} | {np.median(get['zero'] / get['prism']):.3f} | "
              f"{np.median(get['autospec'] / get['newton_schulz']):.3f} | {thin['autospec']:.0f} | {thin['prism']:.0f} |")


def polar(args) -> None:
    print("\n## 3. Polar factor, bfloat16, 5 iterations (16 matmuls): ‖QᵀQ − I‖_F/√n and ‖Q − U Vᵀ‖_F/√n\n")
    gen = torch.Generator().manual_seed(SEED + 2)
    errors = {"autospec": [], "polar_express": [], "muon": []}
    distance = {m: [] for m in errors}
    flipped = {m: 0 for m in errors}
    for _, _, lam in spectra(args.cases, 256, (1e2, 1e8), SEED + 2):
        U = torch.linalg.qr(torch.randn(512, 256, generator=gen, dtype=torch.float64)).Q
        V = torch.linalg.qr(torch.randn(256, 256, generator=gen, dtype=torch.float64)).Q
        G = ((U * lam.sqrt()) @ V.T).bfloat16()
        for method in errors:
            Q, info = matfun.polar(G, method=method, tol=None, max_iters=5)
            errors[method].append(info.rel_error)
            signed = torch.diagonal(U.T @ Q.double() @ V)  # σ_K per singular direction, with its sign
            distance[method].append(float((Q.double() - U @ V.T).norm() / 256**0.5))
            flipped[method] += int((signed < 0).sum())
    base = {m: np.array(e) for m, e in errors.items()}
    dist = {m: np.array(d) for m, d in distance.items()}
    print("| method | median orthogonality error | geo-mean | autospec / method (median) | median ‖Q − UVᵀ‖/√n | "
          "flipped directions (all cases) |")
    print("|---|---|---|---|---|---|")
    for m, e in base.items():
        print(f"| {m} | {np.median(e):.4f} | {np.exp(np.log(e).mean()):.4f} | {np.median(base['autospec'] / e):.3f} | "
              f"{np.median(dist[m]):.4f} | {flipped[m]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix-dir", type=Path, default=Path("/work/shared/data/suitesparse"))
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--parts", nargs="+", choices=["action", "dense", "polar"], default=["action", "dense", "polar"])
    args = parser.parse_args()
    torch.manual_seed(SEED)
    for part in args.parts:
        {"action": action, "dense": dense, "polar": polar}[part](args)


if __name__ == "__main__":
    main()
