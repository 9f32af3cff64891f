"""The ``linsys`` task: a degree-d polynomial preconditioner ``p`` for CG on SPD ``A``.

Coefficients. The probe gives the Chebyshev ``ritz`` interval ``[a, s]``; everything runs on
``X = A/s``. The engine's global head moves the interval, ``a' = (a/s)·e^{g_0}``,
``b' = e^{g_1}``, and its step heads correct the Chebyshev coefficients on ``[a', b']``
(all corrections pass through ``m·tanh(·/m)`` so they stay bounded):

* three-term form: ``c_0 = c_0ᶜʰ(1 + δ_0)``, ``α_k = α_kᶜʰ(1 + δ_{k,0})``, ``β_k = β_kᶜʰ(1 + δ_{k,1})``;
* basis form on ``[0, u]`` (``u = upper/s``): ``c_k = c_kᶜʰ(1 + δ_k)``.

The interval is the well-conditioned knob (any interval gives a sound Chebyshev polynomial); the
per-step coefficients are not — Chebyshev's smallness on the interval comes from cancellation, so
a few per cent of random change wrecks it — hence ``|δ| <= step_limit`` (default 0.02).

Zero corrections give exactly the Chebyshev preconditioner with ``ritz`` bounds.

Global search (optional, ``shift_candidates``/``lower_candidates``): gradient descent from the
Chebyshev start does not find far-away better intervals (leaving isolated small eigenvalues to CG
wants ``a`` many times larger), so extra global outputs classify each probe into a candidate lower
end — ``a·e^g`` or a fixed fraction ``f`` of the upper end (``0.1`` is PETSc's choice) — trained to
minimise the expected log-iteration regret ``Σ_c softmax_c · log(n_c) − min_c log(n_c)`` over the
candidates' full PCG iteration counts ``n_c`` (a wrong bold choice costs what it really costs);
the shift and step corrections then refine it. Candidate 0 is ``g = 0`` (Chebyshev).

Losses (on ``diag(λ/s)``, exact and cheap because ``p(X) r = p(λ) ⊙ r``):

* ``minimax``: ``log smoothmax_i |1 − λ_i p(λ_i)|`` (log-sum-exp at temperature ``t``);
* ``pcg``: ``log(1 + Σ_{k≤K} relu(log(‖r_k‖/‖b‖)/log(1/rtol) + 1))`` over K unrolled PCG steps
  with Gaussian right-hand-side weights — a smooth count of the iterations to ``rtol`` (each step
  adds the fraction of digits still missing), in log form so easy and hard spectra weigh alike. It
  optimises what is measured and lets the polynomial leave isolated small eigenvalues to CG.

Both add ``w · max relu(ε|p|_mean − p)/|p|_mean`` over the safeguard grid of ``[0, 1.05 u]`` and
the spectrum, and a spectrum whose polynomial is not positive there gets the worst task loss (the
safeguard would reject it, so speed bought with negativity earns nothing). CG itself sees
``max(p, 1e-6·max p)`` so a bad polynomial never produces NaN. The metric counts what a user
gets: a polynomial failing the safeguard is replaced by Chebyshev.
"""

from __future__ import annotations

import math

import torch

from autospec.core.intervals import LOWER_SHIFT_LIMIT, UPPER_SHIFT_LIMIT, bounded, ritz_interval
from autospec.core.probe import Probe
from autospec.core.recurrences import ChebyshevBasis, ThreeTerm, chebyshev_interpolant, chebyshev_three_term, evaluate
from autospec.engine.model import probe_features
from autospec.errors import InputValueError
from autospec.learned import register_task
from autospec.linsys import learned as inference
from autospec.linsys.cg import cg_steps, pcg_iterations, safe_values
from autospec.linsys.preconditioners import polynomial_is_safe, positivity_grid

RECURRENCES = ("three_term", "basis")
LOSSES = ("pcg", "minimax")
RESIDUAL_FLOOR = 1e-10
POSITIVITY_MARGIN = 1e-3  # penalise p < 1e-3·mean|p| on the grid and the spectrum


@register_task
class LinsysTask:
    """Polynomial preconditioning for CG (see the module docstring for the mathematics)."""

    name = "linsys"
    inference = inference  # the preconditioner adapter of a trained engine (autospec.linsys.learned)

    def __init__(self, degree: int = 10, recurrence: str = "three_term", loss: str = "pcg", pcg_steps: int = 300,
                 temperature: float = 30.0, positivity_weight: float = 10.0, grid_points: int = 256,
                 rtol: float = 1e-8, max_iters: int = 3000, step_limit: float = 0.02,
                 shift_candidates: tuple[float, ...] = (), lower_candidates: tuple[float, ...] = (),
                 search_max_iters: int = 500, search_weight: float = 1.0):
        if recurrence not in RECURRENCES:
            raise InputValueError(f"unknown recurrence {recurrence!r}; choose one of {RECURRENCES}")
        if loss not in LOSSES:
            raise InputValueError(f"unknown linsys loss {loss!r}; choose one of {LOSSES}")
        if degree < 1:
            raise InputValueError(f"degree must be >= 1, got {degree}")
        self.degree, self.recurrence, self.loss_name = int(degree), recurrence, loss
        self.pcg_steps, self.temperature = int(pcg_steps), float(temperature)
        self.positivity_weight, self.grid_points = float(positivity_weight), int(grid_points)
        self.rtol, self.max_iters = float(rtol), int(max_iters)
        self.step_limit = float(step_limit)
        self.shift_candidates = tuple(float(g) for g in shift_candidates) or ((0.0,) if lower_candidates else ())
        if self.shift_candidates and self.shift_candidates[0] != 0:
            raise InputValueError("shift_candidates must start with 0 (an untrained engine picks the first: Chebyshev)")
        self.lower_candidates = tuple(float(f) for f in lower_candidates)
        self.search_max_iters, self.search_weight = int(search_max_iters), float(search_weight)
        if any(not 0 < f < 0.5 for f in self.lower_candidates):
            raise InputValueError(f"lower_candidates are lower ends as fractions of the upper one, in (0, 0.5); "
                                  f"got {list(self.lower_candidates)}")

    # -- coefficients -------------------------------------------------------------------------
    @property
    def layout(self) -> dict:
        """Engine output shape: global outputs, recurrence steps, outputs per step."""
        per_step = 2 if self.recurrence == "three_term" else 1
        candidates = len(self.shift_candidates) + len(self.lower_candidates)
        return {"global_outputs": 2 + candidates, "steps": self.degree + 1, "per_step": per_step}

    features = staticmethod(probe_features)  # engine input: the probe's Ritz pairs

    @staticmethod
    def scale(probe: Probe) -> torch.Tensor:
        """``s``: the upper end of the ``ritz`` interval; the recurrence runs on ``A/s``."""
        return ritz_interval(probe)[1]

    def polynomial(self, probe: Probe, corrections=None):
        """``(poly, s)``: the polynomial in scaled units and the scale (batched over the probe)."""
        a, s = ritz_interval(probe)
        a_s = (a / s).clamp_min(1e-12)
        b_s = torch.ones_like(s)
        if corrections is not None:
            glob, steps = (t.to(s.dtype) for t in corrections)
            b_s = b_s * bounded(glob[..., 1], UPPER_SHIFT_LIMIT).exp()
            shift = bounded(glob[..., 0], LOWER_SHIFT_LIMIT)
            if self.shift_candidates:  # global search: the engine picks a candidate lower end, then refines it
                a_s = self.candidate_lowers(a_s).gather(-1, glob[..., 2:].argmax(-1, keepdim=True)).squeeze(-1)
            a_s = torch.minimum(a_s * shift.exp(), 0.5 * b_s)
            steps = bounded(steps, self.step_limit)
        three = chebyshev_three_term(a_s, b_s, self.degree)
        if self.recurrence == "three_term":
            if corrections is None:
                return three, s
            return ThreeTerm(three.c0 * (1 + steps[..., 0, 0]), three.alpha * (1 + steps[..., 1:, 0]),
                             three.beta * (1 + steps[..., 1:, 1])), s
        upper = (probe.upper / s).clamp_min(1.0)
        basis = chebyshev_interpolant(lambda lam: evaluate(three, lam), torch.zeros_like(upper), upper, self.degree)
        if corrections is None:
            return basis, s
        return ChebyshevBasis(basis.c * (1 + steps[..., 0]), basis.a, basis.b), s

    # -- losses -------------------------------------------------------------------------------
    def loss(self, poly, scale: torch.Tensor, batch: dict, corrections=None) -> tuple[torch.Tensor, dict]:
        lam = batch["lam"] / scale.unsqueeze(-1)
        p = evaluate(poly, lam)
        p_grid = evaluate(poly, positivity_grid((batch["probe"].upper / scale).clamp_min(1.0), self.grid_points))
        checked = torch.cat([p_grid, p], dim=-1)
        if self.loss_name == "minimax":
            R = (1 - lam * p).abs()
            t = self.temperature
            per_spectrum = ((torch.logsumexp(t * R, dim=-1) - math.log(lam.shape[-1])) / t).clamp_min(1e-12).log()
            worst = torch.zeros_like(per_spectrum)  # |1 − λp| = 1: no better than no preconditioner
        else:
            per_spectrum = torch.log1p(self._soft_iterations(lam, p, batch["weights"]))
            worst = torch.full_like(per_spectrum, math.log1p(self.pcg_steps))
        # a polynomial that is not positive would be rejected by the safeguard: no credit for speed
        positive = (checked > 0).all(-1).detach()
        task = torch.where(positive, per_spectrum, worst).mean()
        margin = POSITIVITY_MARGIN * checked.abs().mean(-1, keepdim=True)
        penalty = (torch.relu(margin - checked).amax(-1) / checked.abs().mean(-1).clamp_min(1e-12)).mean()
        logs = {"task_loss": task.detach(), "positivity": penalty.detach(), "positive": positive.double().mean()}
        loss = task + self.positivity_weight * penalty
        if self.shift_candidates and corrections is not None:
            counts = batch["candidate_iterations"] if "candidate_iterations" in batch else self.candidate_iterations(batch)
            cost = counts.log()
            chance = torch.softmax(corrections[0][..., 2:].to(cost.dtype), dim=-1)
            choice = ((chance * cost).sum(-1) - cost.amin(-1)).mean()  # expected log-iteration regret
            logs["shift_choice"] = choice.detach()
            loss = loss + self.search_weight * choice
        return loss, logs

    def _soft_iterations(self, lam: torch.Tensor, p: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``Σ_k relu(log(‖r_k‖/‖b‖)/log(1/rtol) + 1)`` over K unrolled PCG steps."""
        hist = unrolled_pcg_residuals(lam, p, weights, self.pcg_steps, freeze_below=self.rtol / 10)
        digits = math.log(1 / self.rtol)
        return (torch.relu(hist.log() + digits) / digits).sum(-1)

    def prepare(self, batch: dict, gen: torch.Generator) -> dict:
        """With a global search, count every candidate's PCG iterations (in the data workers)."""
        return {**batch, "candidate_iterations": self.candidate_iterations(batch)} if self.shift_candidates else batch

    def candidate_lowers(self, a_s: torch.Tensor) -> torch.Tensor:
        """Candidate lower ends ``(..., C)`` in scaled units: ``a·e^g`` for the shifts g, then the
        fixed fractions ``f`` of the upper end (``0.1`` ≈ PETSc's default interval)."""
        shifts = torch.tensor(self.shift_candidates, dtype=a_s.dtype, device=a_s.device)
        fixed = torch.tensor(self.lower_candidates, dtype=a_s.dtype, device=a_s.device)
        return torch.cat([a_s.unsqueeze(-1) * shifts.exp(), fixed.expand(*a_s.shape, -1)], dim=-1)

    @torch.no_grad()
    def candidate_iterations(self, batch: dict) -> torch.Tensor:
        """``(B, C)`` PCG iterations to ``rtol`` of each candidate's plain Chebyshev polynomial,
        counted up to ``search_max_iters`` (never converged there: 4× that, so a risky candidate
        costs more than a cautious one)."""
        a, s = ritz_interval(batch["probe"])
        lowers = torch.minimum(self.candidate_lowers((a / s).clamp_min(1e-12)), torch.tensor(0.5))
        lam = batch["lam"] / s.unsqueeze(-1)
        counts = []
        for i in range(lowers.shape[-1]):
            poly = chebyshev_three_term(lowers[..., i], torch.ones_like(s), self.degree)
            counts.append(pcg_iterations(lam, evaluate(poly, lam), batch["weights"], self.rtol, self.search_max_iters))
        counts = torch.stack(counts, -1).double()
        return torch.where(counts > self.search_max_iters, 4.0 * self.search_max_iters, counts)

    # -- metrics ------------------------------------------------------------------------------
    def iterations(self, poly, scale: torch.Tensor, batch: dict) -> torch.Tensor:
        """PCG outer iterations to ``rtol`` on ``diag(λ)`` for every spectrum of the batch."""
        lam = batch["lam"] / scale.unsqueeze(-1)
        return pcg_iterations(lam, evaluate(poly, lam), batch["weights"], self.rtol, self.max_iters)

    def safe(self, poly, scale: torch.Tensor, probe: Probe) -> torch.Tensor:
        """Per-spectrum safeguard verdict (as at inference): finite and ``p > 0`` on the grid."""
        upper = (probe.upper / scale).tolist()
        return torch.tensor([polynomial_is_safe(_member(poly, i), u) for i, u in enumerate(upper)])


def _member(poly, i: int):
    """The i-th polynomial of a batch."""
    return type(poly)(*(getattr(poly, f)[i] for f in poly.__dataclass_fields__))


def unrolled_pcg_residuals(lam: torch.Tensor, p: torch.Tensor, weights: torch.Tensor, steps: int,
                           freeze_below: float = RESIDUAL_FLOOR) -> torch.Tensor:
    """Relative residual norms ``‖r_k‖/‖b‖`` (k = 1..K) of PCG on ``diag(λ)`` with ``M = diag(p(λ))``
    and ``b = weights``: shape ``(..., K')``, ``K' <= K`` (stops once every system is below
    ``freeze_below``); differentiable in ``p``."""
    b = weights
    p = safe_values(p).unsqueeze(-1)
    bnorm = b.norm(dim=-2)
    hist = []
    run = cg_steps(lambda V: lam.unsqueeze(-1) * V, b, precond=lambda r: p * r, freeze_below=freeze_below)
    for _, step in zip(range(steps), run):
        hist.append((step.r.norm(dim=-2) / bnorm).squeeze(-1))
        if bool((hist[-1] <= freeze_below).all()):
            break
    return torch.stack(hist, dim=-1)
