"""Randomized numerical linear algebra below the wings: the Nyström approximation and
preconditioner (:mod:`.nystrom`, Frangella–Tropp–Udell) and sketched least squares
(:mod:`.least_squares`, Blendenpik/LSRN sketch-and-precondition and sketch-and-solve). The
sketching operators themselves are device kernels, :mod:`autospec.kernels.sketch`; the front doors
are ``autospec.solve(method="nystrom")`` and ``autospec.lstsq`` (in the ``linsys`` wing)."""

from autospec.sketch.least_squares import LstsqInfo
from autospec.sketch.nystrom import (
    NystromApproximation,
    NystromPreconditioner,
    adaptive_nystrom,
    nystrom,
    nystrom_preconditioner,
)

__all__ = ["LstsqInfo", "NystromApproximation", "NystromPreconditioner", "adaptive_nystrom", "nystrom",
           "nystrom_preconditioner"]
