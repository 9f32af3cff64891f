"""Shampoo (Gupta, Koren, Singer 2018; Anil et al. 2020; Shi et al. 2023, facebookresearch/optimizers)
with grafting and a choice of inverse-root method, the shipped learned engine by default.

For a matrix parameter W (conv filters as ``out × in·kh·kw``) with gradient G, in ``precision``::

    L ← β₂ L + (1 − β₂) G Gᵀ,   R ← β₂ R + (1 − β₂) Gᵀ G               (every step)
    M ← β₁ M + (1 − β₁) G;      D = (1 − β₁) G + β₁ M (Nesterov)  or  M
    every ``update_freq`` steps from ``start_preconditioning_step``:
        L⁻ = (L + δ‖L‖_F I)^{−1/4},  R⁻ = (R + δ‖R‖_F I)^{−1/4}             (``root``, batched)
    P = L⁻ D R⁻,  W ← (1 − lr·wd) W − lr · ‖A‖_F/‖P‖_F · P

``A`` is the grafting direction, which also sets the step length: ``"adam"`` (Adam's
``M̂/(√V̂ + ε)``, V the EMA of G² with β₂, bias-corrected), ``"sgd"`` (D itself) or ``"none"``
(P unscaled). Before the first roots exist, and for vectors, the step is ``A`` itself (``D`` for
``"none"``). The damping δ is relative (so ``κ(L + δ‖L‖_F I) ≤ 1 + 1/δ`` even for rank-deficient
statistics, and the iterative roots get a bounded problem); a side longer than
``max_preconditioner_dim`` is left unpreconditioned (identity).

``root`` (:data:`ROOTS`): ``autospec`` (the coupled learned engine), ``newton_schulz``, ``prism``,
``inverse_newton``, ``eigh`` (see :mod:`autospec.optim.functions`), iterated to ``root_tol``
(default by dtype: 1e-8 float64, 1e-4 float32, 1e-2 bfloat16), at most ``root_max_iters`` steps.
Statistics of the same size, dtype and device share one batched root call. A root that fails
(non-finite, diverged) is recomputed by ``eigh`` and counted in ``counts["fallbacks"]``.
"""

from __future__ import annotations

import torch

from autospec.optim.common import MatrixOptimizer, batches, check_settings, matrix_view
from autospec.optim.functions import ROOTS, inverse_fourth_root

GRAFTING = ("adam", "sgd", "none")


class Shampoo(MatrixOptimizer):
    """Shampoo with grafting (see the module docstring).

    Args:
        params: parameters or parameter groups (any keyword below per group).
        lr: learning rate (default 1e-3, Adam-grafted). betas: (β₁ momentum, β₂ statistics and
            Adam grafting). eps: Adam grafting's ε. weight_decay: decoupled. nesterov: look-ahead.
        update_freq: steps between root computations. start_preconditioning_step: first step with
            roots (None: ``update_freq``). damping: δ, relative. root: one of :data:`ROOTS`.
        root_tol, root_max_iters: the iterative roots' stopping rule (None: defaults by dtype;
            ``root_tol=0``: a fixed budget of ``root_max_iters`` iterations, fewer on stagnation).
        grafting: ``"adam"``, ``"sgd"`` or ``"none"``. precision: dtype of the statistics, roots
            and update (None: the parameter's, at least float32). max_preconditioner_dim: longer
            sides get no preconditioner. engine: a learned coupled engine for ``root="autospec"``.
    """

    method_key, methods, floor = "root", ROOTS, torch.float32

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, *, nesterov: bool = False, update_freq: int = 10,
                 start_preconditioning_step: int | None = None, damping: float = 1e-6, root: str = "autospec",
                 root_tol: float | None = None, root_max_iters: int | None = None, grafting: str = "adam",
                 precision=None, max_preconditioner_dim: int = 1024, engine: str | None = None):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, nesterov=nesterov,
                        update_freq=update_freq, start_preconditioning_step=start_preconditioning_step,
                        damping=damping, root=root, root_tol=root_tol, root_max_iters=root_max_iters,
                        grafting=grafting, precision=precision, max_preconditioner_dim=max_preconditioner_dim,
                        engine=engine)
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        if group["start_preconditioning_step"] is None:
            group["start_preconditioning_step"] = group["update_freq"]
        check_settings(group, numbers=("eps", "damping", "root_tol"), pairs=("betas",),
                       counts=("update_freq", "start_preconditioning_step", "root_max_iters", "max_preconditioner_dim"),
                       choices={"grafting": GRAFTING}, optional=("root_tol", "root_max_iters"))

    def _update(self) -> None:
        roots: list = []
        work = [(p, group, self._statistics(p, group, roots)) for p, group in self._with_grads()]
        self._roots(roots)
        for p, group, (direction, graft) in work:
            state = self.state[p]
            update = graft
            if "left" in state or "right" in state:
                P = direction
                if "left" in state:
                    P = state["left"] @ P
                if "right" in state:
                    P = P @ state["right"]
                if group["grafting"] == "none":
                    update = P
                else:
                    update = P * (torch.linalg.vector_norm(graft) / torch.linalg.vector_norm(P).clamp_min(
                        torch.finfo(P.dtype).tiny))
            lr = group["lr"]
            p.mul_(1 - lr * group["weight_decay"])
            p.add_(update.reshape(p.shape).to(p.dtype), alpha=-lr)

    def _statistics(self, p: torch.Tensor, group: dict, roots: list) -> tuple[torch.Tensor, torch.Tensor]:
        """Update p's statistics and momentum; queue its roots when due; return ``(D, A)``."""
        state = self.state[p]
        dtype = self._dtype(group, p)
        G = (matrix_view(p.grad) if p.ndim >= 2 else p.grad).to(dtype)
        beta1, beta2 = group["betas"]
        if "step" not in state:
            state["step"] = 0
            state["momentum"] = torch.zeros_like(G)
            if group["grafting"] == "adam":
                state["graft_sq"] = torch.zeros_like(G)
            if p.ndim >= 2:
                for side, size in (("L", G.shape[0]), ("R", G.shape[1])):
                    if size <= group["max_preconditioner_dim"]:
                        state[side] = torch.zeros(size, size, dtype=dtype, device=G.device)
        state["step"] += 1
        t = state["step"]
        M = state["momentum"].lerp_(G, 1 - beta1)
        D = G.lerp(M, beta1) if group["nesterov"] else M
        if group["grafting"] == "adam":
            V = state["graft_sq"].mul_(beta2).addcmul_(G, G, value=1 - beta2)
            A = (D / (1 - beta1**t)) / (V / (1 - beta2**t)).sqrt().add_(group["eps"])
        else:
            A = D
        if "L" in state:
            state["L"].mul_(beta2).addmm_(G, G.mT, alpha=1 - beta2)
        if "R" in state:
            state["R"].mul_(beta2).addmm_(G.mT, G, alpha=1 - beta2)
        start, every = group["start_preconditioning_step"], group["update_freq"]
        if t >= start and (t - start) % every == 0:
            for side, out in (("L", "left"), ("R", "right")):
                if side in state:
                    roots.append((state, side, out, group))
        return D, A

    def _roots(self, jobs: list) -> None:
        """Every queued ``(statistic + damping)^{−1/4}``, one batched call per kind."""
        key = lambda j: (j[0][j[1]].shape[-1], j[0][j[1]].dtype, j[0][j[1]].device, j[3]["root"],  # noqa: E731
                         j[3]["root_tol"], j[3]["root_max_iters"], j[3]["engine"])
        for (n, dtype, device, method, tol, max_iters, engine), items in batches(jobs, key).items():
            stats = torch.stack([state[side] for state, side, _, _ in items])
            stats = (stats + stats.mT) / 2
            norm = torch.linalg.matrix_norm(stats)
            norm = torch.where(norm > 0, norm, torch.ones_like(norm))  # all-zero statistics: δ·I
            damping = torch.tensor([g["damping"] for _, _, _, g in items], dtype=dtype, device=device)
            eye = torch.eye(n, dtype=dtype, device=device)
            stats = stats + (damping * norm)[:, None, None] * eye
            X, info, fallbacks = inverse_fourth_root(stats, method, tol=tol, max_iters=max_iters, engine=engine)
            self._count(info)
            self.counts["fallbacks"] += fallbacks
            for (state, _, out, _), x in zip(items, X):
                state[out] = x.contiguous()
