"""``autospec.matfun``: matrix functions — ``A^{−1/2}``, ``A^{1/2}``, the polar factor — as dense GEMM
iterations, and the matrix-free action ``f(A) z`` (:mod:`.api`); the classical kernels' calling
convention (:mod:`.methods`), the training task (:mod:`.task`) and the shipped engines as the
``"autospec"`` method (:mod:`.learned`)."""

from autospec.matfun.api import *  # noqa: F403 (the API, as listed in its __all__)
from autospec.matfun.api import __all__  # noqa: F401
