"""The ``linsys`` wing: SPD linear systems — ``autospec.solve``, PCG, polynomial preconditioners,
the training task (:mod:`.task`), the trained engine as a preconditioner (:mod:`.learned`) and the
minimax oracle (:mod:`.oracle`)."""

from autospec.linsys.cg import SolveInfo, pcg
from autospec.linsys.preconditioners import PolynomialPreconditioner, chebyshev_preconditioner
from autospec.linsys.solve import solve
from autospec.linsys.task import LinsysTask

__all__ = ["LinsysTask", "PolynomialPreconditioner", "SolveInfo", "chebyshev_preconditioner", "pcg", "solve"]
