"""Nyström PCG inside ``autospec.solve`` (``method="nystrom"``), alone or with a polynomial on top.

``polynomial=None``: PCG on ``A_μ = A + μI`` with the Nyström preconditioner ``P⁻¹``
(:mod:`autospec.sketch.nystrom`). ``polynomial="chebyshev"`` or ``"autospec"`` — *Nyström deflation
+ polynomial*: the sketch removes the top of the spectrum, ``B = P^{−½} A_μ P^{−½}`` keeps the rest
(its eigenvalues lie in ``[λ_min(A_μ)/(λ̂_ℓ+μ), ~1]`` up to the sketch's error), and a degree-d
polynomial ``p`` from one Lanczos probe of B (Chebyshev on the probe interval, or the learned
engine, with the usual safeguard) handles it; PCG on ``A_μ`` runs with

    M = P^{−½} p(B) P^{−½}                  (SPD whenever p > 0 on the spectrum of B)

so one outer iteration costs ``d + 1`` products with A, as for the plain polynomial methods.
Without Jacobi scaling the sketch is of A and μ enters the preconditioner formula; with Jacobi
scaling it is of the scaled operator ``D A_μ D`` with ``μ = 0`` in the formula.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from autospec.core.operators import Operator
from autospec.core.probe import lanczos
from autospec.errors import InputValueError
from autospec.learned import DEFAULT_ENGINES, load_for
from autospec.linsys.learned import preconditioner_from_probe
from autospec.linsys.preconditioners import PolynomialPreconditioner, chebyshev_preconditioner
from autospec.sketch.nystrom import NystromPreconditioner, Preconditioned, Shifted, adaptive_nystrom, check_mu, nystrom

POLYNOMIALS = (None, "chebyshev", "autospec")
CHEBYSHEV_DEGREE, PROBE_STEPS = 10, 50  # polynomial="chebyshev" with degree / probe_steps None


class DeflatedPolynomial:
    """``M = P^{−½} p(B) P^{−½}`` on torch blocks ``(..., n, k)`` (products with A through B's operator)."""

    def __init__(self, P: NystromPreconditioner, inner: PolynomialPreconditioner):
        self.P, self.inner = P, inner
        self.degree, self.interval = inner.degree, inner.interval

    def __call__(self, R: torch.Tensor) -> torch.Tensor:
        return self.P.sqrt_inverse(self.inner(self.P.sqrt_inverse(R)))


@dataclass
class NystromSetup:
    """What ``solve`` needs from :func:`nystrom_setup`: the preconditioner ``M``, the fallback reason
    of a learned polynomial (or None), its interval and probe steps, the Nyström rank, and the
    products with A spent outside the operator CG counts on (``extra_matvecs``)."""

    M: NystromPreconditioner | DeflatedPolynomial
    fallback: str | None
    interval: tuple[float, float] | None
    steps: int
    rank: int
    extra_matvecs: int


def with_shift(op: Operator, method: str, mu, rank, polynomial) -> Operator:
    """``A + μI`` (or A when μ = 0) after checking ``mu >= 0`` and that ``rank``/``polynomial``
    are only given to ``method="nystrom"``."""
    mu = check_mu(mu)
    if method != "nystrom" and (rank is not None or polynomial is not None):
        raise InputValueError(f"rank and polynomial are settings of method='nystrom', not of {method!r}")
    if polynomial not in POLYNOMIALS:
        raise InputValueError(f"unknown polynomial {polynomial!r} for method='nystrom'; choose one of {POLYNOMIALS}")
    return Shifted(op, mu) if mu > 0 else op


def nystrom_setup(op: Operator, scaling: str, *, rank: int | None, seed: int, polynomial: str | None, engine,
                  degree: int | None, probe_steps: int | None, bounds: str) -> NystromSetup:
    """The preconditioner of ``method="nystrom"`` for PCG on ``op`` (``A + μI``, maybe Jacobi-scaled):
    a sketch of A with μ in the formula (``scaling="none"``), else of ``op`` itself with μ = 0."""
    target, mu = op, 0.0
    if scaling == "none":
        target, mu = (op.inner, op.mu) if isinstance(op, Shifted) else (op, 0.0)
    before = target.matvecs
    approx = adaptive_nystrom(target, mu, rng=seed) if rank is None else nystrom(target, int(rank), rng=seed)
    extra = target.matvecs - before if target is not op else 0
    P = NystromPreconditioner(approx, mu)
    if polynomial is None:
        return NystromSetup(P, None, None, 0, P.rank, extra)
    B = Preconditioned(op, P)
    if polynomial == "chebyshev":
        probe = lanczos(B, steps=probe_steps or PROBE_STEPS, seed=seed)
        inner, fallback = chebyshev_preconditioner(B, probe, degree or CHEBYSHEV_DEGREE, bounds), None
    else:
        learned = load_for(engine or DEFAULT_ENGINES["linsys"], "linsys", "polynomial='autospec' of solve")
        if degree is not None and degree != learned.degree:
            raise InputValueError(f"degree={degree} disagrees with engine {learned.name!r} (degree {learned.degree})")
        probe = lanczos(B, steps=probe_steps or learned.probe_steps, seed=seed)
        inner, fallback = preconditioner_from_probe(learned, B, probe)
    return NystromSetup(DeflatedPolynomial(P, inner), fallback, inner.interval, probe.steps, P.rank, extra)
