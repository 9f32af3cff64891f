"""Engine backbones side by side (issue 20): DeepSets, attention pooling, Transformer and the
Parametric Matrix Model (dense and tridiagonal), two sizes each, trained on the same data for the
same steps, from one run.

    OMP_NUM_THREADS=1 python benchmarks/bench_backbones.py [--steps 400] [--spectra 40] [--operators 16]
                                                           [--matfun-steps 40] [--matfun-cases 16] [--only pmm-8,deepsets-64]
                                                           [--seeds 0,1,2]

Every engine is trained by ``autospec.training.train`` (the ``train.py`` path) in a temporary
directory — the shipped checkpoints are not touched — and exported; the artifact is then loaded
like a user's. Two families:

* ``linsys`` — the linsys choice engine (``experiment=linsys_d10``: the labelled set
  ``data/linsys-labels.safetensors``, ``--steps`` steps, validation every 100 steps, the best
  validated weights exported; the seed also draws the labelled set's train/validation split).
  Validation metric: the geometric-mean PCG-iteration ratio of the chosen candidate vs the
  ritz-Chebyshev start (``exp(best val/log_ratio)``, lower is better).
  Held out (the sets of ``bench_engine.py``, never seen in training; their exact labels computed
  once and shared by all engines): median and geometric-mean outer iterations of the engine's
  choice (safeguard included, ``bench_engine.learned_count``) over the better of the two Chebyshev
  bounds, and the share of spectra worse than it by > 5 %.
* ``matfun`` — ``p(A) z ≈ A^{-1/2} z`` at degree 20 (``experiment=matfun_inv_sqrt_d20``,
  ``--matfun-steps`` steps, one validation at the end). Validation metric: the geometric-mean
  relative-error ratio vs the Chebyshev interpolant on the task's validation spectra. Held out
  (``bench_matfun_engine.spectra``: every family, κ 1e2–1e8, n = 500, seeds 20,000,000+):
  geometric mean and median of ``autospec.matfun.apply``'s relative error over the Chebyshev
  interpolant's.

``params`` counts every trainable parameter of the engine (embedding, backbone, trunk, heads);
``wall s`` is the training call's wall time (Lightning start-up and validation included), noisy on
a shared machine.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_engine import labelled_held_out, learned_count
from bench_matfun_engine import spectra
from common import REPO, print_table
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from autospec import matfun
from autospec.learned import load
from autospec.linsys.labels import LabelSettings
from autospec.training.train import train

PMM = {"backbone": "pmm", "eigenvalues": 4, "repulsion": 1e-3}
ENGINES = {  # name → engine settings (conf/engine/*.yaml keys)
    "deepsets-64": {"backbone": "deepsets", "width": 64, "depth": 2},
    "deepsets-16": {"backbone": "deepsets", "width": 16, "depth": 2},
    "attention-64": {"backbone": "attention", "width": 64, "depth": 2, "heads": 4},
    "attention-16": {"backbone": "attention", "width": 16, "depth": 2, "heads": 4},
    "transformer-64": {"backbone": "transformer", "width": 64, "depth": 2, "heads": 4},
    "transformer-16": {"backbone": "transformer", "width": 16, "depth": 2, "heads": 4},
    "pmm-8": {**PMM, "width": 16, "depth": 1, "matrix_size": 8, "inputs": 8, "structure": "dense"},
    "pmm-16x2": {**PMM, "width": 32, "depth": 2, "matrix_size": 16, "inputs": 16, "structure": "dense"},
    "pmm-tri-8": {**PMM, "width": 16, "depth": 1, "matrix_size": 8, "inputs": 8, "structure": "tridiagonal"},
    "pmm-tri-16x2": {**PMM, "width": 32, "depth": 2, "matrix_size": 16, "inputs": 16, "structure": "tridiagonal"},
}


def fit(experiment: str, engine: dict, steps: int, val_every: int, seed: int, out: Path) -> tuple[dict, float]:
    """Train one engine through ``train(cfg)``; returns ``(train's result, wall seconds)``."""
    overrides = [f"experiment={experiment}", f"seed={seed}", f"engine={engine['backbone']}", "logger=none",
                 "callbacks.progress_bar=null",
                 "+trainer.enable_progress_bar=false", f"trainer.max_steps={steps}", f"trainer.val_check_interval={val_every}"]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.engine = engine
        cfg.paths.output_dir = cfg.hydra.runtime.output_dir = str(out)
    HydraConfig.instance().set_config(cfg)
    start = time.perf_counter()
    result = train(cfg)
    return result, time.perf_counter() - start


def linsys_cases(spectra: int, operators: int, labels_like) -> list[dict]:
    """The held-out spectra of ``bench_engine.py`` with their probe and the exact PCG count of every
    candidate (an engine's choice is priced by them, as ``bench_engine.py`` does)."""
    return [{"set": source, "probe": probe, "counts": counts, "best": min(counts[0], counts[1])}
            for source, _, _, probe, counts in labelled_held_out(spectra, operators, labels_like)]


def linsys_held_out(artifact: Path, cases: list[dict], settings: LabelSettings) -> dict:
    engine = load(artifact)
    task = engine.task
    if (task.degree, engine.probe_steps, task.rtol, task.max_iters) != (settings.degree, settings.probe_steps,
                                                                         settings.rtol, settings.max_iters):
        raise SystemExit(f"{artifact}: the engine's task does not match the held-out labels' settings {settings}")
    ratios = [learned_count(engine, case["probe"], case["counts"]) / case["best"] for case in cases]
    return {"held-out median": statistics.median(ratios), "held-out geo-mean": _geomean(ratios),
            "held-out worse >5%": f"{100 * np.mean(np.asarray(ratios) > 1.05):.0f}%"}


def matfun_cases(count: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Held-out ``(A, z, Chebyshev interpolant's rel error)`` for the inverse square root."""
    gen = np.random.default_rng(20_000_000)
    cases = []
    for _, _, lam in spectra(count, 500, (1e2, 1e8), 20_000_000):
        A, z = np.diag(lam.numpy()), gen.standard_normal(len(lam))
        cases.append((A, z, matfun.apply(A, z, f="inv_sqrt", method="chebyshev")[1].rel_error))
    return cases


def matfun_held_out(artifact: Path, cases) -> dict:
    engine = load(artifact)
    ratios = [matfun.apply(A, z, f="inv_sqrt", method="autospec", engine=engine)[1].rel_error / base for A, z, base in cases]
    return {"held-out median": statistics.median(ratios), "held-out geo-mean": _geomean(ratios),
            "held-out worse >5%": f"{100 * np.mean(np.asarray(ratios) > 1.05):.0f}%"}


def _geomean(xs) -> float:
    return math.exp(statistics.fmean(math.log(x) for x in xs))


def run_family(family: str, names: list[str], steps: int, val_every: int, seeds: list[int], held, root: Path) -> list[dict]:
    experiment = {"linsys": "linsys_d10", "matfun": "matfun_inv_sqrt_d20"}[family]
    rows = []
    for name, seed in ((name, seed) for name in names for seed in seeds):
        result, wall = fit(experiment, ENGINES[name], steps, val_every, seed, root / f"{family}-{name}-{seed}")
        params = load(result["artifact"]).engine.parameter_counts()
        rows.append({"family": family, "engine": name, "seed": seed, "params": params["total"],
                     "backbone params": params["backbone"],
                     "val ratio": math.exp(result["metrics"]["best/val_log_ratio"]), **held(result["artifact"]),
                     "wall s": round(wall)})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400, help="linsys training steps (0: skip the family)")
    parser.add_argument("--spectra", type=int, default=40, help="held-out synthetic spectra (linsys)")
    parser.add_argument("--operators", type=int, default=16, help="held-out operator spectra (linsys)")
    parser.add_argument("--matfun-steps", type=int, default=40, help="matfun training steps (0: skip the family)")
    parser.add_argument("--matfun-cases", type=int, default=16, help="held-out matfun spectra")
    parser.add_argument("--only", default="", help="comma-separated engine names (default: all)")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds (data order and initialisation)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    names = [n for n in args.only.split(",") if n] or list(ENGINES)
    unknown = sorted(set(names) - set(ENGINES))
    if unknown:
        raise SystemExit(f"unknown engine(s) {unknown}; choose from {list(ENGINES)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-backbones-") as tmp:
        if args.steps:
            settings = LabelSettings(degree=10, probe_steps=50, rtol=1e-8, max_iters=3000)  # as experiment=linsys_d10
            cases = linsys_cases(args.spectra, args.operators, settings)
            print(f"linsys held-out labels: {len(cases)} spectra, {time.perf_counter() - start:.0f} s", flush=True)
            rows += run_family("linsys", names, args.steps, 100, seeds, lambda a: linsys_held_out(a, cases, settings),
                               Path(tmp))
        if args.matfun_steps:
            mcases = matfun_cases(args.matfun_cases)
            rows += run_family("matfun", names, args.matfun_steps, args.matfun_steps, seeds,
                               lambda a: matfun_held_out(a, mcases), Path(tmp))
    print()
    print_table(rows, list(rows[0]))
    ran = [f"linsys: {args.steps} steps, held out {args.spectra} synthetic + {args.operators} operator spectra"] * bool(args.steps)
    ran += [f"matfun: {args.matfun_steps} steps, {args.matfun_cases} held-out spectra"] * bool(args.matfun_steps)
    print(f"\n{'; '.join(ran)}; seeds {args.seeds}; total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
