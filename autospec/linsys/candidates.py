"""The menu a learned ``linsys`` engine chooses from: candidate polynomial preconditioners built
from the probe alone.

Everything is in the scaled units of the ``ritz`` interval, ``x = λ/s`` with
``s = 1.01(θ_max + r_top)`` (see :func:`autospec.core.intervals.ritz_interval`). Candidates:

* ``0`` — Chebyshev on ``[θ_min/s, 1]`` (``ritz`` bounds: the engine's zero-output start);
* ``1`` — Chebyshev on ``[0.1, 1.1]·θ_max/s`` (PETSc's default interval);
* ``2 … 2+G−1`` — Chebyshev on ``[g_i, 1]``, ``g_i`` log-spaced from ``0.3·θ_min/s`` to ``0.5``:
  a raised lower end leaves the eigenvalues below it to CG;
* ``2+G …`` — *probe-shaped minimax* at every third ``g_i``: the degree-d residual polynomial
  ``R = 1 − x p(x)`` minimising ``max |R|`` over ``[g_i, c] ∪ {resolved top Ritz values}``, with
  ``p > 0`` on the safeguard's points of ``[0, 1.05]`` (a linear programme, :func:`probe_shaped_minimax`). Top Ritz values
  whose residual is below a tenth of the gap to their neighbours are resolved eigenvalues; the
  polynomial need not be small in the gaps between them (only ``R >= −10`` there, so an eigenvalue
  the probe missed becomes a mild outlier ``λp(λ) <= 11``), which frees degree for the bulk below
  ``c`` (the top of the unresolved part). This is where isolated large eigenvalues — power laws,
  stiff structural modes — are won back;
* ``2+G+G/3 …`` — *deflated Chebyshev*: the Ritz vectors of the k smallest Ritz values are
  deflated out of CG (:mod:`autospec.linsys.deflation`), and the polynomial is Chebyshev on
  ``[c·θ_{k+1}/s, 1]`` for ``k`` in ``DEFLATIONS`` and ``c`` in ``DEFLATED_LOWERS``. Isolated small
  eigenvalues, which a polynomial can only leave to CG, are removed instead, and the interval
  starts above them. Without deflation (SciPy's ``M``) only the candidates before these apply.

The engine sees the probe and scores every candidate (:mod:`autospec.linsys.task`); labels are
exact PCG counts of every candidate on synthetic spectra (:mod:`autospec.linsys.labels`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from autospec.core.intervals import PETSC_BOUNDS, ritz_interval
from autospec.core.probe import Probe
from autospec.core.recurrences import ChebyshevBasis, ThreeTerm, chebyshev_three_term
from autospec.linsys.preconditioners import positivity_grid
from autospec.linsys.oracle import quotient_coefficients, quotient_vandermonde, solve_minimax_lp, unit_vandermonde

GRID = 24  # log-spaced lower ends
SHAPED_EVERY = 3  # a probe-shaped minimax candidate at every third lower end
GRID_BOTTOM = 0.3  # the grid starts at 0.3·θ_min (the probe overestimates λmin)
GRID_TOP = 0.5  # ... and ends at half the upper end
RESOLVED_GAP = 0.1  # a top Ritz value is resolved when its residual is < 0.1·(gap to its neighbours)
FIT_POINTS = 160  # minimax points on the bulk interval (half geometric, half uniform)
POSITIVITY = 1e-2  # p >= 0.01 at the LP points (p ≈ 1/x >= 1 on the spectrum) keeps p > 0 between them
GAP_POINTS = 200  # R >= −GAP_FLOOR on [c, 1.05]: an eigenvalue the probe missed there is a mild outlier
GAP_FLOOR = 10.0
SHAPED_MARGIN = 1.05  # the shaped polynomial lives on [0, 1.05] (the safeguard's interval)

DEFLATIONS = (1, 2, 4, 8)  # Ritz vectors deflated
DEFLATED_LOWERS = (0.5, 1.0, 2.0, 4.0)  # the deflated candidates' lower ends, c·θ_{k+1}

CHEBYSHEV_COUNT = 2 + GRID
SHAPED_LOWERS = tuple(range(0, GRID, SHAPED_EVERY))
DEFLATED_START = CHEBYSHEV_COUNT + len(SHAPED_LOWERS)
COUNT = DEFLATED_START + len(DEFLATIONS) * len(DEFLATED_LOWERS)


def deflation(index: int) -> int:
    """How many Ritz vectors candidate ``index`` deflates (0 for the undeflated ones)."""
    return 0 if index < DEFLATED_START else DEFLATIONS[(index - DEFLATED_START) // len(DEFLATED_LOWERS)]


def deflated_lower(probe: Probe, index: int) -> torch.Tensor:
    """Lower end ``min(c·θ_{k+1}/s, 0.5)`` of deflated candidate ``index`` (scaled units)."""
    k = deflation(index)
    c = DEFLATED_LOWERS[(index - DEFLATED_START) % len(DEFLATED_LOWERS)]
    s = ritz_interval(probe)[1]
    return (c * probe.ritz[..., k] / s).clamp(1e-14, 0.5)


def lower_grid(probe: Probe) -> torch.Tensor:
    """``(..., G)`` lower ends ``g_i`` in scaled units, log-spaced over ``[0.3·θ_min/s, 0.5]``."""
    a, s = ritz_interval(probe)
    lo = (GRID_BOTTOM * a / s).clamp_min(1e-14).log()
    t = torch.linspace(0, 1, GRID, dtype=lo.dtype, device=lo.device)
    return torch.exp(lo.unsqueeze(-1) + (math.log(GRID_TOP) - lo.unsqueeze(-1)) * t)


def chebyshev_intervals(probe: Probe) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, b)``, each ``(..., 2+G)``: the Chebyshev candidates' intervals in scaled units."""
    a, s = ritz_interval(probe)
    top = probe.theta_max / s
    lower = torch.cat([(a / s).unsqueeze(-1), (PETSC_BOUNDS[0] * top).unsqueeze(-1), lower_grid(probe)], -1)
    upper = torch.cat([torch.ones_like(top).unsqueeze(-1), (PETSC_BOUNDS[1] * top).unsqueeze(-1),
                       torch.ones_like(lower[..., 2:])], -1)
    return torch.minimum(lower, 0.5 * upper).clamp_min(1e-14 * upper), upper


def resolved_top(theta: np.ndarray, residuals: np.ndarray) -> list[int]:
    """Indices of the top Ritz values (from the largest down) whose residual is below
    ``RESOLVED_GAP`` times the gap to their neighbours; stops at the first unresolved one."""
    out = []
    for j in range(theta.size - 1, 0, -1):
        gap = theta[j] - theta[j - 1] if j == theta.size - 1 else min(theta[j] - theta[j - 1], theta[j + 1] - theta[j])
        if residuals[j] >= RESOLVED_GAP * gap:
            break
        out.append(j)
    return out


def probe_shaped_minimax(theta: np.ndarray, residuals: np.ndarray, lower: float, degree: int) -> ChebyshevBasis | None:
    """Minimax ``p`` (scaled units) over ``[lower, c] ∪ {resolved top Ritz values ± residual}``
    with ``p > 0`` on ``[0, 1.05]``; ``None`` when the LP fails."""
    top = resolved_top(theta, residuals)
    if top:
        below = min(top) - 1
        c = theta[below] + residuals[below]
        resolved = np.concatenate([[theta[j] - residuals[j], theta[j], theta[j] + residuals[j]] for j in top])
    else:
        c, resolved = 1.0, np.zeros(0)
    c = max(c, lower * (1 + 1e-4))
    half = FIT_POINTS // 2
    bulk = np.unique(np.r_[np.geomspace(lower, c, half), np.linspace(lower, c, half)])
    points = np.r_[bulk, resolved] / SHAPED_MARGIN
    gaps = np.linspace(c, SHAPED_MARGIN, GAP_POINTS) / SHAPED_MARGIN  # between and above the resolved values
    check = positivity_grid(1.0).squeeze(0).numpy() / SHAPED_MARGIN  # the safeguard's own points, x = λ/1.05
    check = check[check > 0]
    try:
        residual_coefficients = solve_minimax_lp(unit_vandermonde(points, degree + 1),
                                                 quotient_vandermonde(check, degree + 1), POSITIVITY,
                                                 unit_vandermonde(gaps, degree + 1), GAP_FLOOR)
    except Exception:  # noqa: BLE001 - HiGHS numerical failure: the candidate is simply unavailable
        return None
    q = quotient_coefficients(residual_coefficients)  # p(x) = q(x/1.05)/1.05
    return ChebyshevBasis(torch.as_tensor(q / SHAPED_MARGIN), torch.tensor(0.0, dtype=torch.float64),
                          torch.tensor(SHAPED_MARGIN, dtype=torch.float64))


def candidate(probe: Probe, index: int, degree: int) -> ThreeTerm | ChebyshevBasis | None:
    """Candidate ``index``'s polynomial (float64, scaled units) for a single (unbatched) probe;
    ``None`` when a shaped candidate's LP fails or a deflated one needs more Ritz pairs than the
    probe has."""
    if not 0 <= index < COUNT:
        raise IndexError(f"candidate index {index} outside [0, {COUNT})")
    if index >= DEFLATED_START:
        if deflation(index) >= probe.ritz.shape[-1]:
            return None
        lower = deflated_lower(probe, index).double()
        return chebyshev_three_term(lower, torch.ones_like(lower), degree)
    if index < CHEBYSHEV_COUNT:
        a, b = chebyshev_intervals(probe)
        return chebyshev_three_term(a[..., index].double(), b[..., index].double(), degree)
    s = ritz_interval(probe)[1]
    theta = (probe.ritz / s).double().cpu().numpy()
    residuals = (probe.residuals / s).double().cpu().numpy()
    lower = float(lower_grid(probe)[..., SHAPED_LOWERS[index - CHEBYSHEV_COUNT]])
    return probe_shaped_minimax(theta, residuals, lower, degree)
