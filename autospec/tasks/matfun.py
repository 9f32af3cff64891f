"""The ``matfun`` task: learned matrix functions, in two forms.

**Action** (``form="action"``, f in ``inv_sqrt``, ``sqrt``, ``inv``): a degree-d polynomial in the
Chebyshev basis with ``p(A) z ≈ f(A) z``. The probe gives ``[a, b]`` of
:func:`autospec.matfun.spectral_interval`; the engine's global head moves it,
``a' = a·e^{g_0}``, ``b' = b·e^{g_1}`` (``a' <= b'/2``), and blends the Chebyshev interpolant of f on
``[a', b']`` with a least-squares fit that also sees the Ritz values (where the probe says the
spectrum is)::

    c = c_int + t (c_ls − c_int),   c_ls = argmin Σ_j (p(x_j) − f(x_j))² + γ Σ_i (p(θ_i) − f(θ_i))²

(``x_j`` the d+1 Chebyshev nodes of ``[a', b']``, ``θ_i`` the Ritz values, ``t = g_2``,
``γ = e^{g_3}``); the step heads then correct ``c_k ← c_k (1 + δ_k)``. Every output passes through
``m·tanh(·/m)``. Zero corrections give exactly the Chebyshev interpolant of ``matfun.apply(...,
method="chebyshev")``. Loss: mean over spectra of ``log(‖(p(λ) − f(λ))⊙w‖/‖f(λ)⊙w‖)`` on
``diag(λ)`` with Gaussian weights w; validation cost: that relative error.

**Dense** (``form="coupled"`` for ``A^{∓1/2}``, ``form="polar"``): K steps of a residual-form
iteration whose step k maps every singular value (polar; ``σ² = λ(XXᵀ)``) or every ``σ = √(y z)``
(coupled: ``Y ← Y g(R)``, ``Z ← g(R) Z``, ``R = I − Z Y``, so ``x = y z ← x g(1 − x)²``) by the odd
quintic ``σ ← a_k σ + b_k σ³ + c_k σ⁵``, from ``σ_0² = λ/s`` with s the probe's upper bound of
λmax (of A, or of ``G Gᵀ``). The engine reads that probe once and emits the whole schedule,
``a_k = a_kᶜ e^{δ_{k0}}``, ``c_k = c_kᶜ e^{δ_{k1}}``, ``b_k = b_kᶜ + (a_kᶜ − a_k) + (c_kᶜ − c_k)`` (so
``p_k(1)`` stays classical); classical: the Taylor quintic ``(15, −10, 3)/8``
(PRISM's ``1 + r/2 + αr²`` at α = 3/8) for ``coupled``, the PolarExpress schedule for ``polar``.
After the K steps the coupled iteration continues with Taylor steps until ``tol``. Training unrolls
the scalar map (exact for diagonal matrices). Losses: ``coupled``: soft count of steps to ``tol``,
``Σ_k relu(log(ρ_k)/log(1/tol) + 1)``, ``ρ_k = rms(1 − σ_k²)`` (= ``‖X A X − I‖_F/√n``); ``polar``:
``log rms(σ_K² − 1)`` (= ``‖QᵀQ − I‖_F/√n``) with multiplicative noise of relative size
``noise`` per step (bfloat16 rounding). Validation cost: matmuls to tol / final error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from autospec.engine import probe_features
from autospec.errors import InputValueError
from autospec.kernels.common import KernelInfo, accum_dtype, coupled_iteration, polar_iteration
from autospec.kernels.polar import POLAR_EXPRESS, residual_form
from autospec.matfun import SCALAR_FUNCTIONS, _steps, probe_interval
from autospec.operators import CallableOperator, as_operator
from autospec.probe import Probe, lanczos
from autospec.recurrences import ChebyshevBasis, chebyshev_interpolant, chebyshev_nodes, chebyshev_values, evaluate
from autospec.tasks.linsys import MAX_LOWER_SHIFT, MAX_UPPER_SHIFT, _bounded

FORMS = {"action": tuple(SCALAR_FUNCTIONS), "coupled": ("inv_sqrt",), "polar": ("polar",)}
BLEND_LIMIT = 1.5  # t within ±1.5
WEIGHT_LIMIT = 8.0  # γ within e^{±8}
TAYLOR_QUINTIC = (15 / 8, -10 / 8, 3 / 8)  # σ(1 + r/2 + 3r²/8), r = 1 − σ²
DIVERGED = 1e3  # residuals are clamped here (a diverged schedule costs the most, never NaN)
SATURATION = 2.0  # the unrolled map grows |σ| > 2 only logarithmically


@dataclass
class Schedule:
    """Odd quintics ``σ ← a σ + b σ³ + c σ⁵`` of a dense iteration: ``q (..., K, 3)``."""

    q: torch.Tensor

    def residual_coefficients(self, k: int) -> tuple[torch.Tensor, ...]:
        """Step k as ``(g0, g1, g2)`` of ``g(R) = g0 + g1 R + g2 R²`` (per matrix)."""
        return residual_form(tuple(self.q[..., k, j] for j in range(3)))


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
        return {"global_outputs": 0, "steps": self.steps, "per_step": 2}

    features = staticmethod(probe_features)

    def scale(self, probe: Probe) -> torch.Tensor:
        """Action: b of the probe interval; dense: the probe's upper bound of λmax (σ_0² = λ/s)."""
        return probe_interval(probe)[1] if self.form == "action" else probe.upper

    def polynomial(self, probe: Probe, corrections=None):
        """``(poly, scale)``: a :class:`ChebyshevBasis` in A's units (action) or a :class:`Schedule`."""
        if self.form == "action":
            return self._action(probe, corrections), self.scale(probe)
        q = torch.tensor(self.classical(), dtype=probe.upper.dtype).expand(*probe.upper.shape, -1, -1)
        if corrections is not None:  # a, c scaled; b keeps p(1) = p_classical(1)
            a, b, c = q.unbind(-1)
            factor = _bounded(corrections[1].to(q.dtype), self.coefficient_limit).exp()
            a2, c2 = a * factor[..., 0], c * factor[..., 1]
            q = torch.stack([a2, b + (a - a2) + (c - c2), c2], -1)
        return Schedule(q), self.scale(probe)

    def classical(self) -> list[tuple[float, float, float]]:
        """The zero-correction schedule: Taylor quintics (coupled) or PolarExpress (polar)."""
        if self.form == "coupled":
            return [TAYLOR_QUINTIC] * self.steps
        return [POLAR_EXPRESS[min(k, len(POLAR_EXPRESS) - 1)] for k in range(self.steps)]

    def _action(self, probe: Probe, corrections) -> ChebyshevBasis:
        f = SCALAR_FUNCTIONS[self.function]
        a, b = probe_interval(probe)
        if corrections is None:
            return chebyshev_interpolant(f, a, b, self.degree)
        glob, steps = (t.to(a.dtype) for t in corrections)
        b = b * _bounded(glob[..., 1], MAX_UPPER_SHIFT).exp()
        a = torch.minimum(a * _bounded(glob[..., 0], MAX_LOWER_SHIFT).exp(), b / 2)
        base = chebyshev_interpolant(f, a, b, self.degree)
        fit = ritz_fit(f, probe.ritz, a, b, self.degree, _bounded(glob[..., 3], WEIGHT_LIMIT).exp())
        c = base.c + _bounded(glob[..., 2], BLEND_LIMIT).unsqueeze(-1) * (fit - base.c)
        return ChebyshevBasis(c * (1 + _bounded(steps[..., 0], self.step_limit)), a, b)

    # -- losses and metrics ---------------------------------------------------------------------
    def loss(self, poly, scale: torch.Tensor, batch: dict, corrections=None) -> tuple[torch.Tensor, dict]:
        if self.form == "action":
            cost = self.iterations(poly, scale, batch, grad=True).log()
        elif self.form == "coupled":
            hist = self._unroll(poly, batch["lam"] / scale.unsqueeze(-1), self.steps + self.extra_steps)
            digits = math.log(1 / self.tol)
            cost = torch.log1p((torch.relu(hist.log() / digits + 1)).sum(-1))
        else:
            hist = self._unroll(poly, batch["lam"] / scale.unsqueeze(-1), self.steps, noise=self.noise)
            cost = hist[..., -1].log()
        loss = cost.mean()
        return loss, {"task_loss": loss.detach()}

    def iterations(self, poly, scale: torch.Tensor, batch: dict, grad: bool = False) -> torch.Tensor:
        """Validation cost per spectrum: action ``‖(p − f)⊙w‖/‖f⊙w‖``; coupled: matmuls to ``tol``
        (``4S − 1`` for S steps, as :func:`autospec.kernels.common.coupled_iteration` counts;
        ``+inf`` if never); polar: the final ``rms(σ² − 1)``."""
        with torch.set_grad_enabled(grad):
            lam = batch["lam"] / scale.unsqueeze(-1)
            if self.form == "action":
                w = batch["weights"][..., 0]
                fl = SCALAR_FUNCTIONS[self.function](batch["lam"])
                err = ((evaluate(poly, batch["lam"]) - fl) * w).norm(dim=-1) / (fl * w).norm(dim=-1)
                return torch.nan_to_num(err, nan=DIVERGED, posinf=DIVERGED).clamp(1e-300, DIVERGED)
            hist = self._unroll(poly, lam, self.steps + (self.extra_steps if self.form == "coupled" else 0))
            if self.form == "polar":
                return hist[..., -1]
            done = hist <= self.tol
            first = torch.where(done.any(-1), done.double().argmax(-1).double(), torch.full_like(hist[..., 0], math.inf))
            return 4 * first - 1

    def _unroll(self, poly: Schedule, x: torch.Tensor, steps: int, noise: float = 0.0) -> torch.Tensor:
        """Residuals ``rms(1 − σ_k²)`` for k = 0..steps of the scalar map (Taylor after the schedule)."""
        sigma = x.clamp_min(0).sqrt()
        hist = [_rms_residual(sigma)]
        for k in range(steps):
            a, b, c = (poly.q[..., k, j].unsqueeze(-1) for j in range(3)) if k < poly.q.shape[-2] else TAYLOR_QUINTIC
            s2 = sigma * sigma
            sigma = sigma * (a + s2 * (b + c * s2))
            if noise > 0:
                sigma = sigma * (1 + noise * torch.randn_like(sigma))
            sigma = _saturate(sigma)
            hist.append(_rms_residual(sigma))
        return torch.stack(hist, -1)

    def safe(self, poly, scale: torch.Tensor, probe: Probe) -> torch.Tensor:
        """Finite coefficients."""
        coefficients = poly.c if self.form == "action" else poly.q.flatten(-2)
        return torch.isfinite(coefficients).all(-1)


def _saturate(sigma: torch.Tensor) -> torch.Tensor:
    """Identity for ``|σ| <= 2``, ``±(2 + 2 log(|σ|/2))`` beyond: a diverging eigenvalue stays finite
    and keeps a gradient (so training learns to avoid overshoot)."""
    big = sigma.abs() > SATURATION
    grown = sigma.sign() * SATURATION * (1 + torch.log(sigma.abs().clamp_min(SATURATION) / SATURATION))
    return torch.where(big, grown, sigma)


def _rms_residual(sigma: torch.Tensor) -> torch.Tensor:
    ms = torch.nan_to_num((1 - sigma * sigma).square().mean(-1), nan=DIVERGED**2)
    return ms.clamp(1e-300, DIVERGED**2).sqrt()  # clamped before the sqrt: a zero residual has a finite gradient


def chebyshev_vandermonde(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, degree: int) -> torch.Tensor:
    """``T_k(ℓ(x))`` for k = 0..d, ``ℓ(x) = (2x − a − b)/(b − a)`` (three-term recurrence, any x):
    shape ``(..., P, d+1)``."""
    return chebyshev_values((2 * x - (a + b).unsqueeze(-1)) / (b - a).unsqueeze(-1), degree)


def ritz_fit(f, ritz: torch.Tensor, a: torch.Tensor, b: torch.Tensor, degree: int, weight: torch.Tensor) -> torch.Tensor:
    """Chebyshev coefficients on ``[a, b]`` of the weighted least-squares fit of f on the d+1 Chebyshev
    nodes (weight 1) and the Ritz values (weight ``γ``), by QR (differentiable)."""
    nodes = (a + b).unsqueeze(-1) / 2 + (b - a).unsqueeze(-1) / 2 * chebyshev_nodes(degree, a.dtype)
    x = torch.cat([nodes, ritz.to(a.dtype)], -1)
    sw = torch.cat([torch.ones_like(nodes), weight.sqrt().unsqueeze(-1).expand_as(ritz)], -1).unsqueeze(-1)
    Q, R = torch.linalg.qr(chebyshev_vandermonde(x, a, b, degree) * sw)
    rhs = Q.mT @ (f(x).unsqueeze(-1) * sw)
    return torch.linalg.solve_triangular(R, rhs, upper=True).squeeze(-1)


# --------------------------------------------------------------------------- library methods

DEFAULT_ENGINES = {"inv_sqrt": "matfun-inv_sqrt-d20", "sqrt": "matfun-sqrt-d20", "inv": "matfun-inv-d20"}
DENSE_ENGINES = {"coupled": "matfun-coupled-inv_sqrt", "polar": "matfun-polar-bf16"}


def _engine(engine, form: str, function: str, degree: int | None = None):
    """Load ``engine`` (name, path or LearnedEngine; None → the shipped default) and check it fits."""
    from autospec.engines import load

    if engine is None:
        engine = DEFAULT_ENGINES[function] if form == "action" else DENSE_ENGINES[form]
    learned = load(engine)
    task = learned.task
    if task.name != "matfun" or task.form != form or task.function != function:
        raise InputValueError(f"engine {learned.name!r} computes {getattr(task, 'form', task.name)!r} "
                              f"{getattr(task, 'function', '')!r}, not the {form} form of {function!r}")
    if degree is not None and task.degree != degree:
        raise InputValueError(f"engine {learned.name!r} has degree {task.degree}, the call asked for degree {degree}")
    return learned


def autospec_apply(op, probe: Probe, f: str, degree: int, engine):
    """``apply`` method ``autospec``: the engine's polynomial for the probe, and its interval."""
    poly, _ = _engine(engine, "action", f, degree).coefficients_from_probe(probe)
    poly = ChebyshevBasis(poly.c.to(op.dtype), poly.a.to(op.dtype), poly.b.to(op.dtype))
    return poly, (float(poly.a), float(poly.b))


def _stacked_probe(matrices, steps: int) -> Probe:
    """Lanczos probes of a list of operators, stacked into one batched probe."""
    probes = [lanczos(op, steps=steps, seed=0) for op in matrices]
    fields = {k: torch.stack([getattr(p, k) for p in probes]) for k in ("ritz", "residuals", "upper", "lower")}
    return Probe(**fields, steps=probes[0].steps, matvecs=probes[0].matvecs)


def _dense_probe(learned, M: torch.Tensor, gram: bool, info: KernelInfo) -> tuple[Schedule, torch.Tensor]:
    """Probe every matrix of the batch (A, or ``G Gᵀ`` through thin products; accumulation dtype),
    count the thin products as sketch matmuls, and return the engine's schedule and the scale."""
    flat = M.reshape(-1, *M.shape[-2:]).to(accum_dtype(M.dtype))
    if gram:
        ops = [CallableOperator(lambda V, G=G: G @ (G.mT @ V), G.shape[-2], G.dtype, numpy=False) for G in flat]
    else:
        ops = [as_operator(A) for A in flat]
    probe = _stacked_probe(ops, min(learned.probe_steps, flat.shape[-2]))
    info.sketch_matmuls += probe.matvecs * (2 if gram else 1)
    schedule, scale = learned.coefficients_from_probe(probe)
    lead = M.shape[:-2]
    return Schedule(schedule.q.reshape(*lead, *schedule.q.shape[-2:])), scale.reshape(lead)


def _coefficients(schedule: Schedule, dtype: torch.dtype):
    K = schedule.q.shape[-2]
    taylor = residual_form(TAYLOR_QUINTIC)
    steps = [tuple(g.to(dtype) for g in schedule.residual_coefficients(k)) for k in range(K)]
    return lambda k, powers: steps[k] if k < K else taylor


def _coupled(part: str):
    def run(A, *, tol, max_iters, engine):
        """``Y ← Y g_k(R)``, ``Z ← g_k(R) Z`` with the engine's schedule. The kernel starts from
        ``A/‖A‖_F``, i.e. ``σ_0 = √(λ/s)/√ρ`` with ``ρ = ‖A‖_F/s``, so the first quintic is applied to
        ``√ρ σ``: its coefficients become ``(a√ρ, bρ^{3/2}, cρ^{5/2})``."""
        learned = _engine(engine, "coupled", "inv_sqrt")
        info = KernelInfo()
        schedule, s = _dense_probe(learned, A, gram=False, info=info)
        acc = accum_dtype(A.dtype)
        rho = (torch.linalg.matrix_norm(A.to(torch.float64)) / s).unsqueeze(-1)
        q = schedule.q.clone()
        q[..., 0, :] = q[..., 0, :] * torch.cat([rho.sqrt(), rho**1.5, rho**2.5], -1)
        pair = coupled_iteration(A, _coefficients(Schedule(q), acc), info, **{"max_iters": None, **_steps(tol, max_iters)})
        return getattr(pair, part), info

    return run


def _polar(G, *, tol, max_iters, engine):
    """``X ← g_k(R) X`` with the engine's schedule from ``X_0 = G/√s`` (s: probe bound of ``λmax(G Gᵀ)``);
    ``tol=None`` runs ``max_iters`` steps (default: the schedule's K)."""
    learned = _engine(engine, "polar", "polar")
    info = KernelInfo()
    wide = G.mT if G.shape[-2] > G.shape[-1] else G
    schedule, s = _dense_probe(learned, wide, gram=True, info=info)
    acc = accum_dtype(G.dtype)
    scale = s.to(acc).sqrt() / torch.linalg.matrix_norm(G.to(acc))
    K = schedule.q.shape[-2]
    steps = {"max_iters": None, **_steps(tol, K if tol is None and max_iters is None else max_iters)}
    X = polar_iteration(G, _coefficients(schedule, acc), info, scale=scale, **steps)
    return X, info


AUTOSPEC_METHODS = {"apply": autospec_apply, "inv_sqrt": _coupled("inv_sqrt"), "sqrt": _coupled("sqrt"),
                    "polar": _polar}
