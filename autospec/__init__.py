"""autospec: learned iterative spectral algorithms.

Neural engines read a cheap spectral probe of a symmetric operator and emit the coefficients of
matrix-polynomial recurrences (polynomial preconditioners for CG, matrix functions, eigenvalue
filters), after "Learning to Discover Iterative Spectral Algorithms" (arXiv:2602.09530).
"""

from autospec.cg import SolveInfo, pcg
from autospec.errors import (
    ArtifactError,
    AutospecError,
    BreakdownError,
    InputTypeError,
    InputValueError,
    NotPositiveDefiniteError,
    NotSymmetricError,
)
from autospec.download import PAPER_MATRICES, DownloadError, fetch_suite
from autospec import matfun
from autospec.eigen import EigenInfo, eigsh
from autospec.engines import LearnedEngine, LearnedPolynomial, load
from autospec.matrix_io import MatrixFile, MatrixNotFoundError, list_matrices, load_matrix, read_matrix
from autospec.operators import Diagonal, Operator, as_operator
from autospec.preconditioners import PolynomialPreconditioner, chebyshev_preconditioner
from autospec.probe import Probe, lanczos, probe, subspace_probe
from autospec.solve import solve

__version__ = "0.1.0"

__all__ = [
    "PAPER_MATRICES",
    "ArtifactError",
    "DownloadError",
    "EigenInfo",
    "LearnedEngine",
    "LearnedPolynomial",
    "MatrixFile",
    "MatrixNotFoundError",
    "eigsh",
    "fetch_suite",
    "list_matrices",
    "load",
    "load_matrix",
    "matfun",
    "read_matrix",
    "AutospecError",
    "BreakdownError",
    "Diagonal",
    "InputTypeError",
    "InputValueError",
    "NotPositiveDefiniteError",
    "NotSymmetricError",
    "Operator",
    "PolynomialPreconditioner",
    "Probe",
    "SolveInfo",
    "as_operator",
    "chebyshev_preconditioner",
    "lanczos",
    "pcg",
    "probe",
    "solve",
    "subspace_probe",
]
