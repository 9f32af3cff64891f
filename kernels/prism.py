"""PRISM (Yang, Wang, Balabanov, Erichson, Mahoney; arXiv:2601.22137): Newton–Schulz-type
iterations whose last Taylor coefficient is fitted per step by a sketched least-squares problem.

The correction ``(1 − r)^{−1/2} = 1 + r/2 + 3r²/8 + …`` truncated at degree d−1, plus a free
``α R^d``: ``g_d(R; α) = f_{d−1}(R) + α R^d``. Degree 2 (default): polar ``X ← X(I + ½R + αR²)``,
``R = I − XᵀX``, α ∈ [3/8, 29/20]; degree 1: ``X ← X(I + αR)``, α ∈ [1/2, 1]. The coupled
square-root version uses the same ``g_d`` in ``Y ← Y g_d(R)``, ``Z ← g_d(R) Z``, ``R = I − Z Y``.

Fit (baselines.md A.3): every matrix is a polynomial in R, so the next residual
``R'(α) = I − (I − R) g_d(R; α)² = P0 − α P1 − α² P2`` with ``h = f_{d−1}``,
``P0 = I − (I−R)h²``, ``P1 = 2(I−R) h R^d``, ``P2 = (I−R) R^{2d}``. With ``U_i = P_i S``
(Gaussian sketch S ∈ ℝ^{n×p}, entries N(0, 1/p), fresh each step; or S = I for the exact fit),
``‖R'(α) S‖_F² = c0 + c1 α + c2 α² + c3 α³ + c4 α⁴``, ``c0 = ‖U0‖², c1 = −2⟨U0,U1⟩,
c2 = ‖U1‖² − 2⟨U0,U2⟩, c3 = 2⟨U1,U2⟩, c4 = ‖U2‖²``, minimised over the interval at its
endpoints and the real roots of ``4c4α³ + 3c3α² + 2c2α + c1``. The sketch costs the 2d+1 thin
products ``R^j S`` (``sketch_matmuls``); the exact fit costs the full powers R², …, R^{2d+1}
(R² is shared with the update).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.polynomial import polynomial as npoly

from autospec.errors import InputValueError
from autospec.kernels.common import (
    KernelInfo,
    Powers,
    SqrtPair,
    accum_dtype,
    coupled_iteration,
    mm,
    polar_iteration,
)

TAYLOR = (1.0, 0.5, 0.375)  # (1 − r)^{−1/2} = 1 + r/2 + 3r²/8 + …
INTERVALS = {1: (0.5, 1.0), 2: (0.375, 1.45)}  # allowed α per degree (lower end = Taylor)
DEFAULT_SKETCH = 8


def residual_map(degree: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ascending coefficients in r of ``P0, P1, P2`` with ``R'(α) = P0 − αP1 − α²P2``."""
    h = np.array(TAYLOR[:degree])
    one_minus = np.array([1.0, -1.0])
    r_d = np.eye(degree + 1)[degree]  # r^d
    P0 = npoly.polysub([1.0], npoly.polymul(one_minus, npoly.polymul(h, h)))
    P1 = 2 * npoly.polymul(one_minus, npoly.polymul(h, r_d))
    P2 = npoly.polymul(one_minus, npoly.polymul(r_d, r_d))
    return P0, P1, P2


def objective_coefficients(sketched_powers: Sequence[torch.Tensor], degree: int) -> torch.Tensor:
    """``(c0, …, c4)`` of ``‖R'(α) S‖_F²`` (float64, shape ``(..., 5)``) from
    ``sketched_powers[j] = R^j S`` (entries not used by the P_i may be ``None``)."""
    U = []
    for P in residual_map(degree):
        terms = [float(coef) * sketched_powers[j].to(torch.float64) for j, coef in enumerate(P) if coef != 0]
        U.append(sum(terms))
    G = [[(U[i] * U[j]).sum(dim=(-2, -1)) for j in range(3)] for i in range(3)]
    return torch.stack([G[0][0], -2 * G[0][1], G[1][1] - 2 * G[0][2], 2 * G[1][2], G[2][2]], dim=-1)


def minimise_quartic(c: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """``argmin_{α∈[lo, hi]} Σ_i c_i α^i`` per batch entry of ``c (..., 5)``: the endpoints and the
    (real parts of the) roots of the derivative, clipped to the interval, are compared."""
    rows = c.detach().to("cpu", torch.float64).numpy().reshape(-1, 5)
    best = np.empty(len(rows))
    for i, coef in enumerate(rows):
        derivative = coef[1:] * np.arange(1, 5)  # ascending: c1, 2c2, 3c3, 4c4
        candidates = [lo, hi]
        scale = np.abs(derivative).max()
        if scale > 0:
            d = derivative / scale
            d[np.abs(d) < 1e-14] = 0.0
            candidates += list(np.clip(npoly.polyroots(np.trim_zeros(d, "b")).real, lo, hi))
        candidates = np.array(candidates)
        values = npoly.polyval(candidates, np.concatenate([[0.0], coef[1:]]))  # c0 is irrelevant
        best[i] = candidates[np.argmin(values)]
    return torch.from_numpy(best.reshape(c.shape[:-1])).to(c.device)


def gaussian_sketch(shape: tuple[int, ...], p: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """``S (..., n, p)`` with i.i.d. N(0, 1/p) entries, drawn in float64 on the generator's device."""
    S = torch.randn(*shape, p, generator=generator, dtype=torch.float64, device=generator.device) / p**0.5
    return S.to(like.device, accum_dtype(like.dtype))


def _fitted(info: KernelInfo, degree: int, sketch: int | None, generator: torch.Generator | None):
    """Coefficient callback ``(k, powers) -> (f_{d−1} coefficients…, α_k)`` for the residual loops."""
    if degree not in INTERVALS:
        raise InputValueError(f"PRISM degree must be one of {sorted(INTERVALS)}, got {degree}")
    lo, hi = INTERVALS[degree]
    generator = generator if generator is not None else torch.Generator().manual_seed(0)

    def coefficients(k: int, powers: Powers) -> tuple:
        top = 2 * degree + 1
        if sketch is None:
            sketched = [None] + [powers[j] for j in range(1, top + 1)]
        else:
            R = powers.R.to(accum_dtype(powers.R.dtype))
            sketched = [gaussian_sketch(R.shape[:-1], sketch, generator, powers.R)]
            for _ in range(top):
                sketched.append(mm(info, R, sketched[-1], thin=True))
        alpha = minimise_quartic(objective_coefficients(sketched, degree), lo, hi)
        info.alphas.append(alpha)
        return (*TAYLOR[:degree], alpha)

    return coefficients


def prism_polar(G: torch.Tensor, *, degree: int = 2, sketch: int | None = DEFAULT_SKETCH, iters: int | None = None,
                tol: float = 1e-6, max_iters: int | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, KernelInfo]:
    """Polar factor of ``G (..., m, n)`` by PRISM: ``X ← X g_d(R; α_k)`` from ``X_0 = G/‖G‖_F``.

    ``sketch`` is p (None: exact fit, S = I). Matmuls, degree 2: sketched ``3·iters + 1`` (plus
    ``5·iters`` thin products), exact ``6·iters + 1``.
    """
    info = KernelInfo()
    X = polar_iteration(G, _fitted(info, degree, sketch, generator), info, iters=iters, tol=tol,
                        max_iters=max_iters)
    return X, info


def prism_sqrt(A: torch.Tensor, *, degree: int = 2, sketch: int | None = DEFAULT_SKETCH, iters: int | None = None,
               tol: float = 1e-6, max_iters: int | None = None,
               generator: torch.Generator | None = None) -> tuple[SqrtPair, KernelInfo]:
    """``(A^{1/2}, A^{−1/2})`` of SPD ``A (..., n, n)`` by coupled PRISM: ``Y_0 = A/‖A‖_F, Z_0 = I``,
    ``Y ← Y g_d(R; α_k)``, ``Z ← g_d(R; α_k) Z``, ``R = I − Z Y``.

    Matmuls, degree 2: sketched ``4·iters − 1`` (plus ``5·iters`` thin), exact ``7·iters − 1``.
    """
    info = KernelInfo()
    pair = coupled_iteration(A, _fitted(info, degree, sketch, generator), info, iters=iters, tol=tol,
                             max_iters=max_iters)
    return pair, info
