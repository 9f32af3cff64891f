"""Lowest eigenpairs of symmetric operators: filtered subspace iteration and its baselines.

One outer iteration serves every polynomial filter (ChFSI, randomised subspace iteration, learned
filters); only the filter differs (Zhou & Saad 2007, ``baselines.md`` §C.4)::

    probe (Lanczos, counted):  b = θ_max + β_m (safe λmax bound),  ‖A‖_est = max_j |θ_j|
    V ← orth(Gaussian n×block)
    repeat:  W = p(A) V            (deg p matvecs per active column)
             V ← orth(W ⟂ locked)  (QR; dependent/non-finite columns replaced by random ones)
             Rayleigh–Ritz on V    (1 matvec per active column), residuals, lock converged pairs
             a ← θ_max(V) (the block-th Ritz value), a_L ← smallest Ritz value

ChFSI's filter is ``p(λ) = T_m(ℓ(λ))/T_m(ℓ(a_L))`` with ``ℓ(λ) = (λ − c)/e``, ``c = (a+b)/2``,
``e = (b−a)/2``: bounded by ``1/|T_m(ℓ(a_L))|`` on the unwanted ``[a, b]``, 1 at ``a_L``.

Residual definition, the same for every method (well defined for indefinite A and θ ≈ 0)::

    r_j = ‖A v_j − θ_j v_j‖₂ / ‖A‖_est   (‖v_j‖₂ = 1),   info.max_residual = max_{j ≤ k} r_j

with ``‖A‖_est = max_j |θ_j|`` over the Ritz values of the shared probe (``≤ ‖A‖₂``, so the test
is never looser than one relative to ``‖A‖₂``). A run has converged when ``max_residual <= tol``;
then every returned eigenvalue lies within ``tol·‖A‖₂`` of an eigenvalue of A. ``info.matvecs``
counts every product with A, the probe included, for every method.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np
import scipy.sparse.linalg as spla
import torch
from numpy.polynomial import chebyshev as npcheb

from autospec.errors import InputValueError
from autospec.operators import Operator, as_operator
from autospec.probe import Probe, lanczos
from autospec.recurrences import ChebyshevBasis, Matmat, chebyshev_T

WHICH = ("SA", "LA")
DEFAULT_DEGREE = 15  # Octopus' default after a 21-system scan (baselines.md §C.4)
DEFAULT_PROBE_STEPS = 50
BUDGET_PER_ROW = 200  # default max_matvecs = 200·n
RANK_RTOL = 1e-10  # |R_jj| of a unit column below this: numerically dependent, replaced
MIN_INTERVAL = 1e-2  # keep b − a >= 1e-2·(b − a_L) so the filter is finite when block ≈ n
STAGNATION_WINDOW = 20  # outer iterations allowed without ...
STAGNATION_FACTOR = 0.5  # ... halving the best max residual
ARPACK_TOL_SAFETY = 0.5  # ARPACK's Ritz estimates vs. true residuals


@dataclass
class FilterContext:
    """What a filter sees: the operator, the probe and the current spectral estimates.

    ``ritz``/``residuals`` are the current Ritz values (ascending) and relative residuals; before
    the first Rayleigh–Ritz they are the probe's.
    """

    op: Operator
    probe: Probe
    lower: float  # a: lower end of the unwanted interval
    upper: float  # b: safe upper bound of λmax
    lowest: float  # a_L: smallest Ritz value (the filter is normalised to 1 there)
    ritz: torch.Tensor
    residuals: torch.Tensor
    iteration: int


class Polynomial(Protocol):
    def apply(self, matmat: Matmat, Z: torch.Tensor) -> torch.Tensor: ...


class Filter(Protocol):
    """A filter: ``filter(ctx)`` returns a polynomial whose ``apply`` costs ``degree`` matvecs."""

    degree: int

    def __call__(self, ctx: FilterContext) -> Polynomial: ...


CoefficientFn = Callable[[FilterContext, int], torch.Tensor]


@dataclass(frozen=True)
class PolynomialFilter:
    """``p(λ) = Σ_k c_k T_k(ℓ(λ))`` on the unwanted interval, ``c = coefficients(ctx, degree)``.

    ChFSI, RSI and learned filters (``coefficients`` = an engine reading ``ctx``) are all this.
    """

    coefficients: CoefficientFn
    degree: int

    def __call__(self, ctx: FilterContext) -> ChebyshevBasis:
        c = torch.as_tensor(self.coefficients(ctx, self.degree), dtype=ctx.op.dtype, device=ctx.op.device)
        if c.shape != (self.degree + 1,):
            raise InputValueError(f"filter returned {tuple(c.shape)} coefficients, expected ({self.degree + 1},)")
        a, b = (torch.tensor(x, dtype=ctx.op.dtype, device=ctx.op.device) for x in (ctx.lower, ctx.upper))
        return ChebyshevBasis(c=c, a=a, b=b)


def _ell(ctx: FilterContext, lam: float) -> float:
    """``ℓ(λ) = (λ − c)/e`` of the unwanted interval."""
    return (lam - (ctx.upper + ctx.lower) / 2) / ((ctx.upper - ctx.lower) / 2)


def chebyshev_coefficients(ctx: FilterContext, degree: int) -> torch.Tensor:
    """ChFSI: ``c = e_m / T_m(ℓ(a_L))``, i.e. ``p(λ) = T_m(ℓ(λ))/T_m(ℓ(a_L))``."""
    c = torch.zeros(degree + 1, dtype=torch.float64)
    c[degree] = 1.0 / float(chebyshev_T(degree, np.array([_ell(ctx, ctx.lowest)]))[0])
    return c


def power_coefficients(ctx: FilterContext, degree: int) -> torch.Tensor:
    """RSI: ``p(λ) = ((b − λ)/(b − a_L))^m = ((1 − ℓ(λ))/(1 − ℓ(a_L)))^m`` in the Chebyshev basis."""
    c = npcheb.chebpow([1.0, -1.0], degree) / (1.0 - _ell(ctx, ctx.lowest)) ** degree
    return torch.from_numpy(c)


def chebyshev_filter(degree: int = DEFAULT_DEGREE) -> PolynomialFilter:
    """ChFSI's scaled Chebyshev filter of the given degree."""
    return PolynomialFilter(chebyshev_coefficients, degree)


def power_filter(degree: int = DEFAULT_DEGREE) -> PolynomialFilter:
    """``degree`` power steps on ``b·I − A`` between orthonormalisations (randomised subspace iteration)."""
    return PolynomialFilter(power_coefficients, degree)


@dataclass
class EigenInfo:
    """What an eigensolve did. ``max_residual`` is ``max_{j≤k} ‖Av_j − θ_j v_j‖/‖A‖_est`` (module
    docstring); ``history`` holds ``(matvecs, max_residual)`` after each outer iteration of the
    filter methods; ``outer_iters`` counts filter+Rayleigh–Ritz steps (chfsi, rsi, autospec),
    LOBPCG iterations, or Lanczos steps (= products requested by ARPACK)."""

    outer_iters: int = 0
    matvecs: int = 0
    converged: bool = False
    max_residual: float = float("inf")
    seconds: float = 0.0
    stagnated: bool = False
    message: str = ""
    method: str = "chfsi"
    k: int = 0
    block: int = 0
    degree: int = 0
    residuals: list[float] = field(default_factory=list)
    history: list[tuple[int, float]] = field(default_factory=list)
    interval: tuple[float, float, float] | None = None  # final (a_L, a, b) of the filter methods


