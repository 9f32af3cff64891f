"""The result every solver returns next to its answer: one base, one set of names.

:class:`Result` holds what all families report alike — the method, whether it converged, the
products with A it spent (probe included), wall time, why a learned method fell back to its
classical start (``None`` when it did not) and the history of its residual (or error) per
iteration. The families extend it with their own contract fields (DESIGN.md §7):
``SolveInfo`` (``outer_iters``, ``rel_residual``), ``EigenInfo`` (``outer_iters``,
``max_residual``) and ``MatfunInfo`` (``iters``, ``matmuls``, ``rel_error``); ``iterations`` reads
the family's own count.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(kw_only=True)
class Result:
    """Fields every ``*Info`` has; subclasses name their iteration count (see :attr:`iterations`)."""

    method: str = ""
    converged: bool = False
    matvecs: int = 0  # products with A, probe included (matrix-free methods)
    seconds: float = 0.0
    fallback: str | None = None  # why a learned method used its classical start instead (None: it did not)
    history: list = field(default_factory=list)  # residual (or error) after each iteration
    probe_seconds: float = 0.0  # wall time of the spectral probe (0: no probe)
    probe_spmv_equivalents: float = 0.0  # that time in units of one of the probe's own products with A

    @property
    def iterations(self) -> int:
        """The family's iteration count (``outer_iters`` or ``iters``)."""
        raise NotImplementedError


class ResidualHistory:
    """``residual_history``: the name :class:`Result` subclasses kept for :attr:`Result.history`."""

    @property
    def residual_history(self) -> list:
        return self.history

    @residual_history.setter
    def residual_history(self, values: list) -> None:
        self.history = values
