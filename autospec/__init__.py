"""autospec: learned iterative spectral algorithms.

Neural engines read a cheap spectral probe of a symmetric operator and emit the coefficients of
matrix-polynomial recurrences (polynomial preconditioners for CG, matrix functions, eigenvalue
filters), after "Learning to Discover Iterative Spectral Algorithms" (arXiv:2602.09530).

This module only re-exports; ``import autospec`` needs no Lightning, Hydra, matplotlib or wandb
(training lives in :mod:`autospec.training`, evaluations in :mod:`autospec.evaluation`).
"""

from autospec import matfun
from autospec.core import recurrences
from autospec.core.operators import Diagonal, Operator, as_operator
from autospec.core.probe import Probe, lanczos, probe, subspace_probe
from autospec.eigen import EigenInfo, eigsh
from autospec.errors import (
    ArtifactError,
    AutospecError,
    BreakdownError,
    InputTypeError,
    InputValueError,
    NotPositiveDefiniteError,
    NotSymmetricError,
)
from autospec.learned import LearnedEngine, LearnedPolynomial, load
from autospec.linsys import PolynomialPreconditioner, SolveInfo, chebyshev_preconditioner, pcg, solve
from autospec.linsys.lstsq import lstsq
from autospec.matrices.io import MatrixFile, MatrixNotFoundError, list_matrices, load_matrix, read_matrix

__version__ = "0.1.0"

_DOWNLOAD = ("PAPER_MATRICES", "DownloadError", "fetch_suite")  # autospec.matrices.download (urllib) on first use


def __getattr__(name: str):
    if name == "optim":  # Muon and Shampoo (autospec.optim), imported on first use
        import importlib

        return importlib.import_module("autospec.optim")
    if name in _DOWNLOAD:
        from autospec.matrices import download

        return getattr(download, name)
    raise AttributeError(f"module 'autospec' has no attribute {name!r}")


__all__ = [
    "PAPER_MATRICES",
    "ArtifactError",
    "AutospecError",
    "BreakdownError",
    "Diagonal",
    "DownloadError",
    "EigenInfo",
    "InputTypeError",
    "InputValueError",
    "LearnedEngine",
    "LearnedPolynomial",
    "MatrixFile",
    "MatrixNotFoundError",
    "NotPositiveDefiniteError",
    "NotSymmetricError",
    "Operator",
    "PolynomialPreconditioner",
    "Probe",
    "SolveInfo",
    "as_operator",
    "chebyshev_preconditioner",
    "eigsh",
    "fetch_suite",
    "lanczos",
    "load",
    "load_matrix",
    "lstsq",
    "list_matrices",
    "matfun",
    "optim",
    "pcg",
    "probe",
    "read_matrix",
    "recurrences",
    "solve",
    "subspace_probe",
]
