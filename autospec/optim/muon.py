"""Muon (Jordan et al. 2024, KellerJordan/Muon; ``torch.optim.Muon``) with a choice of polar
iteration, the shipped learned engine by default.

For a matrix parameter W with gradient G (conv filters as ``out × in·kh·kw``)::

    B ← μ B + (1 − μ) G                        (momentum, as an EMA: ``B.lerp_(G, 1 − μ)``)
    U = (1 − μ) G + μ B   (Nesterov)  or  B
    W ← (1 − lr·wd) W − lr·a(m, n) · polar(U)

``polar(U) ≈ U Vᵀ`` is computed by ``orthogonalizer`` (:data:`ORTHOGONALIZERS`: ``autospec``,
``polar_express``, ``muon``, ``newton_schulz``, ``prism``, ``eigh``) in ``steps`` iterations (5:
16 GEMMs for the quintics), or to ``tol``; ``a(m, n)`` is ``adjust_lr_fn``: ``"original"``
``√max(1, m/n)`` (Keller Jordan's) or ``"match_rms_adamw"`` ``0.2·√max(m, n)`` (Moonlight's, for
AdamW-tuned learning rates). Updates of the same shape, dtype, device and settings are
orthogonalised as one batch.

Vectors (biases, norm gains) and — through :func:`muon_param_groups` or a group with
``use_muon=False`` — embeddings and the output head take an AdamW step inside the same optimizer,
as Muon users expect: in a ``use_muon=False`` group with the group's ``lr``; vectors met in a
Muon group with ``adamw_lr``. Both use ``adamw_betas``, ``adamw_eps`` and ``weight_decay``.
"""

from __future__ import annotations

import math

import torch

from autospec.errors import InputValueError
from autospec.optim.common import MatrixOptimizer, adamw_step, batches, check_settings, matrix_view
from autospec.optim.functions import ORTHOGONALIZERS, orthogonalize

ADJUST_LR = ("original", "match_rms_adamw")


def adjusted_lr(lr: float, adjust_lr_fn: str, shape: torch.Size) -> float:
    """The learning rate of a Muon update of a ``shape = (m, n)`` matrix."""
    m, n = shape
    ratio = math.sqrt(max(1.0, m / n)) if adjust_lr_fn == "original" else 0.2 * math.sqrt(max(m, n))
    return lr * ratio


class Muon(MatrixOptimizer):
    """Muon for ≥2-D parameters, AdamW for the rest (see the module docstring).

    Args:
        params: parameters or parameter groups; a group may set ``use_muon`` (None: by shape,
            True, or False: all AdamW with the group's ``lr``) and any keyword below.
        lr: Muon learning rate (default 0.02). momentum: μ in [0, 1). nesterov: look-ahead update.
        weight_decay: decoupled, ``W ← (1 − lr·wd) W`` (AdamW parameters too).
        orthogonalizer: one of :data:`ORTHOGONALIZERS`. steps: iterations (>= 1). tol: None for
            exactly ``steps`` iterations, else stop at this residual (at most ``steps``).
        precision: the dtype of the orthogonalisation (None: the parameter's; see
            :mod:`autospec.optim.common`). engine: a learned polar engine (name or artifact
            path) for ``orthogonalizer="autospec"`` (None: ``matfun-polar-bf16``).
        adjust_lr_fn: ``"original"`` or ``"match_rms_adamw"``.
        adamw_lr, adamw_betas, adamw_eps: the AdamW fallback.
    """

    method_key, methods = "orthogonalizer", ORTHOGONALIZERS

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True,
                 weight_decay: float = 0.0, *, orthogonalizer: str = "autospec", steps: int = 5,
                 tol: float | None = None, precision=None, engine: str | None = None,
                 adjust_lr_fn: str = "original", adamw_lr: float = 3e-4,
                 adamw_betas: tuple[float, float] = (0.9, 0.95), adamw_eps: float = 1e-8):
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                        orthogonalizer=orthogonalizer, steps=steps, tol=tol, precision=precision, engine=engine,
                        adjust_lr_fn=adjust_lr_fn, adamw_lr=adamw_lr, adamw_betas=tuple(adamw_betas),
                        adamw_eps=adamw_eps, use_muon=None)
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        check_settings(group, numbers=("tol", "adamw_lr", "adamw_eps"), fractions=("momentum",), counts=("steps",),
                       pairs=("adamw_betas",), choices={"adjust_lr_fn": ADJUST_LR}, optional=("tol",))
        if group["use_muon"] not in (None, True, False):
            raise InputValueError(f"use_muon must be None, True or False, got {group['use_muon']!r}")
        if group["use_muon"] and any(p.ndim < 2 for p in group["params"]):
            raise InputValueError("a group with use_muon=True holds a parameter with fewer than 2 dimensions; "
                                  "leave use_muon unset (vectors then take the AdamW step) or move it to a "
                                  "use_muon=False group")

    @staticmethod
    def _is_matrix(group: dict, p: torch.Tensor) -> bool:
        return group["use_muon"] is not False and p.ndim >= 2

    def _update(self) -> None:
        work = []
        for p, group in self._with_grads():
            if not self._is_matrix(group, p):
                lr = group["lr"] if group["use_muon"] is False else group["adamw_lr"]
                adamw_step(p, p.grad, self.state[p], lr=lr, betas=group["adamw_betas"], eps=group["adamw_eps"],
                           weight_decay=group["weight_decay"])
                continue
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            buf = state["momentum_buffer"]
            buf.lerp_(p.grad, 1 - group["momentum"])
            update = p.grad.lerp(buf, group["momentum"]) if group["nesterov"] else buf
            work.append((p, group, matrix_view(update).to(self._dtype(group, p))))
        by_kind = batches(work, lambda w: (tuple(w[2].shape), w[2].dtype, w[2].device, w[1]["orthogonalizer"],
                                           w[1]["steps"], w[1]["tol"], w[1]["engine"]))
        for (_, _, _, method, steps, tol, engine), items in by_kind.items():
            Q, info = orthogonalize(torch.stack([u for _, _, u in items]), method, steps=steps, tol=tol, engine=engine)
            self._count(info)
            for (p, group, u), q in zip(items, Q):
                lr = group["lr"]
                p.mul_(1 - lr * group["weight_decay"])
                p.add_(q.reshape(p.shape).to(p.dtype), alpha=-adjusted_lr(lr, group["adjust_lr_fn"], u.shape))


def muon_param_groups(model: torch.nn.Module, *, adamw_lr: float = 3e-4, head="auto") -> list[dict]:
    """Parameter groups for :class:`Muon` following the usual rules: hidden ≥2-D weights take the
    Muon update; vectors, ``nn.Embedding`` weights and the output head take AdamW (lr ``adamw_lr``).

    ``head``: ``"auto"`` — the last ``nn.Linear`` registered in the model; None — no head; or
    an iterable of parameter names (as ``model.named_parameters()`` spells them) to send to AdamW.
    """
    modules = list(model.named_modules())
    excluded: set[str] = set()
    if head == "auto":
        linears = [name for name, m in modules if isinstance(m, torch.nn.Linear)]
        if linears:
            excluded |= {f"{linears[-1]}.{k}" if linears[-1] else k for k, _ in
                         dict(modules)[linears[-1]].named_parameters(recurse=False)}
    elif head is not None:
        excluded |= set(head)
    for name, m in modules:
        if isinstance(m, torch.nn.Embedding):
            excluded |= {f"{name}.{k}" if name else k for k, _ in m.named_parameters(recurse=False)}
    names = dict(model.named_parameters())
    unknown = excluded - set(names)
    if unknown:
        raise InputValueError(f"head names {sorted(unknown)} are not parameters of the model")
    hidden = [p for n, p in names.items() if p.ndim >= 2 and n not in excluded]
    rest = [p for n, p in names.items() if p.ndim < 2 or n in excluded]
    groups = [{"params": hidden, "use_muon": True}, {"params": rest, "use_muon": False, "lr": adamw_lr}]
    return [g for g in groups if g["params"]]
