"""Odd-quintic polar iterations: Muon and PolarExpress.

Each step applies ``p(σ) = aσ + bσ³ + cσ⁵`` to every singular value: ``X ← aX + (bA + cA²)X``,
``A = X Xᵀ`` (X wide; tall inputs are transposed). The kernels run it in residual form
``X ← g(R) X``, ``R = I − A``, ``g(r) = (a + b + c) − (b + 2c) r + c r²`` (see
:mod:`autospec.kernels.common`); 3 GEMMs per step, one more for the final residual.

* Muon [KellerJordan/Muon, muon.py]: ``(3.4445, −4.7750, 2.0315)`` every step, ``X_0 = G/‖G‖_F``,
  5 steps by default. It does not converge: σ ends in ≈ [0.68, 1.13].
* PolarExpress [Amsel, Persson, Musco, Gower, arXiv:2505.16932; NoahAmsel/PolarExpress basic.py]:
  the published 8-step schedule (greedy minimax quintics for σ ∈ [1e-3, 1]), every polynomial but
  the last divided by the safety factor 1.01 (coefficient of σ^{2i+1} by 1.01^{2i+1}), the last
  one — the Taylor quintic ``(15, −10, 3)/8`` — repeated afterwards; ``X_0 = G/(1.01‖G‖_F)``.

The normalisation guard is the dtype's smallest normal number rather than the references' 1e-7,
which breaks scale invariance for ‖G‖_F ≲ 1e-7 (NVIDIA-NeMo/Emerging-Optimizers PR #230).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch

from autospec.kernels.common import KernelInfo, polar_iteration

Quintic = tuple[float, float, float]

MUON: Quintic = (3.4445, -4.7750, 2.0315)

POLAR_EXPRESS_SAFETY = 1.01
# basic.py table, before its safety division: optimal_composition(l=1e-3, 8 steps, cushion 0.02).
POLAR_EXPRESS_PUBLISHED: tuple[Quintic, ...] = (
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
    (1.875, -1.25, 0.375),
)


def with_safety(quintic: Quintic, safety: float) -> Quintic:
    """``p(σ/sf)``: the coefficient of σ^{2i+1} divided by ``sf^{2i+1}``."""
    a, b, c = quintic
    return a / safety, b / safety**3, c / safety**5


POLAR_EXPRESS: tuple[Quintic, ...] = tuple(
    with_safety(q, POLAR_EXPRESS_SAFETY) for q in POLAR_EXPRESS_PUBLISHED[:-1]
) + POLAR_EXPRESS_PUBLISHED[-1:]


def residual_form(quintic: Quintic) -> Quintic:
    """``(a, b, c)`` of ``aI + bA + cA²`` rewritten in ``R = I − A``: ``(a+b+c, −(b+2c), c)``."""
    a, b, c = quintic
    return a + b + c, -(b + 2 * c), c


def schedule(quintics: Sequence[Quintic], k: int) -> Quintic:
    """Step k of a schedule; the last polynomial repeats."""
    return quintics[min(k, len(quintics) - 1)]


def singular_value_map(quintics: Sequence[Quintic], sigma: np.ndarray) -> np.ndarray:
    """The composed scalar map ``p_K ∘ … ∘ p_1`` on singular values (float64)."""
    x = np.asarray(sigma, dtype=np.float64)
    for a, b, c in quintics:
        x = a * x + b * x**3 + c * x**5
    return x


def muon(G: torch.Tensor, *, iters: int | None = 5, tol: float = 1e-6,
         max_iters: int | None = None) -> tuple[torch.Tensor, KernelInfo]:
    """Muon's quintic Newton–Schulz on ``G (..., m, n)``: ``X ← aX + (bA + cA²)X`` with
    ``(a, b, c) = (3.4445, −4.7750, 2.0315)``; ``iters=None`` stops on tol/stall/max_iters instead.

    Matmuls ``3·iters + 1``.
    """
    info = KernelInfo()
    g = residual_form(MUON)
    X = polar_iteration(G, lambda k, powers: g, info, iters=iters, tol=tol, max_iters=max_iters)
    return X, info


def polar_express(G: torch.Tensor, *, iters: int | None = None, tol: float = 1e-6, max_iters: int | None = None,
                  quintics: Sequence[Quintic] = POLAR_EXPRESS) -> tuple[torch.Tensor, KernelInfo]:
    """PolarExpress on ``G (..., m, n)``: step k applies ``quintics[min(k, K−1)]`` to
    ``X_0 = G/(1.01‖G‖_F)``. Matmuls ``3·iters + 1``.
    """
    info = KernelInfo()
    steps = [residual_form(q) for q in quintics]
    X = polar_iteration(G, lambda k, powers: schedule(steps, k), info, iters=iters, tol=tol, max_iters=max_iters,
                        scale=POLAR_EXPRESS_SAFETY)
    return X, info


def optimal_quintic(lo: float, hi: float, *, max_exchanges: int = 100) -> tuple[float, float, float, float]:
    """Odd quintic ``p`` minimising ``max_{[lo, hi]} |1 − p(x)|`` and that error E.

    Simplified Remez on four alternation points ``{lo, q, r, hi}``: solve
    ``p(x_i) + (−1)^i E = 1``, move q, r to the critical points ``x² = (−3b ∓ √(9b² − 20ac))/(10c)``,
    until E changes by ≤ 1e-15. For ``lo/hi ≥ 1 − 5e-6`` the limit is the Taylor quintic
    ``(15/8, −10/8, 3/8)`` scaled to ``hi`` (its error ``≈ 2.5δ³``, δ = 1 − lo/hi, is below 1e-13
    there). Should rounding ever break an exchange (no real critical points), the last complete
    exchange is returned.
    """
    if lo / hi >= 1 - 2e-5:
        return 15 / 8 / hi, -10 / 8 / hi**3, 3 / 8 / hi**5, 0.0
    q, r = (3 * lo + hi) / 4, (lo + 3 * hi) / 4
    signs = np.array([1.0, -1.0, 1.0, -1.0])
    error = math.inf
    for _ in range(max_exchanges):
        x = np.array([lo, q, r, hi])
        a, b, c, new_error = np.linalg.solve(np.stack([x, x**3, x**5, signs], axis=1), np.ones(4))
        discriminant = 9 * b * b - 20 * a * c
        if discriminant < 0 or min(-3 * b - math.sqrt(discriminant), -3 * b + math.sqrt(discriminant)) / c < 0:
            break
        root = math.sqrt(discriminant)
        q, r = math.sqrt((-3 * b - root) / (10 * c)), math.sqrt((-3 * b + root) / (10 * c))
        converged = abs(new_error - error) <= 1e-15
        error = new_error
        if converged:
            break
    return float(a), float(b), float(c), float(error)


def polar_express_coefficients(lo: float = 1e-3, hi: float = 1.0, steps: int = 8, *, safety: float = 1e-2,
                               cushion: float = 0.02) -> list[Quintic]:
    """The greedy PolarExpress schedule for singular values in ``[lo, hi]`` (arXiv:2505.16932).

    Step t: the minimax quintic on ``[max(ℓ_t, cushion·u_t), u_t]``, rescaled so
    ``p(ℓ_t) + p(u_t) = 2`` when the cushion was active, divided by ``1 + safety`` (all steps
    but the last); then ``ℓ_{t+1} = p(ℓ_t)``, ``u_{t+1} = 2 − ℓ_{t+1}``.
    """
    out: list[Quintic] = []
    for t in range(steps):
        cushioned = cushion * hi > lo
        a, b, c, _ = optimal_quintic(max(lo, cushion * hi), hi)
        quintic = (a, b, c)
        if cushioned:
            shift = 2 / (singular_value_map([quintic], lo) + singular_value_map([quintic], hi))
            quintic = (a * shift, b * shift, c * shift)
        if t < steps - 1 and safety > 0:
            quintic = with_safety(quintic, 1 + safety)
        out.append(tuple(float(v) for v in quintic))
        lo = float(singular_value_map([quintic], lo))
        hi = 2 - lo
        lo = min(lo, hi)
    return out


MINIMAX_LOGIT_RANGE = (-28.0, 13.0)  # logit(lo/hi) covered by the minimax table (1e-12 … 1 − 2e-6)
MINIMAX_TABLE_POINTS = 1025


@functools.cache
def _minimax_table() -> torch.Tensor:
    """``(P, 3)`` coefficients of :func:`optimal_quintic` ``(ρ, 1)`` at ``ρ = sigmoid(t)``, t uniform."""
    grid = np.linspace(*MINIMAX_LOGIT_RANGE, MINIMAX_TABLE_POINTS)
    return torch.tensor([optimal_quintic(float(1 / (1 + np.exp(-t))), 1.0)[:3] for t in grid], dtype=torch.float64)


def minimax_quintic(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """``(..., 3)``: ``(a, b, c)`` of the odd quintic minimising ``max_{[lo, hi]} |1 − p(σ)|`` (the
    greedy PolarExpress step for a known interval), differentiable in ``lo`` and ``hi``.

    :func:`optimal_quintic` on ``[ρ, 1]``, ``ρ = lo/hi``, is tabulated on a uniform grid of
    ``logit(ρ)`` and interpolated linearly; then ``p(σ/hi)``: ``(a/hi, b/hi³, c/hi⁵)``. Beyond the
    table, ρ is clamped (ρ → 1 gives the Taylor quintic).
    """
    table = _minimax_table().to(hi.dtype)
    rho = (lo / hi).clamp(1e-300, 1.0)
    t = (torch.log(rho) - torch.log1p(-rho.clamp_max(1 - 1e-16))).clamp(*MINIMAX_LOGIT_RANGE)
    first, last = MINIMAX_LOGIT_RANGE
    position = (t - first) / (last - first) * (MINIMAX_TABLE_POINTS - 1)
    left = position.detach().floor().clamp(0, MINIMAX_TABLE_POINTS - 2).long()
    w = (position - left).unsqueeze(-1)
    q = table[left] * (1 - w) + table[left + 1] * w
    return q / torch.stack([hi, hi**3, hi**5], -1)
