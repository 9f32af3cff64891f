"""Filtered subspace iteration with a degree per Ritz vector (ChASE-style degree optimisation).

ChFSI filters every column of the block with one polynomial ``T_m(ℓ(A))/T_m(ℓ(a_L))`` whose
degree is set by the slowest wanted Ritz pair, so the pairs that are nearly converged — and the
guard columns — pay that degree too. ChASE (Winkelmann et al. 2019) gives each Ritz vector v_j the
degree its own residual needs: a degree-m Chebyshev filter on ``[a, b]`` reduces the error of
``v_j`` by about ``T_m(|ℓ(θ_j)|) ≈ e^{m u_j}/2``, ``u_j = acosh|ℓ(θ_j)|``, so

    m_j = ⌈(ln(r_j/tol) + 1)/u_j⌉   (wanted, unconverged; clamped to [2, m])

with m the escalated degree of ChFSI (:func:`autospec.eigen.filters.filter_degree`), which the
pairs at the cut keep; the guard columns take the largest wanted degree (they only have to keep
pace with the slowest wanted pair: measured 0.5–1.5 % fewer products than giving them m). The cut
is ChFSI's ``θ_s`` except on a degenerate edge (:func:`edge_cut`: a repeated eigenvalue spanning
the block's edge, where ``θ_s = θ_k`` and a cut there separates nothing). Column j of the
filtered block is ``T_{m_j}(ℓ(A)) v_j`` (the recurrence drops a column when it reaches its
degree), then orthonormalisation and
Rayleigh–Ritz as ChFSI. The Rayleigh–Ritz products ``A V`` are the recurrence's first products
(ChFSI computes them twice), so column j costs ``m_j`` products per outer iteration, ChFSI's
``m + 1``. The first outer iteration is ChFSI's (probe interval, degree ``base``).

Residuals, locking, the budget, stagnation and the whole-space switch are those of
:mod:`autospec.eigen.subspace`; every residual is from exact products.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from autospec.core.intervals import filter_start, unwanted_lower
from autospec.eigen.filters import MAX_DEGREE, filter_degree
from autospec.eigen.subspace import (
    EigenInfo,
    _Locking,
    _orthonormalise,
    _Problem,
    _whole_space,
    _whole_space_cheaper,
)
from autospec.kernels import polynomial

_TINY = 1e-300
DEGENERATE = 1e-3  # an edge θ_s − θ_k below this share of θ_s − θ_1 (and ρ) is one repeated eigenvalue


@dataclass(frozen=True)
class ColumnPlan:
    base: int = 16  # degree (products per column) of the first outer iteration, and the escalation's floor
    upper: float | None = None  # b (None: the probe's safe bound)
    max_degree: int = MAX_DEGREE


def column_degrees(a: float, b: float, theta: torch.Tensor, r: torch.Tensor, tol: float, wanted: int,
                   top: int) -> torch.Tensor:
    """``m_j`` per column (module docstring): ``top`` for pairs at or above the cut; the guard
    columns (index >= ``wanted``) the largest wanted degree."""
    x = ((theta - (a + b) / 2) / ((b - a) / 2)).abs()
    u = torch.where((theta < a) & (x > 1), torch.acosh(x.clamp_min(1)), torch.zeros_like(x))
    need = torch.log((r / tol).clamp_min(1.0)) + 1.0
    m = torch.where(u > 0, torch.ceil(need / u.clamp_min(_TINY)), torch.full_like(u, top))
    m = m.clamp(2, top).long()
    m[wanted:] = m[:wanted].max() if wanted else top
    return m


def edge_cut(ritz: torch.Tensor, radius: torch.Tensor, k: int, limit: float) -> float:
    """The cut ``a`` from the block's Ritz values ``θ_1 ≤ … ≤ θ_s`` (locked ones included) and their
    residual radii ``ρ_j = ‖A v_j − θ_j v_j‖`` (an eigenvalue lies in ``[θ_j − ρ_j, θ_j + ρ_j]``):
    ``θ_s`` (ChFSI's), unless the block's edge is degenerate with the wanted end,
    ``θ_s − θ_k ≤ min(ρ, 1e-3 (θ_s − θ_1))``, ``ρ = max_{j ≥ k} ρ_j`` (a repeated eigenvalue spans
    the edge: a cut at ``θ_s`` sits on ``θ_k`` and the filter separates nothing from it). There the
    cut mirrors the gap below the cluster, ``a = min(2θ_s − θ_c, limit)`` (``θ_c``: the largest Ritz
    value below ``θ_k − ρ``; ``limit``: the probe's cut, ``>= λ_{s+1}``), never below ``θ_s``."""
    top, want = float(ritz[-1]), float(ritz[k - 1])
    rho = float(radius[k - 1:].max())
    below = ritz[ritz < want - rho]
    if top - want > min(rho, DEGENERATE * (top - float(ritz[0]))) or not len(below):
        return top
    return max(top, min(2 * top - float(below[-1]), limit))


def column_filter(matmat, V: torch.Tensor, AV: torch.Tensor, a: float, b: float, degrees: torch.Tensor) -> torch.Tensor:
    """Column j: ``T_{m_j}(ℓ(A)) v_j`` up to a positive scale, ``ℓ(λ) = (2λ − a − b)/(b − a)``;
    ``AV = A V`` is given, so column j costs ``m_j − 1`` products."""
    c, e = (a + b) / 2, (b - a) / 2
    out = V.clone()
    active = torch.arange(V.shape[1], device=V.device)
    degrees = degrees.to(V.device)
    prev, cur, Acur = None, V, AV
    for j in range(1, int(degrees.max()) + 1):
        nxt = (Acur - c * cur) / e if prev is None else 2 * (Acur - c * cur) / e - prev
        s = 1.0 / nxt.abs().amax(0).clamp_min(_TINY)  # rescale each column's pair: the recurrence is linear
        prev, cur = cur * s, nxt * s
        done = degrees[active] == j
        if bool(done.any()):
            out[:, active[done]] = cur[:, done]
            active, prev, cur = active[~done], prev[:, ~done], cur[:, ~done]
        if not len(active):
            break
        Acur = matmat(cur)
    return out


def filter_columns(op, V: torch.Tensor, AV: torch.Tensor, a: float, b: float, degrees: torch.Tensor) -> torch.Tensor:
    """:func:`column_filter` by the C kernels (:func:`autospec.kernels.polynomial.column_chebyshev`) when
    they take ``op`` (a CPU CSR matrix), else by the torch recurrence."""
    fast = polynomial.column_chebyshev(op, V, AV, a, b, degrees)
    return column_filter(op.matmat, V, AV, a, b, degrees) if fast is None else fast


def column_iteration(prob: _Problem, plan: ColumnPlan, whole_space: bool = True):
    """The lowest ``prob.k`` pairs (module docstring); returns ``(θ, V, residuals, info)`` of the best
    pairs seen, as :func:`autospec.eigen.subspace._subspace_iteration`."""
    op, k, tol, block = prob.op, prob.k, prob.tol, prob.block
    gen = torch.Generator().manual_seed(prob.seed)
    info = EigenInfo(block=block)
    V = prob.gaussian(block, gen)
    lock = _Locking(prob, info, V)
    V = _orthonormalise(V, lock.V, prob, gen)
    a, b, lowest = filter_start(prob.probe, block)
    limit = a
    b = b if plan.upper is None else float(plan.upper)
    m, degrees = plan.base, torch.full((block,), plan.base)
    if whole_space and _whole_space_cheaper(prob, m, block):
        return _whole_space(prob, info, f"a degree-{m} filter step would cost n = {op.n} products or more")
    AV = op.matmat(V)
    while True:
        if info.outer_iters:
            V, AV, theta, r, ritz, res = lock.update(V, op.matmat(V))
            if lock.stop:
                break
            a, lowest = edge_cut(ritz, res * prob.scale, k, limit), float(ritz[0])
            slow = ritz[:k][res[:k] > tol]
            m = plan.base
            if len(slow):
                a = float(unwanted_lower(a, b, lowest))
                m = filter_degree(plan.base, plan.max_degree, a, b, lowest, float(slow.max()))
            affordable = (prob.budget - prob.matvecs) // V.shape[1]
            if affordable < plan.base:
                info.message = f"stopped at the matvec budget ({prob.budget})"
                break
            m = min(m, affordable)
            if whole_space and _whole_space_cheaper(prob, m, V.shape[1]):
                return _whole_space(prob, info, f"a degree-{m} filter step would cost n = {op.n} products or more")
            a = float(unwanted_lower(a, b, lowest))
            degrees = column_degrees(a, b, theta, r, tol, k - lock.V.shape[1], m)
        else:
            a = float(unwanted_lower(a, b, lowest))
        info.degree = max(info.degree, m - 1)  # in ChFSI's units (products per column and step, minus one)
        V = _orthonormalise(filter_columns(op, V, AV, a, b, degrees), lock.V, prob, gen)
        info.outer_iters += 1
    info.interval = (lowest, a, b)
    return lock.best
