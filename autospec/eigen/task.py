"""The ``eigfilter`` task: a degree-m polynomial filter for subspace iteration towards the k
smallest eigenpairs of a symmetric ``A`` (:mod:`autospec.eigen.subspace`).

What the engine reads: a :class:`FilterInput` — the filter context of one outer iteration (the
current Ritz values and residuals, the unwanted interval ``[a, b]``, the smallest Ritz value
``a_L``, the probe's largest Ritz value ``θ_top`` and its residual ``r_top``, k and the block
size), in units that make it invariant to shifting and scaling ``A``: ``v_j = (θ_j − a_L)/(a − a_L)``
per Ritz value, ``δ = (a − a_L)/(b − a)``, ``(b − θ_top)/(b − a)`` and ``r_top/(b − θ_top)`` globally.

Coefficients. One knob on ChFSI's filter ``p(λ) = T_m(ℓ'(λ))/T_m(ℓ'(a_L))``,
``ℓ'(λ) = (2λ − a − b')/(b' − a)``: the upper end ``b' = θ_top + (b − θ_top)e^{g_1}`` (``|g_1| < 5``,
through ``m·tanh(·/m)``) — the knob that pays: the safe Lanczos bound ``b = θ_top + β_m``
overshoots λmax by about a quarter of the spread on the training families, with the exact λmax
ChFSI needs about 0.9× the matvecs (measured), and the top Ritz pair's residual tells how far λmax
can be above ``θ_top``. Two more knobs were tried and retired (their settings ``cut_limit`` and
``step_limit`` stayed 0 in every engine trained; artifacts that record them load as before): a
learned cut ``a' = a + g_0(a − a_L)`` — even the exact ``λ_{s+1}`` as the cut did not save matvecs
in real runs (1.06× ChFSI's median: locking and re-probing already track it) and a learned cut
produced outliers — and coefficient corrections ``ε_j``, which are fragile: when ``T_m(ℓ(λ_k))`` is
barely above 1 (slow problems), ``|ε| = 0.02`` already lifts the unwanted interval above the wanted
end and stops convergence (measured: 16 → 10⁴ iterations). The engine's output ``g_0`` is unused.

Zero corrections are ChFSI's ``T_m(ℓ(λ))/T_m(ℓ(a_L))``, and ``p(a_L) = 1`` always.

Loss (exact on ``diag(λ)``): with block size ``s`` subspace iteration on ``p(A)`` converges for the
slowest wanted pair at the rate ``ρ = |p|_(s+1) / min_{i<=k} |p(λ_i)|`` (``|p|_(s+1)``: the
(s+1)-th largest ``|p|`` over the whole spectrum; ``ρ >= 1`` when a wanted eigenvalue is not among
the s largest), so the number of outer iterations to reduce the error by ``tol`` is about
``log tol / log ρ``. The loss is ``log(1/(−log ρ))`` (the log of that count at fixed degree, easy and
hard spectra weighing alike), floored at ``−log ρ = 1e-3`` with a hinge beyond; ``iterations`` is the
count itself.

Training contexts: :meth:`EigfilterTask.prepare` turns the synthetic SPD spectra into the eigenvalue
problems the filter meets — reflected (clusters at the wanted end) and shifted to be indefinite at
random, k log-uniform in ``[1, max_k]`` — and runs t ∈ {0, …} ChFSI outer iterations on ``diag(λ)``
(batched; t = 0 is the Lanczos probe) to produce the context of a random outer iteration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from autospec.core.intervals import bounded, unwanted_lower
from autospec.core.operators import Diagonal
from autospec.core.probe import lanczos
from autospec.core.recurrences import ChebyshevBasis, chebyshev_values, evaluate
from autospec.eigen.filters import default_block
from autospec.errors import InputValueError
from autospec.learned import register_task

MAX_UPPER_SHIFT = 5.0  # b' = θ_top + (b − θ_top)e^{g_1}, |g_1| < 5
TIE_RTOL = 1e-10  # eigenvalues this close (relative to the spread) to λ_k are one eigenspace
RATE_FLOOR = 1e-3  # −log ρ below this counts as "no convergence"
CONTEXT_ITERATIONS = (0, 0, 1, 2, 3, 5, 8)  # outer iteration of a training context, drawn uniformly
TOKEN_FEATURES = 5
GLOBAL_FEATURES = 6
_TINY = 1e-300


@dataclass
class FilterInput:
    """A batch of filter contexts (leading dimension B), ascending Ritz values per row."""

    ritz: torch.Tensor  # (B, r)
    residuals: torch.Tensor  # (B, r): ‖Av − θv‖/‖A‖_est
    lower: torch.Tensor  # (B,): a
    upper: torch.Tensor  # (B,): b
    lowest: torch.Tensor  # (B,): a_L
    iteration: torch.Tensor  # (B,): outer iteration (0: the Lanczos probe)
    top: torch.Tensor  # (B,): the probe's largest Ritz value θ_top
    top_residual: torch.Tensor  # (B,): its residual norm r_top (absolute)
    k: int | torch.Tensor  # per row (B,) in labelled batches
    block: int | torch.Tensor

    @classmethod
    def from_context(cls, ctx) -> "FilterInput":
        """One :class:`autospec.eigen.filters.FilterContext` as a batch of one."""
        one = lambda x: torch.tensor([float(x)], dtype=torch.float64)  # noqa: E731
        return cls(ctx.ritz.double().cpu()[None], ctx.residuals.double().cpu()[None], one(ctx.lower),
                   one(ctx.upper), one(ctx.lowest), one(ctx.iteration), one(ctx.probe.theta_max),
                   one(ctx.probe.top_residual()), int(ctx.wanted), int(ctx.block))


def filter_features(ctx: FilterInput, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens ``[min(v,4), log v/10, log r/10, wanted, in block]`` per Ritz value and globals
    ``[log δ/10, k/s, r/100, [iteration > 0], log((b − θ_top)/(b − a))/10, log(r_top/(b − θ_top))/10]``
    (float32); ``ctx.k`` and ``ctx.block`` are ints or per-row tensors."""
    v = (ctx.ritz - ctx.lowest.unsqueeze(-1)) / scale.unsqueeze(-1)
    rank = torch.arange(ctx.ritz.shape[-1]).expand_as(v)
    k, block = (torch.as_tensor(x, dtype=v.dtype).reshape(-1, 1) for x in (ctx.k, ctx.block))
    tokens = torch.stack([v.clamp(0, 4), v.clamp_min(1e-6).log() / 10, (ctx.residuals + 1e-16).log() / 10,
                          (rank < k).to(v.dtype), (rank < block).to(v.dtype)], dim=-1)
    width = (ctx.upper - ctx.lower).clamp_min(_TINY)
    delta = scale / width
    overshoot = (ctx.upper - ctx.top).clamp_min(_TINY)
    glob = torch.stack([delta.clamp_min(1e-30).log() / 10, (k / block).reshape(-1).expand_as(delta),
                        torch.full_like(delta, ctx.ritz.shape[-1] / 100), (ctx.iteration > 0).to(delta.dtype),
                        (overshoot / width).clamp_min(1e-30).log() / 10,
                        (ctx.top_residual / overshoot).clamp_min(1e-30).log() / 10], -1)
    return tokens.float(), glob.float()


@register_task
class EigfilterTask:
    """Learned polynomial filters for subspace iteration (see the module docstring)."""

    name = "eigfilter"
    retired = {"step_limit": 0.0, "cut_limit": 0.0}  # off in every engine trained (module docstring)

    def __init__(self, degree: int = 15, max_k: int = 32, tol: float = 1e-8, max_iters: int = 10_000,
                 recurrence: str = "basis"):
        if recurrence != "basis":
            raise InputValueError(f"the eigfilter task uses the Chebyshev-basis form (recurrence=basis), got {recurrence!r}")
        if degree < 2:
            raise InputValueError(f"degree must be >= 2, got {degree}")
        if max_k < 1:
            raise InputValueError(f"max_k must be >= 1, got {max_k}")
        if not 0 < tol < 1:
            raise InputValueError(f"tol must lie in (0, 1), got {tol}")
        self.degree, self.max_k = int(degree), int(max_k)
        self.tol, self.max_iters = float(tol), int(max_iters)

    # -- engine input -------------------------------------------------------------------------
    @property
    def layout(self) -> dict:
        return {"global_outputs": 2, "steps": 1, "per_step": 1,
                "token_features": TOKEN_FEATURES, "global_features": GLOBAL_FEATURES}

    @staticmethod
    def scale(ctx: FilterInput) -> torch.Tensor:
        """``a − a_L``: the width of the wanted end (the unit of the cut shift)."""
        return (ctx.lower - ctx.lowest).clamp_min(_TINY)

    def features(self, ctx: FilterInput, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return filter_features(ctx, scale)

    # -- the filter ---------------------------------------------------------------------------
    def polynomial(self, ctx: FilterInput, corrections=None) -> tuple[ChebyshevBasis, torch.Tensor]:
        """``(p, scale)``: the filter on the true λ axis (``ChebyshevBasis`` on ``[a', b]``)."""
        a, b, low = ctx.lower.double(), ctx.upper.double(), ctx.lowest.double()
        c = torch.zeros(*a.shape, self.degree + 1, dtype=torch.float64)
        c[..., -1] = 1.0
        if corrections is not None:
            glob = corrections[0].to(torch.float64)
            top = ctx.top.double()
            b = top + (b - top).clamp_min(0) * bounded(glob[..., 1], MAX_UPPER_SHIFT).exp()
            a = unwanted_lower(a, b, low)  # glob[..., 0] (the retired cut shift) is not used
        c = c / (c * chebyshev_values((2 * low - a - b) / (b - a), self.degree)).sum(-1, keepdim=True)
        return ChebyshevBasis(c, a, b), self.scale(ctx)

    # -- loss and metrics ---------------------------------------------------------------------
    def log_rate(self, poly: ChebyshevBasis, batch: dict) -> torch.Tensor:
        """``log ρ = log |p|_(s+1) − min_{i<=k} log |p(λ_i)|`` per spectrum. Eigenvalues equal to
        ``λ_k`` (within ``1e-10`` of the spread) count as wanted: any vector of that eigenspace is a
        converged pair, so they fill block slots but never limit the rate."""
        ctx: FilterInput = batch["probe"]
        lam = batch["lam"]
        logp = evaluate(poly, lam).abs().clamp_min(_TINY).log()
        tie = TIE_RTOL * (lam[..., -1:] - lam[..., :1])
        tied = lam <= lam[..., ctx.k - 1: ctx.k] + tie
        ranked = torch.where(tied, torch.full_like(logp, math.inf), logp).sort(-1, descending=True).values
        slot = tied.sum(-1, keepdim=True).clamp_min(ctx.block).clamp_max(lam.shape[-1] - 1)
        return ranked.gather(-1, slot).squeeze(-1) - logp[..., : ctx.k].amin(-1)

    def loss(self, poly, scale, batch: dict, corrections=None) -> tuple[torch.Tensor, dict]:
        speed = -self.log_rate(poly, batch)
        per_spectrum = -speed.clamp_min(RATE_FLOOR).log() + torch.relu(RATE_FLOOR - speed)
        loss = per_spectrum.mean()
        return loss, {"task_loss": loss.detach(), "converging": (speed > RATE_FLOOR).double().mean()}

    @torch.no_grad()
    def iterations(self, poly, scale, batch: dict) -> torch.Tensor:
        """Estimated outer iterations ``⌈log tol / log ρ⌉`` (``max_iters`` when ``ρ >= 1``)."""
        speed = -self.log_rate(poly, batch)
        count = torch.ceil(math.log(1 / self.tol) / speed.clamp_min(1e-30))
        return torch.where(speed > 0, count.clamp_max(self.max_iters), torch.full_like(count, self.max_iters))

    @staticmethod
    def safe(poly, scale, ctx) -> torch.Tensor:
        """Finite coefficients and interval (the filter of a non-finite engine output is not used)."""
        return torch.isfinite(poly.c).all(-1) & torch.isfinite(poly.a) & (poly.a < poly.b)

    # -- training batches ---------------------------------------------------------------------
    def prepare(self, batch: dict, gen: torch.Generator) -> dict:
        """Eigenvalue problems and filter contexts from a synthetic SPD batch (module docstring)."""
        lam = batch["lam"]
        B, n = lam.shape
        u = torch.rand(B, 2, generator=gen, dtype=torch.float64)
        flip = (u[:, 0] < 0.5).unsqueeze(-1)
        lam = torch.where(flip, lam[:, -1:] + lam[:, :1] - lam, lam).sort(-1).values
        pivot = lam.gather(-1, (u[:, 1:] * (n - 1)).long())
        lam = torch.where(u[:, 1:] < 0.5, lam - pivot, lam)  # half the problems indefinite
        k = int(math.exp(math.log(min(self.max_k, n // 4)) * float(torch.rand(1, generator=gen, dtype=torch.float64))))
        k = max(1, k)
        block = default_block(k, n)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        probe = lanczos(Diagonal(lam), steps=batch["probe"].steps, seed=seed)
        t = CONTEXT_ITERATIONS[int(torch.randint(len(CONTEXT_ITERATIONS), (1,), generator=gen))]
        ctx = chfsi_context(self, lam, probe, k, block, t, gen)
        return {**batch, "lam": lam, "probe": ctx}


@torch.no_grad()
def chfsi_context(task: EigfilterTask, lam: torch.Tensor, probe, k: int, block: int, iterations: int,
                  gen: torch.Generator) -> FilterInput:
    """The filter context after ``iterations`` ChFSI outer iterations on ``diag(λ)`` (batched),
    following :func:`autospec.eigen.subspace._subspace_iteration` (re-probed interval, no locking)."""
    B, n = lam.shape
    m = probe.ritz.shape[-1]
    norm = probe.ritz.abs().amax(-1).clamp_min(_TINY)
    upper, lowest = probe.upper, probe.theta_min
    ritz, res = probe.ritz, probe.residuals / norm.unsqueeze(-1)
    lower = probe.ritz[:, min(block, m - 1)]
    top = probe.theta_max, probe.top_residual()
    V = torch.linalg.qr(torch.randn(B, n, block, generator=gen, dtype=torch.float64)).Q
    for it in range(iterations):
        lower = unwanted_lower(lower, upper, lowest)
        ctx = FilterInput(ritz, res, lower, upper, lowest, torch.full_like(upper, it), *top, k, block)
        poly, _ = task.polynomial(ctx)
        V = torch.linalg.qr(evaluate(poly, lam).unsqueeze(-1) * V).Q
        H = V.mT @ (lam.unsqueeze(-1) * V)
        ritz, S = torch.linalg.eigh((H + H.mT) / 2)
        V = V @ S
        res = (lam.unsqueeze(-1) * V - V * ritz.unsqueeze(-2)).norm(dim=-2) / norm.unsqueeze(-1)
        lower, lowest = ritz[:, -1], ritz[:, 0]
    lower = unwanted_lower(lower, upper, lowest)
    return FilterInput(ritz, res, lower, upper, lowest, torch.full_like(upper, float(iterations)), *top, k, block)
