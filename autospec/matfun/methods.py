"""The classical methods of :mod:`autospec.matfun`: the baseline kernels of :mod:`autospec.kernels`
behind one calling convention (``kernel(A, *, tol, max_iters, engine) -> (X, KernelInfo)``), and
the Chebyshev interpolant of the matrix-free action."""

from __future__ import annotations

from collections.abc import Callable

import torch

from autospec.core.intervals import spectral_interval
from autospec.core.probe import Probe
from autospec.core.recurrences import ChebyshevBasis, chebyshev_interpolant
from autospec.errors import InputValueError
from autospec.kernels import reference
from autospec.kernels.common import KernelInfo
from autospec.kernels.inverse_newton import inverse_newton
from autospec.kernels.newton_schulz import coupled_newton_schulz, newton_schulz_polar
from autospec.kernels.polar import muon, polar_express
from autospec.kernels.prism import prism_polar, prism_sqrt
from autospec.matfun.task import SCALAR_FUNCTIONS

Kernel = Callable[..., tuple[torch.Tensor, KernelInfo]]  # (A, *, tol, max_iters, engine) -> (X, info)

MUON_ITERS = 5


def step_keywords(tol: float | None, max_iters: int | None, default: int | None = None) -> dict:
    """Kernel keywords: tolerance mode, or exactly ``max_iters`` steps when ``tol is None``."""
    if tol is None:
        if max_iters is None:
            raise InputValueError("tol=None runs a fixed number of iterations: give max_iters")
        return {"iters": max_iters, "tol": 0.0}
    return {"iters": None, "tol": tol, "max_iters": default if max_iters is None else max_iters}


def _newton_schulz_pair(part: str) -> Kernel:
    def run(A, *, tol, max_iters, engine):
        pair, info = coupled_newton_schulz(A, **step_keywords(tol, max_iters))
        return getattr(pair, part), info

    return run


def _prism_pair(part: str) -> Kernel:
    def run(A, *, tol, max_iters, engine):
        pair, info = prism_sqrt(A, **step_keywords(tol, max_iters))
        return getattr(pair, part), info

    return run


def _inverse_newton_inv_sqrt(A, *, tol, max_iters, engine):
    return inverse_newton(A, 2, **step_keywords(tol, max_iters))


def _inverse_newton_sqrt(A, *, tol, max_iters, engine):
    """``A^{1/2} = A · A^{−1/2}`` (one more GEMM)."""
    X, info = inverse_newton(A, 2, **step_keywords(tol, max_iters))
    info.matmuls += 1
    return A @ X, info


def _exact(fn: Callable[[torch.Tensor], torch.Tensor]) -> Kernel:
    def run(A, *, tol, max_iters, engine):
        return fn(A).to(A.dtype), KernelInfo(converged=True)

    return run


def _polar_kernel(kernel: Callable, default: int | None = None) -> Kernel:
    def run(G, *, tol, max_iters, engine):
        return kernel(G, **step_keywords(tol, max_iters, default))

    return run


BASELINES: dict[str, dict[str, Kernel]] = {
    "inv_sqrt": {
        "newton_schulz": _newton_schulz_pair("inv_sqrt"),
        "prism": _prism_pair("inv_sqrt"),
        "inverse_newton": _inverse_newton_inv_sqrt,
        "eigh": _exact(reference.inv_sqrt),
    },
    "sqrt": {
        "newton_schulz": _newton_schulz_pair("sqrt"),
        "prism": _prism_pair("sqrt"),
        "inverse_newton": _inverse_newton_sqrt,
        "eigh": _exact(reference.sqrt),
    },
    "polar": {
        "newton_schulz": _polar_kernel(newton_schulz_polar),
        "muon": _polar_kernel(muon, default=MUON_ITERS),
        "polar_express": _polar_kernel(polar_express),
        "prism": _polar_kernel(prism_polar),
        "eigh": _exact(reference.polar),
    },
}



def chebyshev_polynomial(op, probe: Probe, f: str, degree: int, engine):
    """The Chebyshev interpolant of f of the given degree on :func:`spectral_interval`."""
    a, b = spectral_interval(probe)
    poly = chebyshev_interpolant(SCALAR_FUNCTIONS[f], a, b, degree)
    return ChebyshevBasis(poly.c.to(op.dtype), poly.a.to(op.dtype), poly.b.to(op.dtype)), (a, b)
