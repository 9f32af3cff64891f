"""``autospec.eigsh``: the lowest (or highest) eigenpairs of a symmetric operator by every method —
filtered subspace iteration with ChFSI's, the power or a learned filter, ARPACK, LOBPCG — behind
one validation, probe, residual test and matvec budget (:mod:`autospec.eigen.subspace`)."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable

import numpy as np
import torch

from autospec.eigen.filters import DEFAULT_DEGREE, MAX_DEGREE, Filter, chebyshev_filter, default_block, power_filter
from autospec.eigen.learned import learned_filter
from autospec.eigen.scipy_baselines import _arpack, _lobpcg
from autospec.eigen.subspace import (
    DEFAULT_PROBE_STEPS,
    EigenInfo,
    _Problem,
    _setup,
    _subspace_iteration,
)
from autospec.core.operators import to_caller, torch_native
from autospec.core.validate import integer, only_for, seed_from, seed_renamed
from autospec.errors import InputValueError

__all__ = ["BASELINES", "FILTERS", "METHODS", "default_block", "eigsh", "filtered_subspace_iteration",
           "solve_eigenproblem"]


FILTERS: dict[str, Callable[[int | None, object], Filter]] = {  # degree None: the method's default
    "chfsi": lambda degree, engine: chebyshev_filter(degree or DEFAULT_DEGREE),
    "rsi": lambda degree, engine: power_filter(degree or DEFAULT_DEGREE),
    "autospec": learned_filter,  # the engine's own degree
}
BASELINES = {"lanczos": _arpack, "lobpcg": _lobpcg}
METHODS = (*FILTERS, *BASELINES)


def _solve(A, k, which, tol, max_matvecs, probe_steps, rng, block, method: str, run):
    """Shared front: validate, probe, ``run(prob)``, sort, verify, undo the negation of ``"LA"``."""
    t0 = time.perf_counter()
    probe_steps = DEFAULT_PROBE_STEPS if probe_steps is None else probe_steps
    prob = _setup(A, k, which, tol, max_matvecs, probe_steps, seed_from(rng), block)
    theta, V, res, info = run(prob)
    theta, order = torch.sort(theta)
    V, res = V[:, order], res[order]
    info.method, info.k = method, prob.k
    info.matvecs = prob.matvecs
    info.residuals = res.tolist()
    info.max_residual = float(res.max())
    over = info.matvecs > prob.budget  # the probe and the first outer iteration always run
    info.converged = info.max_residual <= prob.tol and not over
    info.history = info.history or [(info.matvecs, info.max_residual)]
    if over:
        info.message = (f"not converged: {info.matvecs} products exceed the matvec budget max_matvecs = {prob.budget} "
                        f"(the probe and the first outer iteration always run; max residual {info.max_residual:.2e})")
    elif info.converged:
        info.message = f"converged: max residual {info.max_residual:.2e} <= tol {prob.tol:.1e}" + (
            f" ({info.message})" if info.message else "")
    elif not info.message:
        info.message = f"not converged: max residual {info.max_residual:.2e} > tol {prob.tol:.1e}"
    if which == "LA":
        theta, V = -theta.flip(0), V.flip(1)
    info.seconds = time.perf_counter() - t0
    numpy_out = not torch_native(A)  # NumPy/SciPy in, NumPy out (one rule with solve and matfun)
    return to_caller(theta, numpy_out), to_caller(V, numpy_out), info


def _check_max_degree(max_degree, degree: int) -> None:
    if max_degree is not None and (isinstance(max_degree, bool) or not isinstance(max_degree, (int, np.integer))
                                   or max_degree < degree):
        raise InputValueError(f"max_degree must be an integer >= degree = {degree}, got {max_degree!r}")


def _filter_run(filt: Filter, reprobe: bool, max_degree: int | None, whole_space: bool):
    _check_max_degree(max_degree, filt.degree)
    if not isinstance(whole_space, bool):
        raise InputValueError(f"whole_space must be True or False, got {whole_space!r}")

    def run(prob: _Problem):
        top = max(filt.degree, MAX_DEGREE if max_degree is None else int(max_degree))
        if hasattr(filt, "run"):  # a learned plan runs its own outer iteration
            return filt.run(prob, reprobe, top, whole_space)
        return _subspace_iteration(prob, filt, reprobe, top, whole_space)

    return run


@seed_renamed
def filtered_subspace_iteration(
    A,
    k: int,
    filter: Filter,
    *,
    which: str = "SA",
    block: int | None = None,
    tol: float = 1e-8,
    max_matvecs: int | None = None,
    probe_steps: int = DEFAULT_PROBE_STEPS,
    rng=None,
    reprobe: bool = True,
    max_degree: int | None = None,
    whole_space: bool = True,
) -> tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor, EigenInfo]:
    """k extreme eigenpairs of symmetric A by filtered subspace iteration with any :class:`Filter`.

    ``block`` (> k, default :func:`default_block`) columns are filtered; ``reprobe=False`` keeps
    the probe's interval ``[a, b]`` and ``a_L`` for every iteration instead of updating them from
    the Ritz values. A filter that ``escalates`` (ChFSI's, learned ones) starts at its degree and
    from the second step takes :func:`filter_degree`, at most ``max_degree`` (default 4000; pass
    the filter's degree for fixed-degree ChFSI). With ``whole_space`` (default), when the next filter
    step would cost n products or more (``(degree + 1)·columns >= n``, the first step included) and
    ``n <= 4096`` fits the budget, the answer is the exact Rayleigh–Ritz on the whole space
    (``info.whole_space``); ``False`` keeps the filter to the end, as filter comparisons need.
    Stops when ``max_residual <= tol``, at ``max_matvecs`` (default ``200·n``; the probe and the
    first outer iteration always run, and a run that spent more than ``max_matvecs`` is reported
    not converged, whatever its residual) or on stagnation (no new best max residual, by 0.1 %, in
    50 outer iterations); returns the best pairs seen, ascending.
    """
    run = _filter_run(filter, reprobe, max_degree, whole_space)
    return _solve(A, k, which, tol, max_matvecs, probe_steps, rng, block, "filter", run)


@seed_renamed
def eigsh(
    A,
    k: int = 10,
    *,
    which: str = "SA",
    method: str = "chfsi",
    tol: float = 1e-8,
    degree: int | None = None,
    engine=None,
    rng=None,
    block: int | None = None,
    max_matvecs: int | None = None,
    probe_steps: int | None = None,
    max_degree: int | None = None,
) -> tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor, EigenInfo]:
    """``vals, vecs, info``: the k smallest (``which="SA"``) or largest (``"LA"``) eigenpairs of
    symmetric A (NumPy, SciPy sparse, ``LinearOperator``, torch), values ascending — NumPy arrays for
    NumPy/SciPy input, torch tensors for torch (or ``Operator``) input.

    ``method``: ``"chfsi"`` (Chebyshev filter of ``degree``), ``"rsi"`` (``degree`` power steps on
    ``bI − A`` per Rayleigh–Ritz, Gaussian start), ``"autospec"`` (learned filter of ``engine``),
    ``"lanczos"`` (SciPy/ARPACK ``eigsh``), ``"lobpcg"`` (SciPy, no preconditioner). All share the
    probe, the residual definition (:mod:`autospec.eigen.subspace`), ``tol``, ``max_matvecs`` and
    ``rng`` (None: seed 0, an integer seed or a NumPy ``Generator``). ``degree=None`` and
    ``probe_steps=None``: the learned engine's own (``"autospec"``; a degree that disagrees with it
    raises), else 15 and 50. See :func:`filtered_subspace_iteration` for ``block``, ``max_degree``
    (chfsi and autospec raise their degree on packed wanted ends; rsi keeps ``degree``) and the stopping rules
    (filter methods switch to the exact whole-space Rayleigh–Ritz where a filter step would cost n
    products). ``block`` (default :func:`default_block`) is also LOBPCG's block and the number of
    pairs ARPACK computes.
    """
    return _eigsh(A, k, which, method, tol, degree, engine, rng, block, max_matvecs, probe_steps, max_degree)


@seed_renamed
def solve_eigenproblem(A, k: int = 10, *, reprobe: bool = True, whole_space: bool = True,
                       **options) -> tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor, EigenInfo]:
    """:func:`eigsh` (``options``: its keywords) with the switches of filter comparisons, for the
    evaluation and the benchmarks: ``reprobe=False`` keeps the probe's interval for every
    iteration, ``whole_space=False`` keeps the filter methods from switching to the whole-space
    Rayleigh–Ritz (see :func:`filtered_subspace_iteration`)."""
    bound = inspect.signature(eigsh).bind(A, k, **options)  # eigsh's keywords, checked as eigsh checks them
    bound.apply_defaults()
    return _eigsh(*bound.arguments.values(), reprobe=reprobe, whole_space=whole_space)


def _eigsh(A, k, which, method, tol, degree, engine, rng, block, max_matvecs, probe_steps, max_degree, *,
           reprobe: bool = True, whole_space: bool = True):
    if method not in METHODS:
        raise InputValueError(f"unknown method {method!r}; choose one of {METHODS}")
    only_for(method, "engine", engine, ("autospec",))
    only_for(method, "degree", degree, tuple(FILTERS))
    if method in FILTERS:
        filt = FILTERS[method](integer("degree", degree, 1, none=True), engine)
        if probe_steps is None and method == "autospec":  # the engine's own, as its degree
            probe_steps = filt.engine.probe_steps
        run = _filter_run(filt, reprobe, max_degree, whole_space)
    else:
        run = BASELINES[method]
    return _solve(A, k, which, tol, max_matvecs, probe_steps, rng, block, method, run)
