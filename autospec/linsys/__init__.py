"""The ``linsys`` wing: SPD linear systems — ``autospec.solve``, PCG, polynomial preconditioners,
the training tasks (:mod:`.task`: corrections by gradient; :mod:`.choice`: a learned choice among
:mod:`.candidates`, trained on :mod:`.labels`), the trained engine as a preconditioner (:mod:`.learned`) and the
minimax oracle (:mod:`.oracle`)."""

from autospec.linsys.cg import SolveInfo, pcg
from autospec.linsys.choice import LinsysChoiceTask
from autospec.linsys.preconditioners import PolynomialPreconditioner, chebyshev_preconditioner
from autospec.linsys.solve import solve
from autospec.linsys.task import LinsysTask

__all__ = ["LinsysChoiceTask", "LinsysTask", "PolynomialPreconditioner", "SolveInfo", "chebyshev_preconditioner", "pcg", "solve"]
