"""Polynomial filters of subspace iteration: what a filter sees (:class:`FilterContext`), the filter
protocol, ChFSI's scaled Chebyshev filter, randomised subspace iteration's power filter, and ChFSI's
degree escalation (:func:`filter_degree`). The learned filter is :mod:`autospec.eigen.learned`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from numpy.polynomial import chebyshev as npcheb

from autospec.core.operators import Operator
from autospec.core.probe import Probe
from autospec.core.recurrences import ChebyshevBasis, Matmat, chebyshev_T
from autospec.errors import InputValueError
from autospec.kernels import polynomial

DEFAULT_DEGREE = 15  # Octopus' default after a 21-system scan (baselines.md §C.4)
MAX_DEGREE = 4000  # default cap of the escalated filter degree
DEGREE_GAIN = 3.0  # an escalated filter gains cosh(3) ≈ 10 on the slowest wanted pair per step
DYNAMIC_RANGE = 1e6  # bound of T_m(ℓ(a_L))/T_m(ℓ(θ)) for an escalated degree


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
    wanted: int = 1  # k
    block: int = 2  # columns filtered
    degree: int | None = None  # degree asked of the filter this iteration (None: its own)


class Polynomial(Protocol):
    def apply(self, matmat: Matmat, Z: torch.Tensor) -> torch.Tensor: ...


class Filter(Protocol):
    """A filter: ``filter(ctx)`` returns a polynomial whose ``apply`` costs ``ctx.degree`` (default
    ``degree``) matvecs; ``escalates``: the outer iteration may raise its degree (:func:`filter_degree`)."""

    degree: int
    escalates: bool

    def __call__(self, ctx: FilterContext) -> Polynomial: ...


CoefficientFn = Callable[[FilterContext, int], torch.Tensor]


@dataclass(frozen=True)
class PolynomialFilter:
    """``p(λ) = Σ_k c_k T_k(ℓ(λ))`` on the unwanted interval, ``c = coefficients(ctx, degree)``.

    ChFSI, RSI and learned filters (``coefficients`` = an engine reading ``ctx``) are all this.
    """

    coefficients: CoefficientFn
    degree: int
    escalates: bool = False

    def __call__(self, ctx: FilterContext) -> ChebyshevBasis:
        degree = ctx.degree or self.degree
        c = torch.as_tensor(self.coefficients(ctx, degree), dtype=ctx.op.dtype, device=ctx.op.device)
        if c.shape != (degree + 1,):
            raise InputValueError(f"filter returned {tuple(c.shape)} coefficients, expected ({degree + 1},)")
        a, b = (torch.tensor(x, dtype=ctx.op.dtype, device=ctx.op.device) for x in (ctx.lower, ctx.upper))
        return ChebyshevBasis(c=c, a=a, b=b)


def apply_filter(poly: Polynomial, op: Operator, V: torch.Tensor) -> torch.Tensor:
    """``p(A) V``: the fused kernels (:func:`autospec.kernels.polynomial.apply`: one C pass per degree
    on a CPU CSR matrix) when they take these operands, else the polynomial's own recurrence."""
    if isinstance(poly, ChebyshevBasis) and polynomial.supported(poly, op, V):
        return polynomial.apply(poly, op, V, 1.0)
    return poly.apply(op.matmat, V)


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
    """ChFSI's scaled Chebyshev filter of the given (starting) degree."""
    return PolynomialFilter(chebyshev_coefficients, degree, escalates=True)


def filter_degree(base: int, max_degree: int, lower: float, upper: float, lowest: float, theta: float) -> int:
    """Degree of the next Chebyshev-type filter (degree escalation, after ChASE's per-vector degrees).

    On the slowest unconverged wanted Ritz value θ a degree-m filter gains ``T_m(|ℓ(θ)|) =
    cosh(m u)``, ``u = acosh|ℓ(θ)|``, per outer iteration: ``≈ e^{m u}/2`` when ``m u ≫ 1`` but only
    ``1 + (m u)²/2`` when the wanted end is packed against the cut (``u ≪ 1/m``), where raising m
    gains up to ``1/(m u)`` times more per matvec. Returns ``⌈3/u⌉`` (a gain of ``cosh 3 ≈ 10``),
    clamped to ``[base, max_degree]`` and to ``ln(1e6)/(u_L − u)`` so that the amplified end stays
    within ``T_m(|ℓ(a_L)|)/T_m(|ℓ(θ)|) <= 1e6`` (rounding of the dominant directions, locked ones
    included, must not swamp θ's); ``base`` when θ is not below the cut.
    """
    u = wanted_rate(lower, upper, theta)
    if u == 0:
        return base
    m = math.ceil(DEGREE_GAIN / u)
    u_lowest = wanted_rate(lower, upper, lowest)
    if u_lowest > u:
        m = min(m, math.floor(math.log(DYNAMIC_RANGE) / (u_lowest - u)))
    return int(min(max(m, base), max_degree))


def wanted_rate(lower: float, upper: float, theta: float) -> float:
    """``u = acosh|ℓ(θ)|`` for θ below the cut (0 otherwise): ``T_m(|ℓ(θ)|) = cosh(m u)``."""
    x = abs(theta - (upper + lower) / 2) / ((upper - lower) / 2)
    return math.acosh(x) if theta < lower and x > 1 else 0.0


def power_filter(degree: int = DEFAULT_DEGREE) -> PolynomialFilter:
    """``degree`` power steps on ``b·I − A`` between orthonormalisations (randomised subspace iteration)."""
    return PolynomialFilter(power_coefficients, degree)


def default_block(k: int, n: int) -> int:
    """Block size ``k + max(4, ⌈k/4⌉)`` (15–25 % extra states, as ChFSI codes use), at most n."""
    return min(n, k + max(4, -(-k // 4)))
