"""``autospec.matfun``: matrix functions — ``A^{−1/2}``, ``A^{1/2}``, the polar factor — as dense GEMM
iterations, and the matrix-free action ``f(A) z`` (:mod:`.api`); the classical kernels' calling
convention (:mod:`.methods`), the training task (:mod:`.task`) and the shipped engines as the
``"autospec"`` method (:mod:`.learned`)."""

from autospec.matfun.api import (
    APPLY_METHODS,
    METHODS,
    SCALAR_FUNCTIONS,
    MatfunInfo,
    apply,
    inv_sqrt,
    polar,
    probe_interval,
    register,
    spectral_interval,
    sqrt,
)

__all__ = ["APPLY_METHODS", "METHODS", "SCALAR_FUNCTIONS", "MatfunInfo", "apply", "inv_sqrt", "polar",
           "probe_interval", "register", "spectral_interval", "sqrt"]
