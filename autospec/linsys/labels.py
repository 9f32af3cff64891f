"""Labelled training set of the learned ``linsys`` choice: probes + exact PCG counts.

For every training spectrum λ (synthetic families and spectra of random SPD operators, see
:mod:`autospec.matrices.random_spd`) with a Gaussian right-hand side ``w`` in its eigenbasis:
the Lanczos probe of ``diag(λ)`` (same code and length as at inference) and, for every candidate
of :mod:`autospec.linsys.candidates`, the number of PCG iterations to ``rtol`` on ``diag(λ)``
— exact and full, not truncated (PCG with ``M = p(A)`` on ``diag(λ)`` with weights ``w`` is PCG on
``A`` in exact arithmetic). A candidate that fails the inference safeguard (or whose LP fails)
is labelled with what the user would get instead: the ``ritz`` Chebyshev count. Deflated
candidates are counted by deflated PCG (:mod:`autospec.linsys.deflation`) on ``diag(λ)``, where the
probe's Ritz vectors are already in the eigenbasis.

    python -m autospec labels data/linsys-labels.safetensors --synthetic 2000 --operators 600

writes one safetensors file (tensors + JSON metadata, no pickle) that training reads
(:class:`autospec.training.labelled.LabelledDataModule`), so no run recounts.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from autospec.core.intervals import ritz_interval
from autospec.core.operators import Diagonal
from autospec.core.probe import Probe, lanczos
from autospec.core.recurrences import chebyshev_three_term, evaluate
from autospec.core.spectra import ALL_FAMILIES, sample_spectra
from autospec.engine.choice import read_labelled
from autospec.errors import ArtifactError, InputValueError
from autospec.linsys import candidates
from autospec.linsys.deflation import deflated_pcg_iterations, padded_ritz_vectors
from autospec.linsys.preconditioners import polynomial_is_safe

FORMAT = "autospec-linsys-labels"
NOT_CONVERGED_COST = 2.0  # a count beyond max_iters costs twice max_iters
PROBE_FIELDS = ("ritz", "residuals", "weights", "upper")
BATCHED_FIELDS = ("ritz", "residuals", "upper", "lower", "weights", "basis", "eigenvectors")


@dataclass
class LabelSettings:
    degree: int = 10
    probe_steps: int = 50
    rtol: float = 1e-8
    max_iters: int = 3000


def label_spectrum(lam: torch.Tensor, weights: torch.Tensor, probe: Probe, settings: LabelSettings) -> torch.Tensor:
    """``(C,)`` PCG iterations to ``rtol`` of every candidate on ``diag(λ)`` (``max_iters + 1``: never),
    all candidates in one batched run (undeflated ones with an empty deflation space)."""
    s = ritz_interval(probe)[1]
    x = (lam / s).double()
    upper = float(probe.upper / s)
    a, b = candidates.chebyshev_intervals(probe)
    values = list(evaluate(chebyshev_three_term(a, b, settings.degree), x.expand(a.shape[-1], -1)))
    fallback = torch.zeros(candidates.COUNT, dtype=torch.bool)
    for i in range(candidates.CHEBYSHEV_COUNT, candidates.COUNT):
        poly = candidates.candidate(probe, i, settings.degree)
        fallback[i] = poly is None or not polynomial_is_safe(poly, upper)
        values.append(torch.ones_like(x) if fallback[i] else evaluate(poly, x))
    ks = [0 if fallback[i] else candidates.deflation(i) for i in range(candidates.COUNT)]
    W = padded_ritz_vectors(probe, ks).to(x.dtype)
    counts = deflated_pcg_iterations(x, torch.stack(values), weights, W, settings.rtol, settings.max_iters)
    counts[fallback | (counts < 0)] = counts[0]  # inference falls back to the ritz Chebyshev there too
    return counts


def spectra_source(synthetic: int, operators: int, seed: int, n_range=(256, 2048), kappa_range=(1e1, 1e8)) -> list:
    """``synthetic`` spectra ``(family, λ)`` of every family, then ``operators`` lazily built random
    operators ``("operator", seed)`` (their spectra are computed where they are labelled)."""
    gen = torch.Generator().manual_seed(seed)
    lo, hi = (math.log(v) for v in n_range)
    items = []
    for _ in range(synthetic):
        n = int(math.exp(lo + (hi - lo) * float(torch.rand(1, generator=gen, dtype=torch.float64))))
        lam, names = sample_spectra(gen, 1, n, tuple(kappa_range), ALL_FAMILIES)
        items.append((names[0], lam[0]))
    return items + [("operator", seed + i) for i in range(operators)]


def label_item(item, settings: LabelSettings, seed: int) -> dict | None:
    """Probe and counts of one source item (``seed`` fixes its scale, right-hand side and probe);
    ``None`` when the spectrum is unusable (not SPD, or n <= probe steps)."""
    family, lam = item
    if family == "operator":
        from autospec.matrices.random_spd import operator_spectrum

        family, lam = operator_spectrum(lam)
    gen = torch.Generator().manual_seed(seed)
    lam = torch.as_tensor(np.asarray(lam), dtype=torch.float64)
    lam = lam * math.exp(float(torch.empty(1, dtype=torch.float64).uniform_(-7, 7, generator=gen)))
    if lam.numel() <= settings.probe_steps or not bool(lam[0] > 0):
        return None
    w = torch.randn(1, lam.numel(), 1, generator=gen, dtype=torch.float64)
    probe = _unbatched(lanczos(Diagonal(lam.unsqueeze(0)), steps=settings.probe_steps, seed=seed))
    return {"family": family, "n": torch.tensor([lam.numel()]), "counts": label_spectrum(lam, w, probe, settings),
            **{key: getattr(probe, key) for key in PROBE_FIELDS}}


def _label_indexed(args):
    i, item, settings, seed = args
    torch.set_num_threads(1)
    return i, label_item(item, settings, seed + i)


def build_labels(source: list, settings: LabelSettings, seed: int, progress=None, jobs: int = 1) -> dict:
    """Label every item of ``source`` (``jobs`` worker processes); returns the tensors and the family
    names, in source order (the result does not depend on ``jobs``)."""
    tasks = [(i, item, settings, seed) for i, item in enumerate(source)]
    results = {}
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as pool:
            for i, row in pool.map(_label_indexed, tasks, chunksize=4):
                results[i] = row
                if progress is not None:
                    progress.update(1)
    else:
        for task in tasks:
            i, row = _label_indexed(task)
            results[i] = row
            if progress is not None:
                progress.update(1)
    rows = [results[i] for i in range(len(tasks)) if results[i] is not None]
    tensors = {key: torch.stack([r[key].reshape(-1) for r in rows]) for key in (*PROBE_FIELDS, "counts")}
    tensors["upper"] = tensors["upper"].reshape(-1)
    tensors["n"] = torch.cat([r["n"] for r in rows])
    return {"tensors": {k: v.contiguous() for k, v in tensors.items()}, "families": [r["family"] for r in rows]}


def _unbatched(probe: Probe) -> Probe:
    return dataclasses.replace(probe, **{key: getattr(probe, key)[0] for key in BATCHED_FIELDS})


def save_labels(path: str | Path, labelled: dict, settings: LabelSettings) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "families": labelled["families"], "candidates": candidates.COUNT, **vars(settings)}
    save_file(labelled["tensors"], str(path), metadata={"autospec": json.dumps(meta)})
    return path


def load_labels(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """``(tensors, metadata)`` of a labelled set; raises ``ArtifactError`` on a foreign or stale file."""
    tensors, meta = read_labelled(path, FORMAT, "python -m autospec labels")
    if meta.get("candidates") != candidates.COUNT:
        raise ArtifactError(f"{path} labels {meta.get('candidates')} candidates, this version has {candidates.COUNT}: "
                            f"relabel it")
    return tensors, meta


def label_costs(counts: torch.Tensor, max_iters: int) -> torch.Tensor:
    """``log`` of the counts, a count beyond ``max_iters`` costing ``NOT_CONVERGED_COST·max_iters``."""
    c = counts.double()
    return torch.where(c > max_iters, torch.full_like(c, NOT_CONVERGED_COST * max_iters), c).clamp_min(1).log()


def check_settings(settings: LabelSettings) -> None:
    if settings.degree < 1 or settings.probe_steps < 2 or settings.max_iters < 1 or not 0 < settings.rtol < 1:
        raise InputValueError(f"bad label settings {settings}")


def write_labels(out: str | Path, synthetic: int, operators: int, seed: int = 1,
                 settings: LabelSettings | None = None, jobs: int = 1) -> Path:
    """Label ``synthetic`` + ``operators`` spectra (with a progress bar) and save them to ``out``."""
    from tqdm import tqdm

    settings = settings or LabelSettings()
    check_settings(settings)
    if synthetic < 0 or operators < 0 or synthetic + operators == 0:
        raise InputValueError(f"need a positive number of spectra, got synthetic={synthetic}, operators={operators}")
    with tqdm(total=synthetic + operators, desc="labelling spectra", unit="spectrum") as bar:
        labelled = build_labels(spectra_source(synthetic, operators, seed), settings, seed, bar, jobs)
    return save_labels(out, labelled, settings)
