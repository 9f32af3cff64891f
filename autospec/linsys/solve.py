"""``autospec.solve``: the front door for SPD linear systems.

``method="cg"`` is plain CG (optionally with the caller's ``M``); ``"chebyshev"`` and ``"autospec"``
precondition CG with a degree-d polynomial built from one Lanczos probe of the (optionally
Jacobi-scaled) operator. Jacobi scaling solves ``(DAD) y = D b`` with ``D = diag(A)^{-1/2}`` and
returns ``x = D y``. Every argument is checked before the first product with A.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from autospec.core.intervals import BOUND_STRATEGIES
from autospec.core.operators import Operator, SymmetricScaling, as_operator, as_rhs, to_caller, torch_native
from autospec.core.probe import lanczos
from autospec.core.validate import choice, integer, only_for, seed_from, seed_renamed, tolerances
from autospec.errors import InputTypeError, InputValueError, NotPositiveDefiniteError
from autospec.learned import DEFAULT_ENGINES, load_for
from autospec.linsys.cg import SolveInfo, pcg
from autospec.linsys.deflation import DeflatedOperator, probe_deflation
from autospec.linsys.learned import plan_from_probe, preconditioner_from_probe
from autospec.linsys.preconditioners import chebyshev_preconditioner, check_positive_probe
from autospec.linsys.sketched import nystrom_setup, with_shift

METHODS = ("cg", "chebyshev", "autospec", "nystrom")
SCALINGS = ("none", "jacobi")
DEFAULT_ENGINE = DEFAULT_ENGINES["linsys"]
CHEBYSHEV_DEGREE = 10  # method="chebyshev" with degree=None
PROBE_STEPS = 50  # method="chebyshev" with probe_steps=None (autospec: the engine's own)
NO_DEFLATION = "the probe's Ritz vectors are numerically dependent: chose the best candidate without deflation"


def jacobi_scaling(op: Operator) -> SymmetricScaling:
    """``D A D`` with ``D = diag(A)^{-1/2}``; a non-positive diagonal proves A is not SPD."""
    diag = op.diagonal()
    if bool((diag <= 0).any()):
        i = int(torch.argmin(diag))
        raise NotPositiveDefiniteError(f"Jacobi scaling needs a positive diagonal: A[{i},{i}] = {float(diag[i]):.3e}, "
                                       "so A is not positive definite")
    return SymmetricScaling(op, diag.rsqrt())


@seed_renamed
def solve(
    A,
    b,
    method: str = "autospec",
    *,
    engine=None,
    degree: int | None = None,
    probe_steps: int | None = None,
    rtol: float = 1e-8,
    atol: float = 0.0,
    maxiter: int | None = None,
    rng=None,
    scaling: str = "none",
    bounds: str = "ritz",
    x0=None,
    callback=None,
    mu: float = 0.0,
    rank: int | None = None,
    polynomial: str | None = None,
    M=None,
) -> tuple[np.ndarray | torch.Tensor, SolveInfo]:
    """Solve SPD ``(A + μI) x = b`` (``mu`` >= 0, default 0); returns ``(x, info)`` (see
    :class:`autospec.linsys.SolveInfo`). ``method="nystrom"``: randomized Nyström PCG with ``rank``
    (None: the adaptive rule) and ``polynomial`` (None, ``"chebyshev"``, ``"autospec"``: a polynomial
    on the Nyström-preconditioned operator), :mod:`autospec.linsys.sketched`; ``info.rank`` its rank
    and ``info.matvecs`` the sketch's products too. ``rng`` (None: seed 0, an integer seed or a
    NumPy ``Generator``) seeds the probe's start vector, the symmetry check and the sketch.

    ``x`` (and what ``callback(xk)`` receives) is a NumPy array for NumPy/SciPy input, a torch
    tensor for torch input. ``degree``/``probe_steps``: ``None`` takes the learned engine's own
    (``method="autospec"``; a degree that disagrees with the engine raises) or 10 and 50
    (``"chebyshev"``); ``method="cg"`` takes neither, nor ``engine``. ``M`` (a preconditioner as in
    :func:`autospec.pcg`) is only for ``method="cg"``. ``info.matvecs`` includes the probe and the
    true-residual check; ``info.converged`` means the true residual meets ``max(rtol‖b‖, atol)``;
    ``info.fallback`` says why a learned polynomial was replaced by Chebyshev (``None`` when it was
    not). The default ``rtol=1e-8`` (SciPy's ``cg``: 1e-5; :func:`autospec.pcg` keeps SciPy's) is
    the accuracy the paper's tables and this library's evaluations compare methods at.
    """
    choice("method", method, METHODS)
    choice("scaling", scaling, SCALINGS)
    choice("bounds", bounds, BOUND_STRATEGIES)
    tolerances(rtol, atol)
    integer("maxiter", maxiter, 0, none=True)
    seed = seed_from(rng)
    degree = integer("degree", degree, 0, none=True)
    probe_steps = integer("probe_steps", probe_steps, 1, none=True)
    if callback is not None and not callable(callback):
        raise InputTypeError(f"callback must be callable, got {type(callback).__name__}")
    for name, value, used_by in (("engine", engine, ("autospec", "nystrom")),
                                 ("degree", degree, ("chebyshev", "autospec", "nystrom")),
                                 ("probe_steps", probe_steps, ("chebyshev", "autospec", "nystrom")),
                                 ("M", M, ("cg",))):
        only_for(method, name, value, used_by)
    learned = None
    if method == "autospec":
        learned = load_for(DEFAULT_ENGINE if engine is None else engine, "linsys", "method='autospec' of solve")
        if degree is not None and degree != learned.degree:
            raise InputValueError(f"degree={degree} disagrees with engine {learned.name!r}, which emits degree-"
                                  f"{learned.degree} polynomials; leave degree=None (or pass {learned.degree})")
        probe_steps = learned.probe_steps if probe_steps is None else probe_steps
    elif method == "chebyshev":
        degree = CHEBYSHEV_DEGREE if degree is None else degree
        probe_steps = PROBE_STEPS if probe_steps is None else probe_steps

    start = time.perf_counter()
    numpy_out = not torch_native(A, b)
    original = with_shift(as_operator(A, symmetric=True, seed=seed), method, mu, rank, polynomial)
    rhs = as_rhs(b, original)
    op = jacobi_scaling(original) if scaling == "jacobi" else original
    d = op.d if scaling == "jacobi" else None
    rhs_s = rhs if d is None else _scale_by(d, rhs)
    x0_s = x0 if x0 is None or isinstance(x0, str) else as_rhs(x0, original) / (d if d is not None else 1)
    if isinstance(x0, str) and method != "cg":
        raise InputValueError(f"x0={x0!r} is only understood by method='cg' (with M); give an array or None")

    matvecs0 = op.matvecs
    fallback, interval, steps, deflation = None, None, 0, None
    sketched, probe = None, None
    if method == "nystrom":
        sketched = nystrom_setup(op, scaling, rank=rank, seed=seed, polynomial=polynomial, engine=engine,
                                 degree=degree, probe_steps=probe_steps, bounds=bounds)
        M, fallback, interval, steps = sketched.M, sketched.fallback, sketched.interval, sketched.steps
    elif method != "cg":
        probe = lanczos(op, steps=probe_steps, seed=seed)
        steps = probe.steps
        check_positive_probe(probe)
        if method == "chebyshev":
            M = chebyshev_preconditioner(op, probe, degree, bounds)
        else:
            M, fallback, k = plan_from_probe(learned, op, probe)
            deflation = probe_deflation(op, probe, k) if k else None
            if k and deflation is None:
                M, fallback = preconditioner_from_probe(learned, op, probe)
                fallback = NO_DEFLATION
        interval = M.interval
    # deflated: CG on PA x̃ = Pb, x = Qb + Pᵀx̃ (autospec.linsys.deflation); the residuals are the same
    system, rhs_d = (op, rhs_s) if deflation is None else (DeflatedOperator(op, deflation),
                                                           _columns(deflation.project, rhs_s))
    solution = (lambda y: y) if deflation is None else (lambda y: deflation.solution(rhs_s, y))
    # with scaling, stop on (and report) the residual of the original system: b − Ax = D⁻¹(Db − DAD y)
    weights = None if d is None else 1 / d
    unscale = (lambda y: y) if d is None else (lambda y: _scale_by(d, y))
    report = None if callback is None else (lambda y: callback(to_caller(unscale(y), numpy_out)))
    on_iterate = None if report is None else (lambda y: report(solution(y)))
    y, info = pcg(system, rhs_d, x0_s, rtol=rtol, atol=atol, maxiter=maxiter, M=M, callback=on_iterate,
                  residual_weights=weights)
    y = solution(y)
    if deflation is not None:
        y = _finish_on_the_original_system(info, op, rhs_s, y, M, weights, rtol, atol, maxiter, report)
    x = unscale(y)
    info.matvecs = op.matvecs - matvecs0 + (sketched.extra_matvecs if sketched else 0)
    info.rank = sketched.rank if sketched else 0
    info.method = method
    info.degree = getattr(M, "degree", 0) if method != "cg" else 0
    info.probe_steps, info.fallback, info.bounds = steps, fallback, interval
    if probe is not None:
        info.probe_seconds, info.probe_spmv_equivalents = probe.seconds, probe.spmv_equivalents or 0.0
    info.deflated = 0 if deflation is None else deflation.rank
    info.seconds = time.perf_counter() - start
    return to_caller(x, numpy_out), info


def _finish_on_the_original_system(info: SolveInfo, op: Operator, b: torch.Tensor, x: torch.Tensor, M,
                                   weights: torch.Tensor | None, rtol: float, atol: float, maxiter: int | None,
                                   callback) -> torch.Tensor:
    """Deflated CG checked ``P(b − A x̃)``, equal to ``b − A x`` only in exact arithmetic (the gap grows
    with ``E⁻¹ = (WᵀAW)⁻¹``). PCG on ``A x = b`` from ``x`` (same ``M``, no deflation) computes the
    true residual (one counted product) and, when it misses ``max(rtol‖b‖, atol)``, iterates for
    what is left of ``maxiter``; ``info`` takes its iterations, residuals and verdict. Returns x."""
    left = (10 * op.n if maxiter is None else maxiter) - info.outer_iters
    x, more = pcg(op, b, x, rtol=rtol, atol=atol, maxiter=max(left, 0), M=M, callback=callback,
                  residual_weights=weights)
    info.outer_iters += more.outer_iters
    info.history += more.history[1:]
    info.residual_checks += more.residual_checks + 1
    info.restarts += more.restarts
    info.converged, info.rel_residual = more.converged, more.rel_residual
    if more.outer_iters:
        info.message = (f"the deflated system met the tolerance, b − Ax did not: {more.outer_iters} more "
                        f"iterations on A x = b ({more.message})")
    elif not more.converged:
        info.message = (f"not converged: the true residual of x is {info.rel_residual:.2e} "
                        f"({info.message or more.message})")
    return x


def _columns(fn, v: torch.Tensor) -> torch.Tensor:
    """``fn`` (on blocks ``(n, k)``) applied to a vector ``(n,)`` or a block."""
    return fn(v.unsqueeze(-1)).squeeze(-1) if v.ndim == 1 else fn(v)


def _scale_by(d: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``D y`` for a vector ``(n,)`` or block ``(n, k)`` (``x = D y``, ``D b``)."""
    return (d if y.ndim == 1 else d.unsqueeze(-1)) * y
