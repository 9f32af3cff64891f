"""Probe → spectral interval ``[a, b]``: every rule autospec uses, in one place.

A :class:`~autospec.core.probe.Probe` gives Ritz values ``θ_j`` with residual norms ``r_j`` and a
safe upper bound ``upper = θ_max + β_m`` of λmax. The families read intervals from it as follows:

* ``ritz`` (linsys, Chebyshev preconditioner): ``[θ_min, 1.01(θ_max + r_top)]``;
* ``petsc`` (linsys): ``[0.1, 1.1]·θ_max`` (PETSc's ``KSPChebyshevEstEigSet`` defaults);
* ``exact`` (linsys oracles, tests): ``[λmin, λmax]`` of given eigenvalues;
* ``inclusion`` (matfun action): ``[max(θ_min − r_min, θ_min/2), upper]``;
* ``sigma`` (matfun dense iterations): ``[lo², hi²] = [θ_min, θ_max + r_top]/scale``;
* ``unwanted`` (eigen filters): the cut ``a`` clamped to ``[a_L, b − 1e-2 (b − a_L)]``.

:func:`bounded` is the squashing every learned interval move goes through (``m·tanh(x/m)``).
"""

from __future__ import annotations

import numpy as np
import torch

from autospec.core.probe import Probe
from autospec.errors import InputValueError, NotPositiveDefiniteError

RITZ_UPPER_SAFETY = 1.01  # ritz bounds: b = 1.01 (θ_max + r_top)
PETSC_BOUNDS = (0.1, 1.1)  # petsc bounds: [0.1, 1.1]·θ_max (PETSc KSPChebyshevEstEigSet defaults)
BOUND_STRATEGIES = ("ritz", "petsc", "exact")
MIN_INTERVAL = 1e-2  # eigen: keep b − a >= 1e-2·(b − a_L) so the filter is finite when block ≈ n
LOWER_SHIFT_LIMIT = 6.0  # learned lower ends a' = a·e^g, |g| < 6
UPPER_SHIFT_LIMIT = 0.5  # learned upper ends b' = b·e^g, |g| < 0.5


def bounded(x: torch.Tensor, limit: float) -> torch.Tensor:
    """``limit·tanh(x/limit)``: identity near 0 (so zero output is still the classical choice),
    bounded by ``limit``; ``limit <= 0`` switches the knob off (zeros)."""
    return limit * torch.tanh(x / limit) if limit > 0 else torch.zeros_like(x)


def ritz_interval(probe: Probe) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched ``ritz`` interval ``[θ_min, 1.01(θ_max + r_top)]`` (tensors with the probe's batch shape)."""
    return probe.theta_min, RITZ_UPPER_SAFETY * (probe.theta_max + probe.top_residual())


def chebyshev_bounds(probe: Probe, strategy: str = "ritz", eigenvalues=None) -> tuple[float, float]:
    """Interval ``[a, b]`` of the Chebyshev preconditioner from a probe.

    ``ritz``: ``[θ_min, 1.01(θ_max + r_top)]``; ``petsc``: ``[0.1, 1.1]·θ_max``; ``exact``:
    ``[λmin, λmax]`` of the given ``eigenvalues`` (tests and oracles).
    """
    if strategy == "ritz":
        a, b = (float(t) for t in ritz_interval(probe))
    elif strategy == "petsc":
        a, b = (f * float(probe.theta_max) for f in PETSC_BOUNDS)
    elif strategy == "exact":
        if eigenvalues is None:
            raise InputValueError("bounds='exact' needs the operator's eigenvalues")
        lam = np.asarray(eigenvalues, dtype=np.float64)
        a, b = float(lam.min()), float(lam.max())
    else:
        raise InputValueError(f"unknown Chebyshev bound strategy {strategy!r}; choose one of {BOUND_STRATEGIES}")
    if not (np.isfinite(a) and np.isfinite(b)) or b <= 0:
        raise InputValueError(f"probe gave an unusable spectral interval [{a:.3e}, {b:.3e}]")
    a = max(a, b * 1e-12)
    if a >= b:  # a (numerically) one-point spectrum: any tiny interval around it works
        a = b * (1 - 1e-6)
    return a, b


def spectral_interval(probe: Probe) -> tuple[float, float]:
    """``[a, b] = [max(θ_min − r_min, θ_min/2), θ_max + β_m]`` from a Lanczos probe.

    ``b`` is the probe's safe upper bound of λmax. ``θ_min ≥ λmin`` always, and the Ritz pair
    ``(θ_min, r_min)`` certifies an eigenvalue in ``[θ_min − r_min, θ_min + r_min]``, so
    ``θ_min − r_min`` is the lower end of the inclusion interval of the eigenvalue it approximates;
    the clip at ``θ_min/2`` keeps the interval positive when the bottom pair has not converged.
    Raises ``NotPositiveDefiniteError`` when ``θ_min ≤ 0`` (a Rayleigh quotient ≤ 0 proves A is not PD).
    """
    theta_min = float(probe.theta_min)
    if not theta_min > 0:
        raise NotPositiveDefiniteError(f"matrix is not positive definite: Lanczos found a Rayleigh quotient "
                                       f"{theta_min:.3e} <= 0")
    a, b = probe_interval(probe)
    return float(a), float(b)


def probe_interval(probe: Probe) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`spectral_interval` as tensors, batched over the probe (no positivity check)."""
    theta_min, r_min = probe.theta_min, probe.residuals[..., 0]
    a = torch.maximum(theta_min - r_min, theta_min / 2)
    return a, torch.maximum(probe.upper, a * (1 + 1e-6))


def sigma_interval(probe: Probe, scale: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lo, hi)`` with ``[lo², hi²] = [θ_min, θ_max + r_top]/scale`` from a probe of ``σ²``."""
    lo = (probe.theta_min / scale).clamp_min(1e-300).sqrt()
    hi = ((probe.theta_max + probe.top_residual()) / scale).sqrt()
    return torch.minimum(lo, hi), hi


def unwanted_lower(a, b, lowest) -> torch.Tensor:
    """``a`` clamped to ``[a_L, b − 1e-2 (b − a_L)]`` so that ``e = (b − a)/2 > 0`` (floats or batches)."""
    a, b, lowest = (torch.as_tensor(x, dtype=torch.float64) for x in (a, b, lowest))
    width = torch.maximum(b - lowest, b.abs() * 1e-8).clamp_min(1e-300)
    return torch.minimum(torch.maximum(a, lowest), b - MIN_INTERVAL * width)


def filter_start(probe: Probe, block: int) -> tuple[float, float, float]:
    """``(a, b, a_L)`` of the first filter of subspace iteration on ``block`` columns: the cut
    ``a = θ_{block+1}`` of the probe (``>= λ_{block+1}`` by interlacing), ``b`` = the probe's safe
    upper bound, ``a_L = θ_min``."""
    return float(probe.ritz[min(block, probe.steps - 1)]), float(probe.upper), float(probe.theta_min)
