"""Labelled training set of the learned ``eigfilter`` choice: probes + exact matvec counts of every
plan (:mod:`autospec.eigen.plans`).

For every training problem — a spectrum λ (synthetic families, or the spectrum of a random FEM,
elasticity, diffusion or graph-Laplacian operator from :mod:`autospec.matrices.random_spd`),
reflected at random (clusters at the wanted end) and shifted to be indefinite at random, k
log-uniform in ``[2, 24]`` — the eigenproblem ``diag(λ)`` is solved by the library itself
(:func:`autospec.eigen.subspace._setup`: same probe, block, residual test and budget as at
inference) with every plan, without the whole-space switch. Subspace iteration on ``diag(λ)`` is
subspace iteration on any ``Q diag(λ) Qᵀ`` with the rotated start, so the counts are exact for
the spectrum (up to the start block). A run that does not converge within ``budget·n`` products,
or converges to wrong eigenvalues, counts ``budget·n + 1``.

    python -m autospec.eigen.labels data/eigfilter-labels.safetensors --synthetic 600 --operators 200 --jobs 2

Counts are stored in units of n/1000 (``counts = ⌈1000·matvecs/n⌉``), so one cap serves every n.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.torch import save_file

from autospec.core.spectra import ALL_FAMILIES, sample_spectrum
from autospec.eigen import plans
from autospec.eigen.subspace import _setup
from autospec.engine.choice import read_labelled
from autospec.errors import ArtifactError

FORMAT = "autospec-eigfilter-labels"
PROBE_FIELDS = ("ritz", "residuals", "upper")
UNIT = 1000  # counts are matvecs in units of n/UNIT
MAX_K = 24


def problem(seed: int, family: str, n_range: tuple[int, int]) -> tuple[str, np.ndarray, int]:
    """``(family, λ ascending, k)`` of training problem ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(5, generator=gen, dtype=torch.float64).tolist()
    if family == "operator":
        from autospec.matrices.random_spd import operator_spectrum

        family, lam = operator_spectrum(seed, n_range=n_range)
        lam = np.asarray(lam, dtype=np.float64)
    else:
        n = int(math.exp(math.log(n_range[0]) + u[0] * math.log(n_range[1] / n_range[0])))
        kappa = math.exp(math.log(10) + u[1] * math.log(1e6 / 10))
        lam = sample_spectrum(gen, family, n, kappa).double().numpy()
    lam = np.sort(lam)
    if u[2] < 0.5:
        lam = np.sort(lam[-1] + lam[0] - lam)  # clusters at the wanted end
    if u[3] < 0.3:
        lam = lam - lam[int(u[4] * (lam.size - 1))]  # indefinite
    k = int(round(math.exp(math.log(2) + float(torch.rand(1, generator=gen, dtype=torch.float64)) * math.log(MAX_K / 2))))
    return family, lam, min(k, lam.size // 8)


def label_problem(lam: np.ndarray, k: int, seed: int, budget: int, tol: float = 1e-8, probe_steps: int = 50) -> dict:
    """Probe fields and the count of every plan for one problem (module docstring)."""
    n = lam.size
    A = sp.diags(lam).tocsr()
    counts = []
    for index in range(plans.COUNT):
        prob = _setup(A, k, "SA", tol, budget * n, probe_steps, seed, None)
        theta, _, res, _ = plans.run_plan(prob, index, whole_space=False)
        ok = (float(res.max()) <= tol and prob.matvecs <= prob.budget
              and np.allclose(theta.cpu().numpy(), lam[:k], atol=1e-6 * np.abs(lam).max()))
        counts.append(math.ceil(UNIT * prob.matvecs / n) if ok else budget * UNIT + 1)
    probe = prob.probe
    return {"ritz": probe.ritz.double(), "residuals": probe.residuals.double(), "upper": probe.upper.double().reshape(1),
            "n": torch.tensor([n]), "k": torch.tensor([k]), "block": torch.tensor([prob.block]),
            "counts": torch.tensor(counts)}


def _label(args):
    i, family, seed, budget, n_range = args
    torch.set_num_threads(1)
    fam, lam, k = problem(seed, family, n_range)
    if k < 1 or lam.size <= 100:
        return i, None
    return i, (fam, label_problem(lam, k, seed, budget))


def write_labels(out: str | Path, synthetic: int, operators: int, seed: int = 1, budget: int = 30,
                 n_range: tuple[int, int] = (300, 1000), jobs: int = 1) -> Path:
    from tqdm import tqdm

    families = [ALL_FAMILIES[i % len(ALL_FAMILIES)] for i in range(synthetic)] + ["operator"] * operators
    tasks = [(i, f, seed * 1_000_003 + i, budget, n_range) for i, f in enumerate(families)]
    results = {}
    with tqdm(total=len(tasks), desc="labelling eigenproblems") as bar:
        if jobs > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(jobs) as pool:
                for i, row in pool.map(_label, tasks, chunksize=2):
                    results[i] = row
                    bar.update(1)
        else:
            for task in tasks:
                i, row = _label(task)
                results[i] = row
                bar.update(1)
    rows = [results[i] for i in range(len(tasks)) if results[i] is not None]
    return save_labels(out, rows, {"budget": budget, "n_range": list(n_range), "seed": seed})


def save_labels(out: str | Path, rows: list, settings: dict) -> Path:
    steps = max(r["ritz"].numel() for _, r in rows)
    keep = [(f, r) for f, r in rows if r["ritz"].numel() == steps]
    tensors = {key: torch.stack([r[key].reshape(-1) for _, r in keep]).contiguous()
               for key in (*PROBE_FIELDS, "n", "k", "block", "counts")}
    meta = {"format": FORMAT, "plans": plans.COUNT, "probe_steps": steps, "unit": UNIT,
            "families": [f for f, _ in keep], **settings}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata={"autospec": json.dumps(meta)})
    return out


def load_labels(path: str | Path) -> tuple[dict, dict]:
    """``(tensors, metadata)``; ``ArtifactError`` for a missing, foreign or stale file."""
    tensors, meta = read_labelled(path, FORMAT, "python -m autospec.eigen.labels")
    if meta.get("plans") != plans.COUNT:
        raise ArtifactError(f"{path} labels {meta.get('plans')} plans, this version has {plans.COUNT}: relabel it")
    return tensors, meta


def main(argv=None):
    parser = argparse.ArgumentParser(description="label eigenproblems with the exact cost of every plan")
    parser.add_argument("out")
    parser.add_argument("--synthetic", type=int, default=600)
    parser.add_argument("--operators", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--budget", type=int, default=30, help="matvec budget per problem, in units of n")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args(argv)
    print(write_labels(args.out, args.synthetic, args.operators, args.seed, args.budget, jobs=args.jobs))


if __name__ == "__main__":
    main()
