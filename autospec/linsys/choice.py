"""The ``linsys-choice`` task: the engine reads the probe and picks, from a menu of candidate
polynomial preconditioners (:mod:`autospec.linsys.candidates`), the one PCG will need the fewest
outer iterations with.

Output: one score per candidate, ``ŝ_c`` ≈ ``log n_c − log n_0``, the predicted log PCG-iteration
count of candidate ``c`` relative to candidate 0 (Chebyshev with ``ritz`` bounds). The choice is
``argmin_c ŝ_c`` (ties → the lowest index), so an engine with zero output *is* the Chebyshev
start. At inference the candidates are tried in score order until one passes the safeguard;
a deflated candidate (:mod:`autospec.linsys.deflation`) is only a choice where CG deflates
(``autospec.solve``), not for a bare ``M``.

Training is supervised by exact labels (:mod:`autospec.linsys.labels`: full PCG counts of every
candidate on synthetic and operator-like spectra): a smooth-L1 fit of the whole cost curve,
``Σ_c huber(ŝ_c − (log n_c − log n_0))``. Fitting every candidate, not only the winner, makes a
near miss cheap and a far miss expensive, as they are; gradients through unrolled PCG (the
``linsys`` task) cannot find a far-away better interval, a label can.

Features (:func:`quadrature_features`): per Ritz pair ``θ_j/s``, ``log(θ_j/s)``, ``log(r_j/s)``,
the quadrature mass below it ``Σ_{i<j} τ_i² + τ_j²/2`` (the fraction of the spectrum a lower end
there leaves to CG) and ``log(n·τ_j²)`` (how many eigenvalues the pair stands for); globally
``log(θ_max/θ_min)``, ``log n`` and ``log(n·τ_1²)``.
"""

from __future__ import annotations

import torch

from autospec.core.intervals import ritz_interval
from autospec.core.probe import Probe
from autospec.core.recurrences import chebyshev_three_term
from autospec.engine.choice import CostFit
from autospec.errors import InputValueError
from autospec.learned import register_task
from autospec.linsys import candidates
from autospec.linsys import learned as inference
from autospec.linsys.preconditioners import polynomial_is_safe

LOG_SCALE = 10.0
_TINY = 1e-30


def quadrature_features(probe: Probe, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Token features ``(..., m, 5)`` and global features ``(..., 3)`` (float32); needs ``probe.size``
    and the quadrature ``weights`` (Lanczos probes have both)."""
    if probe.weights is None or probe.size is None:
        raise InputValueError("the linsys-choice engine needs a Lanczos probe (quadrature weights and the size n)")
    s = scale.unsqueeze(-1)
    theta = probe.ritz.clamp_min(_TINY) / s
    tau2 = probe.weights.clamp_min(0)
    n = torch.as_tensor(probe.size, dtype=theta.dtype, device=theta.device).expand(theta.shape[:-1]).unsqueeze(-1)
    below = torch.cumsum(tau2, -1) - tau2 / 2
    tokens = torch.stack([theta, theta.log() / LOG_SCALE, (probe.residuals / s + 1e-16).log() / LOG_SCALE, below,
                          (n * tau2).clamp_min(_TINY).log() / LOG_SCALE], -1)
    glob = torch.stack([(theta[..., -1] / theta[..., 0]).log() / LOG_SCALE, n[..., 0].log() / LOG_SCALE,
                        (n[..., 0] * tau2[..., 0]).clamp_min(_TINY).log() / LOG_SCALE], -1)
    return tokens.float(), glob.float()


@register_task
class LinsysChoiceTask(CostFit):
    """A learned choice among candidate preconditioners (see the module docstring)."""

    name = "linsys-choice"
    family = "linsys"
    inference = inference
    features = staticmethod(quadrature_features)

    def __init__(self, degree: int = 10, rtol: float = 1e-8, max_iters: int = 3000, huber: float = 0.1):
        if degree < 1:
            raise InputValueError(f"degree must be >= 1, got {degree}")
        if huber <= 0:
            raise InputValueError(f"huber must be > 0, got {huber}")
        self.degree, self.rtol, self.max_iters, self.huber = int(degree), float(rtol), int(max_iters), float(huber)

    @property
    def layout(self) -> dict:
        return {"global_outputs": candidates.COUNT, "steps": 1, "per_step": 1, "token_features": 5, "global_features": 3}

    @staticmethod
    def scale(probe: Probe) -> torch.Tensor:
        """``s``: the upper end of the ``ritz`` interval; every candidate runs on ``A/s``."""
        return ritz_interval(probe)[1]

    def polynomial(self, probe: Probe, corrections=None):
        """``(poly, s)`` for use without deflation (SciPy's ``M``): the best-scored undeflated
        candidate that passes the safeguard (no corrections: Chebyshev with ``ritz`` bounds, batched)."""
        if corrections is None:
            a, s = ritz_interval(probe)
            return chebyshev_three_term(a / s, torch.ones_like(s), self.degree), s
        poly, s, _ = self.plan(probe, corrections, deflate=False)
        return poly, s

    def plan(self, probe: Probe, corrections, deflate: bool = True):
        """``(poly, s, k)`` for one probe: the chosen candidate's polynomial and the number ``k`` of
        Ritz vectors it deflates."""
        index, poly = self.choose(probe, corrections, deflate)
        return poly, ritz_interval(probe)[1], candidates.deflation(index)

    def choose(self, probe: Probe, corrections, deflate: bool = True):
        """``(index, poly)``: the best-scored candidate that passes the safeguard (``deflate=False``:
        only undeflated ones); candidate 0 when none does."""
        if probe.ritz.dim() != 1:
            raise InputValueError("linsys-choice builds the polynomial of one probe at a time")
        upper = float(probe.upper / ritz_interval(probe)[1])
        for index in self.ranking(corrections[0]).tolist():
            if candidates.deflation(index) and not deflate:
                continue
            poly = candidates.candidate(probe, index, self.degree)
            if poly is not None and polynomial_is_safe(poly, upper):
                return index, poly
        return 0, candidates.candidate(probe, 0, self.degree)
