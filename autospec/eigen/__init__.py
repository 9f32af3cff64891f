"""The ``eigen`` wing: the lowest (or highest) eigenpairs of symmetric operators — ``autospec.eigsh``
(:mod:`.api`), filtered subspace iteration (:mod:`.subspace`, :mod:`.filters`), the SciPy
baselines (:mod:`.scipy_baselines`), the training task (:mod:`.task`) and the trained engine as a
filter (:mod:`.learned`)."""

from autospec.eigen.api import METHODS, eigsh, filtered_subspace_iteration
from autospec.eigen.subspace import EigenInfo

__all__ = ["METHODS", "EigenInfo", "eigsh", "filtered_subspace_iteration"]
