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

from autospec.core.intervals import chebyshev_bounds
from autospec.core.operators import Operator, as_linear_operator, as_operator, torch_block
from autospec.core.probe import Probe, lanczos
from autospec.core.validate import integer, seed_from, seed_renamed
from autospec.core.recurrences import ChebyshevBasis, ThreeTerm, chebyshev_three_term, evaluate
from autospec.errors import NotPositiveDefiniteError
from autospec.kernels import polynomial

SAFEGUARD_GRID = 2001  # points of the positivity check on [0, 1.05 s] (uniform + geometric)
SAFEGUARD_MARGIN = 1.05


@dataclass
class PolynomialPreconditioner:
    """``M r = p(A/s) r / s``; callable on torch blocks ``(..., n, k)``, and usable as SciPy's ``M``
    as it is (``shape``, ``dtype``, ``matvec``/``matmat`` on NumPy arrays: what
    ``scipy.sparse.linalg.aslinearoperator`` reads).

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
        if polynomial.supported(self.poly, self.op, r):  # fused, in place (autospec.kernels.polynomial)
            return polynomial.apply(self.poly, self.op, r, s)
        return self.poly.apply(lambda V: self.op.matmat(V) / s, r) / s

    def polynomial(self, lam) -> torch.Tensor:
        """``p_A(λ) = p(λ/s)/s``, the preconditioner's action on an eigenvalue λ of A."""
        lam = torch.as_tensor(lam, dtype=torch.float64)
        return evaluate(self.poly, lam / self.scale) / self.scale

    def as_linear_operator(self) -> spla.LinearOperator:
        """A SciPy ``LinearOperator`` (usable as ``M`` in ``scipy.sparse.linalg.cg``)."""
        return as_linear_operator(self, self.op.n, self.op.dtype)

    @property
    def shape(self) -> tuple[int, int]:
        return self.op.shape

    @property
    def dtype(self) -> np.dtype:  # the NumPy side of the SciPy protocol (products run in op's dtype)
        return np.dtype(np.float64)

    def matmat(self, X: np.ndarray) -> np.ndarray:
        """``M X`` for a NumPy vector or block (SciPy's protocol)."""
        X = np.asarray(X, dtype=np.float64)
        return self(torch_block(X, self.op.n, self.op.dtype, self.op.device)).cpu().numpy().reshape(X.shape)

    matvec = rmatvec = rmatmat = matmat


def check_positive_probe(probe: Probe) -> None:
    """Raise ``NotPositiveDefiniteError`` when the probe found a Ritz value ``<= 0``: Ritz values lie in
    the numerical range of A, so A is not positive definite (every polynomial preconditioner needs it)."""
    if float(probe.theta_min) <= 0:
        raise NotPositiveDefiniteError(
            f"the Lanczos probe found a Ritz value {float(probe.theta_min):.3e} <= 0; Ritz values lie in the "
            "numerical range of A, so A is not positive definite"
        )


@seed_renamed
def chebyshev_preconditioner(A, probe: Probe | None = None, degree: int = 10, bounds: str = "ritz", eigenvalues=None,
                             *, probe_steps: int = 50, rng=None) -> PolynomialPreconditioner:
    """Degree-d Chebyshev polynomial preconditioner ``M ≈ A⁻¹`` on the probe's interval (scaled by ``b``).

    ``A``: anything :func:`autospec.as_operator` takes (SciPy, NumPy, torch, LinearOperator,
    ``Operator``). ``probe=None`` probes A here (``probe_steps`` Lanczos steps from a start seeded by
    ``rng``: None for seed 0, an integer seed or a NumPy ``Generator``; A must be SPD as in
    :func:`autospec.solve`). The result is a torch callable and, as it is, SciPy's ``M``::

        M = autospec.chebyshev_preconditioner(A, degree=10)
        x, code = scipy.sparse.linalg.cg(A, b, M=M, rtol=1e-8)
    """
    degree, seed = integer("degree", degree, 0), seed_from(rng)
    op = as_operator(A, symmetric=probe is None, seed=seed)
    if probe is None:
        probe = lanczos(op, steps=integer("probe_steps", probe_steps, 1), seed=seed)
        check_positive_probe(probe)
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
