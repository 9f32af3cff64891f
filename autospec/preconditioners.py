"""Polynomial preconditioners for CG: the Chebyshev baseline and the safeguard shared with the
learned engines.

Every polynomial runs on the scaled operator ``X = A/s`` so its coefficients are O(1):
``M r = p(A/s) r / s`` approximates ``A⁻¹ r`` when ``p(x) ≈ 1/x`` on the scaled spectrum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse.linalg as spla
import torch

from autospec.errors import InputValueError
from autospec.operators import Operator
from autospec.probe import Probe
from autospec.recurrences import ChebyshevBasis, ThreeTerm, chebyshev_three_term, evaluate

RITZ_UPPER_SAFETY = 1.01  # ritz bounds: b = 1.01 (θ_max + r_top)
PETSC_BOUNDS = (0.1, 1.1)  # petsc bounds: [0.1, 1.1]·θ_max (PETSc KSPChebyshevEstEigSet defaults)
SAFEGUARD_GRID = 2001  # points of the positivity check on [0, 1.05 s] (uniform + geometric)
SAFEGUARD_MARGIN = 1.05
BOUND_STRATEGIES = ("ritz", "petsc", "exact")


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
        n = self.op.n

        def matmat(V):
            V = np.asarray(V, dtype=np.float64)
            out = self(torch.from_numpy(V.reshape(n, -1)).to(self.op.dtype))
            return out.cpu().numpy().reshape(V.shape)

        return spla.LinearOperator((n, n), matvec=matmat, matmat=matmat, rmatvec=matmat, dtype=np.float64)


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
