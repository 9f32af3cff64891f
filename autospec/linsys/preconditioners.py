"""Polynomial preconditioners for CG: the Chebyshev baseline and the safeguard shared with the
learned engines.

Every polynomial runs on the scaled operator ``X = A/s`` so its coefficients are O(1):
``M r = p(A/s) r / s`` approximates ``A⁻¹ r`` when ``p(x) ≈ 1/x`` on the scaled spectrum.
"""

from __future__ import annotations

from dataclasses import dataclass

import scipy.sparse.linalg as spla
import torch

from autospec.core.intervals import chebyshev_bounds
from autospec.core.operators import Operator, as_linear_operator
from autospec.core.probe import Probe
from autospec.core.recurrences import ChebyshevBasis, ThreeTerm, chebyshev_three_term, evaluate
from autospec.errors import NotPositiveDefiniteError

SAFEGUARD_GRID = 2001  # points of the positivity check on [0, 1.05 s] (uniform + geometric)
SAFEGUARD_MARGIN = 1.05


@dataclass
class PolynomialPreconditioner:
    """``M r = p(A/s) r / s``; callable on torch blocks ``(..., n, k)``.

    Products with A go through ``op.matmat`` and are therefore counted by the operator.
    """

    op: Operator
    poly: ThreeTerm | ChebyshevBasis
    scale: float
    interval: tuple[float, float] | None = None  # [a, b] in A's units, when the polynomial has one

    @property
    def degree(self) -> int:
        return self.poly.degree

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        s = self.scale
        return self.poly.apply(lambda V: self.op.matmat(V) / s, r) / s

    def polynomial(self, lam) -> torch.Tensor:
        """``p_A(λ) = p(λ/s)/s``, the preconditioner's action on an eigenvalue λ of A."""
        lam = torch.as_tensor(lam, dtype=torch.float64)
        return evaluate(self.poly, lam / self.scale) / self.scale

    def as_linear_operator(self) -> spla.LinearOperator:
        """A SciPy ``LinearOperator`` (usable as ``M`` in ``scipy.sparse.linalg.cg``)."""
        return as_linear_operator(self, self.op.n, self.op.dtype)


def check_positive_probe(probe: Probe) -> None:
    """Raise ``NotPositiveDefiniteError`` when the probe found a Ritz value ``<= 0``: Ritz values lie in
    the numerical range of A, so A is not positive definite (every polynomial preconditioner needs it)."""
    if float(probe.theta_min) <= 0:
        raise NotPositiveDefiniteError(
            f"the Lanczos probe found a Ritz value {float(probe.theta_min):.3e} <= 0; Ritz values lie in the "
            "numerical range of A, so A is not positive definite"
        )


def chebyshev_preconditioner(op: Operator, probe: Probe, degree: int, bounds: str = "ritz", eigenvalues=None) -> PolynomialPreconditioner:
    """Degree-d Chebyshev polynomial preconditioner on the probe's interval (scaled by ``b``)."""
    a, b = chebyshev_bounds(probe, bounds, eigenvalues)
    poly = chebyshev_three_term(torch.tensor(a / b, dtype=op.dtype), torch.tensor(1.0, dtype=op.dtype), degree)
    return PolynomialPreconditioner(op, poly, scale=b, interval=(a, b))


def positivity_grid(upper: torch.Tensor | float, points: int = SAFEGUARD_GRID) -> torch.Tensor:
    """Check points on ``[0, 1.05·upper]``: 0, a uniform grid, and a geometric grid from
    ``1e-12·upper`` (small eigenvalues sit far below the first uniform point). Batched over ``upper``."""
    upper = torch.as_tensor(upper, dtype=torch.float64).unsqueeze(-1)
    half = points // 2
    unit = torch.cat([torch.linspace(0, 1, points - half, dtype=torch.float64),
                      torch.logspace(-12, 0, half, dtype=torch.float64)])
    return SAFEGUARD_MARGIN * upper * unit.to(upper.device)


def polynomial_is_safe(poly: ThreeTerm | ChebyshevBasis, upper: float = 1.0) -> bool:
    """Safeguard: finite coefficients and ``p > 0`` on :func:`positivity_grid` (scaled units)."""
    if not bool(torch.isfinite(poly.flat()).all()):
        return False
    values = evaluate(_to_float64(poly), positivity_grid(upper).squeeze(0))
    return bool(torch.isfinite(values).all()) and bool((values > 0).all())


def _to_float64(poly):
    if isinstance(poly, ThreeTerm):
        return ThreeTerm(poly.c0.double(), poly.alpha.double(), poly.beta.double())
    return ChebyshevBasis(poly.c.double(), poly.a.double(), poly.b.double())
