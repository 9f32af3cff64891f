"""The ``eigen`` wing: the lowest (or highest) eigenpairs of symmetric operators — ``autospec.eigsh``
(:mod:`.api`), filtered subspace iteration (:mod:`.subspace`, :mod:`.filters`, per-vector degrees
in :mod:`.columns`), the SciPy baselines (:mod:`.scipy_baselines`), the plans a learned engine
chooses among (:mod:`.plans`) with their labels (:mod:`.labels`) and task (:mod:`.choice`), the
per-iteration training task (:mod:`.task`) and the trained engine at inference (:mod:`.learned`)."""

from autospec.eigen.api import METHODS, eigsh, filtered_subspace_iteration
from autospec.eigen.subspace import EigenInfo

__all__ = ["METHODS", "EigenInfo", "eigsh", "filtered_subspace_iteration"]
