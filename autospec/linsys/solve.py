"""``autospec.solve``: the front door for SPD linear systems.

``method="cg"`` is plain CG; ``"chebyshev"`` and ``"autospec"`` precondition CG with a degree-d
polynomial built from one Lanczos probe of the (optionally Jacobi-scaled) operator. Jacobi scaling
solves ``(DAD) y = D b`` with ``D = diag(A)^{-1/2}`` and returns ``x = D y``.
"""

from __future__ import annotations

import time

import torch

from autospec.core.intervals import BOUND_STRATEGIES
from autospec.core.operators import Operator, SymmetricScaling, as_operator, as_rhs
from autospec.core.probe import lanczos
from autospec.errors import InputValueError, NotPositiveDefiniteError
from autospec.learned import DEFAULT_ENGINES, load_for
from autospec.linsys.cg import pcg
from autospec.linsys.learned import preconditioner_from_probe
from autospec.linsys.preconditioners import chebyshev_preconditioner
from autospec.linsys.sketched import nystrom_setup, with_shift

METHODS = ("cg", "chebyshev", "autospec", "nystrom")
SCALINGS = ("none", "jacobi")
DEFAULT_ENGINE = DEFAULT_ENGINES["linsys"]


def jacobi_scaling(op: Operator) -> SymmetricScaling:
    """``D A D`` with ``D = diag(A)^{-1/2}``; a non-positive diagonal proves A is not SPD."""
    diag = op.diagonal()
    if bool((diag <= 0).any()):
        i = int(torch.argmin(diag))
        raise NotPositiveDefiniteError(f"Jacobi scaling needs a positive diagonal: A[{i},{i}] = {float(diag[i]):.3e}, "
                                       "so A is not positive definite")
    return SymmetricScaling(op, diag.rsqrt())


def solve(
    A,
    b,
    method: str = "autospec",
    *,
    engine=DEFAULT_ENGINE,
    degree: int = 10,
    probe_steps: int = 50,
    rtol: float = 1e-8,
    atol: float = 0.0,
    maxiter: int | None = None,
    seed: int = 0,
    scaling: str = "none",
    bounds: str = "ritz",
    x0=None,
    callback=None,
    mu: float = 0.0,
    rank: int | None = None,
    polynomial: str | None = None,
):
    """Solve SPD ``(A + μI) x = b`` (``mu`` >= 0, default 0); returns ``(x, info)`` (see
    :class:`autospec.linsys.SolveInfo`). ``method="nystrom"``: randomized Nyström PCG with ``rank``
    (None: the adaptive rule) and ``polynomial`` (None, ``"chebyshev"``, ``"autospec"``: a polynomial
    on the Nyström-preconditioned operator), :mod:`autospec.linsys.sketched`; ``info.rank`` its rank
    and ``info.matvecs`` the sketch's products too.


    ``info.matvecs`` includes the probe; ``info.fallback`` says why a learned polynomial was
    replaced by Chebyshev (``None`` when it was not).
    """
    if method not in METHODS:
        raise InputValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if scaling not in SCALINGS:
        raise InputValueError(f"unknown scaling {scaling!r}; choose one of {SCALINGS}")
    if bounds not in BOUND_STRATEGIES:
        raise InputValueError(f"unknown bounds {bounds!r}; choose one of {BOUND_STRATEGIES}")
    if method != "cg" and degree < 0:
        raise InputValueError(f"degree must be >= 0, got {degree}")
    start = time.perf_counter()
    original = with_shift(as_operator(A, symmetric=True, seed=seed), method, mu, rank, polynomial)
    rhs = as_rhs(b, original)
    op = jacobi_scaling(original) if scaling == "jacobi" else original
    d = op.d if scaling == "jacobi" else None
    rhs_s = rhs if d is None else (d if rhs.ndim == 1 else d.unsqueeze(-1)) * rhs
    x0_s = None if x0 is None else as_rhs(x0, original) / (d if d is not None else 1)

    matvecs0 = op.matvecs
    M, fallback, interval, steps = None, None, None, 0
    sketched = None
    if method == "nystrom":
        sketched = nystrom_setup(op, scaling, rank=rank, seed=seed, polynomial=polynomial, engine=engine,
                                 degree=degree, probe_steps=probe_steps, bounds=bounds)
        M, fallback, interval, steps = sketched.M, sketched.fallback, sketched.interval, sketched.steps
    elif method != "cg":
        probe = lanczos(op, steps=probe_steps, seed=seed)
        steps = probe.steps
        if float(probe.theta_min) <= 0:
            raise NotPositiveDefiniteError(
                f"the Lanczos probe found a Ritz value {float(probe.theta_min):.3e} <= 0; Ritz values lie in the "
                "numerical range of A, so A is not positive definite"
            )
        if method == "chebyshev":
            M = chebyshev_preconditioner(op, probe, degree, bounds)
        else:
            M, fallback = preconditioner_from_probe(load_for(engine, "linsys", "method='autospec' of solve"), op, probe)
        interval = M.interval
    # with scaling, stop on (and report) the residual of the original system: b − Ax = D⁻¹(Db − DAD y)
    weights = None if d is None else 1 / d
    on_iterate = callback if callback is None or d is None else (lambda y: callback(_unscale(d, y)))
    y, info = pcg(op, rhs_s, x0_s, rtol=rtol, atol=atol, maxiter=maxiter, M=M, callback=on_iterate,
                  residual_weights=weights)
    x = y if d is None else _unscale(d, y)
    info.matvecs = op.matvecs - matvecs0 + (sketched.extra_matvecs if sketched else 0)
    info.rank = sketched.rank if sketched else 0
    info.method, info.degree, info.probe_steps = method, (M.degree if M is not None else 0), steps
    info.fallback, info.bounds = fallback, interval
    info.seconds = time.perf_counter() - start
    return x, info


def _unscale(d: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x = D y`` for a vector ``(n,)`` or block ``(n, k)``."""
    return (d if y.ndim == 1 else d.unsqueeze(-1)) * y
