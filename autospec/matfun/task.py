"""The ``matfun`` task: learned matrix functions, in two forms.

**Action** (``form="action"``, f in ``inv_sqrt``, ``sqrt``, ``inv``): a degree-d polynomial in the
Chebyshev basis with ``p(A) z ≈ f(A) z``. The probe gives ``[a, b]`` of
:func:`autospec.core.intervals.spectral_interval`; the engine's global head moves it,
``a' = a·e^{g_0}``, ``b' = b·e^{g_1}`` (``a' <= b'/2``), and blends the Chebyshev interpolant of f on
``[a', b']`` with a least-squares fit that also sees the Ritz values (where the probe says the
spectrum is)::

    c = c_int + t (c_ls − c_int),   c_ls = argmin Σ_j (p(x_j) − f(x_j))² + γ(d+1) Σ_i τ_i² (p(θ_i) − f(θ_i))²

(``x_j`` the d+1 Chebyshev nodes of ``[a', b']``, ``θ_i`` the Ritz values and ``τ_i²`` their Gauss
quadrature weights, so the second sum estimates ``E_z‖(p − f)(A) z‖²/n``; ``t = g_2``,
``γ = e^{g_3}``); the step heads then correct ``c_k ← c_k (1 + δ_k)``. Every output passes through
``m·tanh(·/m)``. Zero corrections give exactly the Chebyshev interpolant of ``matfun.apply(...,
method="chebyshev")``. Loss: mean over spectra of ``log(‖(p(λ) − f(λ))⊙w‖/‖f(λ)⊙w‖)`` on
``diag(λ)`` with Gaussian weights w; validation cost: that relative error.

**Dense polar** (``form="polar"``): K steps of the residual-form iteration ``X ← g_k(R) X``,
``R = I − X Xᵀ``, whose step k maps every singular value (``σ² = λ(XXᵀ)``) by the odd quintic
``σ ← a_k σ + b_k σ³ + c_k σ⁵``, from ``σ_0² = λ/s`` with s the probe's upper bound of ``λmax(G Gᵀ)``.
The engine reads that probe once and emits the whole schedule, ``a_k = a_kᶜ e^{δ_{k0}}``,
``c_k = c_kᶜ e^{δ_{k1}}``, ``b_k = b_kᶜ + (a_kᶜ − a_k) + (c_kᶜ − c_k)`` (so ``p_k(1)`` stays classical);
classical: the PolarExpress schedule. Loss: ``log rms(σ_K − 1)`` (= ``‖Q − U Vᵀ‖_F/√n``, the
distance to the polar factor; ``σ_K² − 1``, the orthogonality error, is blind to a step that maps
some σ below zero and so flips that singular direction for good) with multiplicative noise of relative size ``noise`` per step (bfloat16 rounding).

**Dense coupled** (``form="coupled"``, ``A^{∓1/2}``): ``Y ← Y g_k(R)``, ``Z ← g_k(R) Z``,
``R = I − Z Y`` from ``Y_0 = A/s``, ``Z_0 = I`` (s = ``θ_max + r_top`` of an m-step Lanczos probe of
A, the engine's input); every ``σ = √(λ(ZY))`` is mapped by an odd quintic. Step k is *adaptive*:
a probe of ``Z_k Y_k = I − R_k`` (m thin products; at k = 0 the probe of A over s) gives
``[lo_k², hi_k²] = [θ_min, θ_max + r_top]``, and the step is
the minimax quintic on ``[ρ_k' hi_k, hi_k]`` with ``ρ_k' = (lo_k/hi_k)^{e^{δ_k}}``
(:func:`autospec.kernels.polar.minimax_quintic`). The engine reads the first probe and emits the
K shifts δ_k (zero after step K); zero shifts are the greedy PolarExpress design on the probed
interval. Loss: the log of the (fractional, :func:`fractional_steps`) number of steps until
``ρ_k = rms(1 − σ_k²)`` (= ``‖X A X − I‖_F/√n``) reaches ``tol``, unrolling the scalar map with a
fresh Lanczos probe of ``diag(σ_k²)`` per step (exact for diagonal matrices). Validation cost:
matmuls to tol (polar: the final ``rms(σ_K − 1)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from collections.abc import Callable

from autospec.core.intervals import LOWER_SHIFT_LIMIT, UPPER_SHIFT_LIMIT, bounded, probe_interval, sigma_interval
from autospec.core.operators import Diagonal
from autospec.core.probe import Probe, lanczos
from autospec.core.recurrences import ChebyshevBasis, chebyshev_interpolant, chebyshev_nodes, chebyshev_vandermonde, evaluate
from autospec.engine.model import probe_features
from autospec.errors import InputValueError
from autospec.kernels.polar import POLAR_EXPRESS, minimax_quintic, residual_form
from autospec.learned import register_task

SCALAR_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "inv_sqrt": torch.rsqrt,
    "sqrt": torch.sqrt,
    "inv": torch.reciprocal,
}

FORMS = {"action": tuple(SCALAR_FUNCTIONS), "coupled": ("inv_sqrt",), "polar": ("polar",)}
BLEND_LIMIT = 1.5  # t within ±1.5
WEIGHT_LIMIT = 8.0  # γ within e^{±8}
DIVERGED = 1e3  # residuals are clamped here (a diverged schedule costs the most, never NaN)
SATURATION = 2.0  # the unrolled map grows |σ| > 2 only logarithmically


@dataclass
class Schedule:
    """Odd quintics ``σ ← a σ + b σ³ + c σ⁵`` of a dense iteration: ``q (..., K, 3)``."""

    q: torch.Tensor

    def residual_coefficients(self, k: int) -> tuple[torch.Tensor, ...]:
        """Step k as ``(g0, g1, g2)`` of ``g(R) = g0 + g1 R + g2 R²`` (per matrix)."""
        return residual_form(tuple(self.q[..., k, j] for j in range(3)))


@dataclass
class AdaptiveSchedule:
    """The coupled form's steps: shifts ``δ (..., K)`` of the probed interval (zero after step K)."""

    shift: torch.Tensor

    def quintic(self, k: int, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        """``(a, b, c) (..., 3)`` of step k: the minimax quintic on ``[(lo/hi)^{e^{δ_k}} hi, hi]``."""
        if k < self.shift.shape[-1]:
            lo = (lo / hi) ** self.shift[..., k].exp() * hi
        return minimax_quintic(lo, hi)


@register_task
class MatfunTask:
    """Learned matrix functions (see the module docstring for the mathematics)."""

    name = "matfun"

    def __init__(self, function: str = "inv_sqrt", form: str = "action", degree: int = 20, step_limit: float = 0.02,
                 steps: int = 8, coefficient_limit: float = 2.0, tol: float = 1e-6, extra_steps: int = 12,
                 noise: float = 0.0, recurrence: str = "basis"):
        if recurrence != "basis":
            raise InputValueError(f"matfun polynomials use the Chebyshev basis (recurrence=basis), not {recurrence!r}")
        if form not in FORMS:
            raise InputValueError(f"unknown matfun form {form!r}; choose one of {sorted(FORMS)}")
        if function not in FORMS[form]:
            raise InputValueError(f"form {form!r} computes {FORMS[form]}, not {function!r}")
        if degree < 1 or steps < 1:
            raise InputValueError(f"degree and steps must be >= 1, got {degree}, {steps}")
        self.function, self.form, self.degree, self.recurrence = function, form, int(degree), recurrence
        self.step_limit, self.steps, self.coefficient_limit = float(step_limit), int(steps), float(coefficient_limit)
        self.tol, self.extra_steps, self.noise = float(tol), int(extra_steps), float(noise)

    @property
    def layout(self) -> dict:
        if self.form == "action":
            return {"global_outputs": 4, "steps": self.degree + 1, "per_step": 1}
        return {"global_outputs": 0, "steps": self.steps, "per_step": 1 if self.form == "coupled" else 2}

    features = staticmethod(probe_features)

    def scale(self, probe: Probe) -> torch.Tensor:
        """Action: b of the probe interval; dense: the probe's upper bound of λmax (σ_0² = λ/s)."""
        return probe_interval(probe)[1] if self.form == "action" else probe.upper

    def polynomial(self, probe: Probe, corrections=None):
        """``(poly, scale)``: a :class:`ChebyshevBasis` in A's units (action), an
        :class:`AdaptiveSchedule` (coupled) or a :class:`Schedule` (polar)."""
        if self.form == "action":
            return self._action(probe, corrections), self.scale(probe)
        if self.form == "coupled":
            shift = torch.zeros(*probe.upper.shape, self.steps, dtype=probe.upper.dtype)
            if corrections is not None:
                shift = bounded(corrections[1][..., 0].to(shift.dtype), self.coefficient_limit)
            return AdaptiveSchedule(shift), self.scale(probe)
        q = torch.tensor(self.classical(), dtype=probe.upper.dtype).expand(*probe.upper.shape, -1, -1)
        if corrections is not None:  # a, c scaled; b keeps p(1) = p_classical(1)
            a, b, c = q.unbind(-1)
            factor = bounded(corrections[1].to(q.dtype), self.coefficient_limit).exp()
            a2, c2 = a * factor[..., 0], c * factor[..., 1]
            q = torch.stack([a2, b + (a - a2) + (c - c2), c2], -1)
        return Schedule(q), self.scale(probe)

    def classical(self) -> list[tuple[float, float, float]]:
        """The polar form's zero-correction schedule: PolarExpress."""
        return [POLAR_EXPRESS[min(k, len(POLAR_EXPRESS) - 1)] for k in range(self.steps)]

    def _action(self, probe: Probe, corrections) -> ChebyshevBasis:
        f = SCALAR_FUNCTIONS[self.function]
        a, b = probe_interval(probe)
        if corrections is None:
            return chebyshev_interpolant(f, a, b, self.degree)
        glob, steps = (t.to(a.dtype) for t in corrections)
        b = b * bounded(glob[..., 1], UPPER_SHIFT_LIMIT).exp()
        a = torch.minimum(a * bounded(glob[..., 0], LOWER_SHIFT_LIMIT).exp(), b / 2)
        base = chebyshev_interpolant(f, a, b, self.degree)
        fit = ritz_fit(f, probe, a, b, self.degree, bounded(glob[..., 3], WEIGHT_LIMIT).exp())
        c = base.c + bounded(glob[..., 2], BLEND_LIMIT).unsqueeze(-1) * (fit - base.c)
        return ChebyshevBasis(c * (1 + bounded(steps[..., 0], self.step_limit)), a, b)

    # -- losses and metrics ---------------------------------------------------------------------
    def loss(self, poly, scale: torch.Tensor, batch: dict, corrections=None) -> tuple[torch.Tensor, dict]:
        if self.form == "action":
            cost = self.iterations(poly, scale, batch, grad=True).log()
        elif self.form == "coupled":
            hist = self._unroll_adaptive(poly, batch["lam"], batch["probe"], self.steps + self.extra_steps)
            cost = fractional_steps(hist, self.tol).log()
        else:
            cost = self._polar_error(poly, batch["lam"] / scale.unsqueeze(-1), noise=self.noise).log()
        loss = cost.mean()
        return loss, {"task_loss": loss.detach()}

    def iterations(self, poly, scale: torch.Tensor, batch: dict, grad: bool = False) -> torch.Tensor:
        """Validation cost per spectrum: action ``‖(p − f)⊙w‖/‖f⊙w‖``; coupled: matmuls to ``tol``
        (``4S − 1`` for S steps, as :func:`autospec.kernels.common.coupled_iteration` counts;
        ``+inf`` if never); polar: the final ``rms(σ − 1)``."""
        with torch.set_grad_enabled(grad):
            if self.form == "action":
                w = batch["weights"][..., 0]
                fl = SCALAR_FUNCTIONS[self.function](batch["lam"])
                err = ((evaluate(poly, batch["lam"]) - fl) * w).norm(dim=-1) / (fl * w).norm(dim=-1)
                return torch.nan_to_num(err, nan=DIVERGED, posinf=DIVERGED).clamp(1e-300, DIVERGED)
            if self.form == "polar":
                return self._polar_error(poly, batch["lam"] / scale.unsqueeze(-1))
            hist = self._unroll_adaptive(poly, batch["lam"], batch["probe"], self.steps + self.extra_steps)
            done = hist <= self.tol
            first = torch.where(done.any(-1), done.double().argmax(-1).double(), torch.full_like(hist[..., 0], math.inf))
            return 4 * first - 1

    def _polar_error(self, poly: Schedule, x: torch.Tensor, noise: float = 0.0) -> torch.Tensor:
        """``rms(σ_K − 1)`` after the schedule's K steps from ``σ_0² = x``: zero only at the polar
        factor (a step that maps σ below 0 flips that direction for good, and ``σ² − 1``
        would not see it)."""
        sigma = x.clamp_min(0).sqrt()
        for k in range(poly.q.shape[-2]):
            sigma = _quintic_map(sigma, poly.q[..., k, :])
            if noise > 0:
                sigma = sigma * (1 + noise * torch.randn_like(sigma))
            sigma = _saturate(sigma)
        ms = torch.nan_to_num((sigma - 1).square().mean(-1), nan=DIVERGED**2)
        return ms.clamp(1e-300, DIVERGED**2).sqrt()

    def _unroll_adaptive(self, poly: AdaptiveSchedule, lam: torch.Tensor, probe: Probe, steps: int) -> torch.Tensor:
        """Residuals ``rms(1 − σ_k²)`` of the coupled form's scalar map from ``σ_0² = λ/s``
        (``s = θ_max + r_top`` of the probe, as in the library): step 0
        reads the given probe of λ, step k a Lanczos probe (as many steps) of ``diag(σ_k²)``."""
        s = probe.theta_max + probe.top_residual()
        sigma = (lam / s.unsqueeze(-1)).clamp_min(0).sqrt()
        hist = [_rms_residual(sigma)]
        for k in range(steps):
            if k == 0:
                lo, hi = sigma_interval(probe, s)
            else:
                lo, hi = sigma_interval(lanczos(Diagonal(sigma.detach().square()), steps=probe.steps, seed=k))
            sigma = _saturate(_quintic_map(sigma, poly.quintic(k, lo, hi)))
            hist.append(_rms_residual(sigma))
        return torch.stack(hist, -1)

    def safe(self, poly, scale: torch.Tensor, probe: Probe) -> torch.Tensor:
        """Finite coefficients; for the action also no worse than the Chebyshev interpolant by the
        probe's quadrature estimate of the error (:func:`estimated_error`; exact in expectation when
        the probe spans the whole space, m ≥ n, where the engine's inputs lie outside its training
        range). Unsafe polynomials fall back to the zero-correction baseline."""
        if self.form == "action":
            finite = torch.isfinite(poly.c).all(-1)
            if probe.weights is None:
                return finite
            base, _ = self.polynomial(probe)
            return finite & (estimated_error(poly, probe, self.function) <= estimated_error(base, probe, self.function))
        coefficients = poly.shift if self.form == "coupled" else poly.q.flatten(-2)
        return torch.isfinite(coefficients).all(-1)


def fractional_steps(hist: torch.Tensor, tol: float) -> torch.Tensor:
    """Steps to ``tol`` of residual histories ``(..., S+1)``, interpolated in log residual:
    ``k − 1 + (log ρ_{k−1} − log tol)/(log ρ_{k−1} − log ρ_k)`` at the first k with ``ρ_k ≤ tol``
    (differentiable through the two residuals around the crossing; never reached: S plus the
    remaining digits over the last step's gain)."""
    log_r, target = hist.log(), math.log(tol)
    done = log_r <= target
    k = torch.where(done.any(-1), done.double().argmax(-1), torch.full_like(log_r[..., 0], hist.shape[-1] - 1).long())
    k = k.clamp_min(1).unsqueeze(-1)
    before, after = log_r.gather(-1, k - 1), log_r.gather(-1, k)
    fraction = (before - target) / (before - after).clamp_min(1e-3)
    return (k - 1 + fraction).squeeze(-1).clamp_min(0.0)


def _quintic_map(sigma: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``a σ + b σ³ + c σ⁵`` with ``q = (a, b, c) (..., 3)`` per row of ``sigma (..., n)``."""
    a, b, c = q.unsqueeze(-2).unbind(-1)
    s2 = sigma * sigma
    return sigma * (a + s2 * (b + c * s2))


def _saturate(sigma: torch.Tensor) -> torch.Tensor:
    """Identity for ``|σ| <= 2``, ``±(2 + 2 log(|σ|/2))`` beyond: a diverging eigenvalue stays finite
    and keeps a gradient (so training learns to avoid overshoot)."""
    big = sigma.abs() > SATURATION
    grown = sigma.sign() * SATURATION * (1 + torch.log(sigma.abs().clamp_min(SATURATION) / SATURATION))
    return torch.where(big, grown, sigma)


def _rms_residual(sigma: torch.Tensor) -> torch.Tensor:
    ms = torch.nan_to_num((1 - sigma * sigma).square().mean(-1), nan=DIVERGED**2)
    return ms.clamp(1e-300, DIVERGED**2).sqrt()  # clamped before the sqrt: a zero residual has a finite gradient


def ritz_fit(f, probe: Probe, a: torch.Tensor, b: torch.Tensor, degree: int, weight: torch.Tensor) -> torch.Tensor:
    """Chebyshev coefficients on ``[a, b]`` of the weighted least-squares fit of f on the d+1 Chebyshev
    nodes (weight 1 each) and the Ritz values ``θ_j`` (weight ``γ (d+1) τ_j²``, the probe's Gauss
    quadrature weights, uniform ``1/m`` without them), by QR (differentiable). With large γ it is
    the fit that minimises the quadrature estimate of ``E_z ‖(p − f)(A) z‖²``."""
    ritz = probe.ritz.to(a.dtype)
    tau = probe.weights.to(a.dtype) if probe.weights is not None else torch.full_like(ritz, 1 / ritz.shape[-1])
    nodes = (a + b).unsqueeze(-1) / 2 + (b - a).unsqueeze(-1) / 2 * chebyshev_nodes(degree, a.dtype)
    x = torch.cat([nodes, ritz], -1)
    ritz_sqrt_weight = (weight * (degree + 1)).sqrt().unsqueeze(-1) * tau.clamp_min(0).sqrt()  # τ carries no gradient
    sw = torch.cat([torch.ones_like(nodes), ritz_sqrt_weight], -1).unsqueeze(-1)
    Q, R = torch.linalg.qr(chebyshev_vandermonde(x, a, b, degree) * sw)
    rhs = Q.mT @ (f(x).unsqueeze(-1) * sw)
    return torch.linalg.solve_triangular(R, rhs, upper=True).squeeze(-1)


def estimated_error(poly: ChebyshevBasis, probe: Probe, f: str) -> torch.Tensor:
    """``(Σ_j τ_j² (p(θ_j) − f(θ_j))² / Σ_j τ_j² f(θ_j)²)^{1/2}`` per probe: the Gauss-quadrature
    estimate of ``E_z‖(p − f)(A) z‖² / E_z‖f(A) z‖²`` from a Lanczos probe."""
    theta, tau = probe.ritz.double(), probe.weights.double()
    fx = SCALAR_FUNCTIONS[f](theta)
    err = (evaluate(poly, theta).double() - fx).square()
    return ((tau * err).sum(-1) / (tau * fx.square()).sum(-1)).sqrt()
