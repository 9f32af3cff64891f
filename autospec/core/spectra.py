"""Synthetic spectra: the training distribution of the engines (DESIGN.md §4).

Every family maps a seeded ``torch.Generator``, a size ``n`` and a condition number ``κ`` to
eigenvalues in ``[1/κ, 1]`` (ascending); ``sample_spectra`` then multiplies by a random overall
scale so nothing depends on units. All sampling is float64 and reproducible.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from autospec.errors import InputValueError

Family = Callable[[torch.Generator, int, float], torch.Tensor]


def _u(gen: torch.Generator, *shape) -> torch.Tensor:
    return torch.rand(*shape, generator=gen, dtype=torch.float64)


def _uniform_scalar(gen, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(_u(gen, 1))


def _fit(x: torch.Tensor, kappa: float) -> torch.Tensor:
    """Affinely map ``x`` (any positive spread) onto ``[1/κ, 1]`` and sort."""
    x = torch.sort(x).values
    span = (x[-1] - x[0]).clamp_min(1e-300)
    return 1 / kappa + (1 - 1 / kappa) * (x - x[0]) / span


def uniform(gen, n, kappa):
    """λ ~ U[1/κ, 1]."""
    return _fit(_u(gen, n), kappa)


def log_uniform(gen, n, kappa):
    """log λ ~ U[−log κ, 0]."""
    return torch.sort(kappa ** (_u(gen, n) - 1)).values


def power_law(gen, n, kappa):
    """λ_i ∝ i^{−p} (decay exponent p ~ U[0.5, 3]) rescaled to ``[1/κ, 1]`` in log space."""
    p = _uniform_scalar(gen, 0.5, 3.0)
    logs = -p * torch.log(torch.arange(1, n + 1, dtype=torch.float64))
    return torch.sort(torch.exp(logs / logs.min().abs() * math.log(kappa))).values


def clustered(gen, n, kappa):
    """A few tight clusters at log-uniform centres plus a handful of outliers anywhere."""
    k = int(torch.randint(2, 9, (1,), generator=gen))
    centres = kappa ** (_u(gen, k) - 1)
    width = 10 ** _uniform_scalar(gen, -4, -1.5)
    outliers = int(torch.randint(0, 6, (1,), generator=gen))
    size = n - outliers - 2
    bulk = centres[torch.randint(0, k, (size,), generator=gen)] * (1 + width * (2 * _u(gen, size) - 1))
    lam = torch.cat([bulk, kappa ** (_u(gen, outliers) - 1), torch.tensor([1 / kappa, 1.0], dtype=torch.float64)])
    return torch.sort(lam.clamp(1 / kappa, 1.0)).values


def marchenko_pastur(gen, n, kappa):
    """Marchenko–Pastur law with ratio q chosen so ``((1+√q)/(1−√q))² = κ``, by inverse CDF."""
    sq = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    lo, hi = (1 - sq) ** 2, (1 + sq) ** 2
    grid = torch.linspace(lo, hi, 4097, dtype=torch.float64)
    density = torch.sqrt(((hi - grid) * (grid - lo)).clamp_min(0)) / grid
    cdf = torch.cumsum(density, 0)
    cdf = (cdf - cdf[0]) / (cdf[-1] - cdf[0])
    samples = torch.searchsorted(cdf, _u(gen, n - 2)).clamp(0, 4096)
    return _fit(torch.cat([grid[samples], torch.tensor([lo, hi], dtype=torch.float64)]), kappa)


def dense_near_min(gen, n, kappa):
    """Eigenvalues piled up near λmin: ``λ = 1/κ + (1 − 1/κ) u^p`` with p ~ U[2, 8]."""
    p = _uniform_scalar(gen, 2.0, 8.0)
    u = torch.cat([_u(gen, n - 2), torch.tensor([0.0, 1.0], dtype=torch.float64)])
    return torch.sort(1 / kappa + (1 - 1 / kappa) * u**p).values


def isolated_small(gen, n, kappa):
    """A well-conditioned bulk in ``[g, 1]`` (g ≥ 100/κ) and 1–5 isolated eigenvalues below it."""
    k = int(torch.randint(1, 6, (1,), generator=gen))
    g = min(0.5, (100 / kappa) * 10 ** _uniform_scalar(gen, 0, 2))
    bulk = g + (1 - g) * torch.cat([_u(gen, n - k - 1), torch.tensor([1.0], dtype=torch.float64)])
    small = torch.exp(math.log(1 / kappa) + (math.log(g) - math.log(1 / kappa)) * _u(gen, k - 1))
    return torch.sort(torch.cat([bulk, small, torch.tensor([1 / kappa], dtype=torch.float64)])).values


def _laplacian(dim: int) -> Family:
    def family(gen, n, kappa):
        side = max(2, round(n ** (1 / dim)))
        j = torch.arange(1, side + 1, dtype=torch.float64)
        modes = torch.sin(math.pi * j / (2 * (side + 1))) ** 2
        weights = [1.0] + [10 ** _uniform_scalar(gen, -2, 0) for _ in range(dim - 1)]  # anisotropy
        lam = sum(w * modes.reshape([-1 if d == i else 1 for d in range(dim)]) for i, w in enumerate(weights))
        lam = lam.reshape(-1)
        idx = torch.randperm(lam.numel(), generator=gen)[:n] if lam.numel() > n else torch.arange(lam.numel())
        lam = torch.sort(lam[idx]).values
        if lam.numel() < n:  # repeat modes to reach n (degenerate eigenvalues are realistic)
            lam = torch.sort(lam.repeat(n // lam.numel() + 1)[:n]).values
        natural = float(lam[-1] / lam[0])
        shift = 0.0 if natural <= kappa else (float(lam[-1]) - kappa * float(lam[0])) / (kappa - 1)
        lam = lam + shift  # a mass term caps κ at the requested value
        return lam / lam[-1]

    family.__doc__ = f"{dim}-D Laplacian-like spectrum: sums of sin²(πj/2(N+1)) modes with random anisotropy."
    return family


FAMILIES: dict[str, Family] = {
    "uniform": uniform,
    "log_uniform": log_uniform,
    "power_law": power_law,
    "clustered": clustered,
    "marchenko_pastur": marchenko_pastur,
    "dense_near_min": dense_near_min,
    "isolated_small": isolated_small,
    "laplacian_1d": _laplacian(1),
    "laplacian_2d": _laplacian(2),
    "laplacian_3d": _laplacian(3),
}


def mixture(gen, n, kappa, families=None):
    """Union of two families' spectra (half the eigenvalues each), refit to ``[1/κ, 1]``."""
    names = families or [f for f in FAMILIES]
    i, j = torch.randint(0, len(names), (2,), generator=gen).tolist()
    half = n // 2
    lam = torch.cat([FAMILIES[names[i]](gen, half, kappa), FAMILIES[names[j]](gen, n - half, kappa)])
    return _fit(lam, kappa)


ALL_FAMILIES = tuple(FAMILIES) + ("mixture",)


def sample_spectrum(gen: torch.Generator, family: str, n: int, kappa: float) -> torch.Tensor:
    """One spectrum of ``family`` with size ``n`` and condition number ``κ`` in ``[1/κ, 1]``."""
    if family == "mixture":
        return mixture(gen, n, kappa)
    if family not in FAMILIES:
        raise InputValueError(f"unknown spectrum family {family!r}; choose from {ALL_FAMILIES}")
    if n < 4 or kappa <= 1:
        raise InputValueError(f"need n >= 4 and kappa > 1, got n={n}, kappa={kappa}")
    return FAMILIES[family](gen, n, kappa)


def sample_spectra(
    gen: torch.Generator,
    batch: int,
    n: int,
    kappa_range: tuple[float, float] = (1e1, 1e8),
    families: tuple[str, ...] = ALL_FAMILIES,
    scale_range: tuple[float, float] = (1e-3, 1e3),
) -> tuple[torch.Tensor, list[str]]:
    """``batch`` spectra of size ``n`` (shape ``(batch, n)``): family uniform over ``families``,
    ``κ`` log-uniform over ``kappa_range``, overall scale log-uniform over ``scale_range``."""
    lo, hi = (math.log(k) for k in kappa_range)
    slo, shi = (math.log(s) for s in scale_range)
    out, names = [], []
    for _ in range(batch):
        name = families[int(torch.randint(0, len(families), (1,), generator=gen))]
        kappa = math.exp(_uniform_scalar(gen, lo, hi))
        lam = sample_spectrum(gen, name, n, kappa)
        out.append(lam * math.exp(_uniform_scalar(gen, slo, shi)))
        names.append(name)
    return torch.stack(out), names
