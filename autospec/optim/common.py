"""What :class:`~autospec.optim.Muon` and :class:`~autospec.optim.Shampoo` share: the dtype policy,
configuration checks, the matrix view of a parameter, batching by shape, the AdamW step of the
parameters the matrix update does not take, and a ``load_state_dict`` that keeps every state
tensor's saved dtype.

Dtype policy. ``precision`` names the dtype the matrix function runs in: ``"bfloat16"``,
``"float32"`` or ``"float64"`` (aliases ``"bf16"``, ``"fp32"``, ``"fp64"``, or the torch dtype),
or ``None`` for a default that never lowers the parameter's precision (Muon: the parameter's
dtype; Shampoo: the parameter's dtype, at least float32). A precision below the parameter's is
only used when asked for by name — no silent downcast. Parameters of another dtype (float16,
integers, complex) raise :class:`~autospec.errors.InputTypeError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import torch

from autospec.errors import InputTypeError, InputValueError

PRECISIONS: dict[str, torch.dtype] = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}
_ALIASES = {"bf16": "bfloat16", "fp32": "float32", "fp64": "float64"}


def precision_name(value) -> str | None:
    """The canonical name (``bfloat16``, ``float32``, ``float64``) of a precision setting, or None."""
    if value is None:
        return None
    if isinstance(value, torch.dtype):
        for name, dtype in PRECISIONS.items():
            if dtype == value:
                return name
    elif isinstance(value, str):
        name = _ALIASES.get(value.lower(), value.lower())
        if name in PRECISIONS:
            return name
    raise InputValueError(f"unsupported precision {value!r}; use None, 'bfloat16', 'float32' or 'float64' "
                          "(or the torch dtype)")


def compute_dtype(precision: str | None, param: torch.Tensor, *, floor: torch.dtype | None = None) -> torch.dtype:
    """The dtype of the matrix function for ``param``: the named precision, else the parameter's
    dtype raised to ``floor`` (never lowered)."""
    if param.dtype not in PRECISIONS.values():
        raise InputTypeError(f"parameters must be bfloat16, float32 or float64 tensors, got {param.dtype}")
    if precision is not None:
        return PRECISIONS[precision]
    if floor is not None and torch.finfo(param.dtype).bits < torch.finfo(floor).bits:
        return floor
    return param.dtype


def check_number(name: str, value, *, low: float = 0.0, high: float = math.inf, high_open: bool = False) -> None:
    """Raise ``InputValueError`` unless ``low <= value <= high`` (``< high`` when ``high_open``)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise InputValueError(f"{name} must be a number or a 1-element tensor, got shape {tuple(value.shape)}")
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputValueError(f"{name} must be a number, got {value!r}")
    if not (low <= value and (value < high if high_open else value <= high)):
        bound = f"< {high}" if high_open else f"<= {high}"
        raise InputValueError(f"{name} must be >= {low}" + (f" and {bound}" if math.isfinite(high) else "") +
                              f", got {value}")


def check_settings(group: dict, *, numbers=(), fractions=(), counts=(), pairs=(), choices=None,
                   optional=()) -> None:
    """Check a parameter group's settings (``InputValueError`` on the first bad one): ``numbers``
    are ``>= 0``, ``fractions`` in ``[0, 1)``, ``counts`` integers ``>= 1``, ``pairs`` (betas) two
    fractions, ``choices`` maps a key to its allowed values; a key in ``optional`` may be None."""
    def given(keys):
        return [key for key in keys if not (key in optional and group[key] is None)]

    for key in given(numbers):
        check_number(key, group[key])
    for key in given(fractions):
        check_number(key, group[key], high=1.0, high_open=True)
    for key in given(counts):
        if isinstance(group[key], bool) or not isinstance(group[key], int) or group[key] < 1:
            raise InputValueError(f"{key} must be an integer >= 1, got {group[key]!r}")
    for key in given(pairs):
        if not isinstance(group[key], (tuple, list)) or len(group[key]) != 2:
            raise InputValueError(f"{key} must be a pair, got {group[key]!r}")
        for beta in group[key]:
            check_number(f"{key}[i]", beta, high=1.0, high_open=True)
    for key, allowed in (choices or {}).items():
        if group[key] not in allowed:
            raise InputValueError(f"unknown {key} {group[key]!r}; choose one of {list(allowed)}")


def matrix_view(t: torch.Tensor) -> torch.Tensor:
    """A ≥2-D tensor as a matrix: ``(shape[0], prod(shape[1:]))`` (conv filters: out × in·kh·kw)."""
    return t.reshape(t.shape[0], -1)


def batches(items: Iterable[Any], key: Callable[[Any], Hashable]) -> dict[Hashable, list]:
    """Items grouped by ``key`` (insertion order kept: the batches, and so the results, are
    deterministic)."""
    out: dict[Hashable, list] = {}
    for item in items:
        out.setdefault(key(item), []).append(item)
    return out


def adamw_step(p: torch.Tensor, grad: torch.Tensor, state: dict, *, lr: float, betas: tuple[float, float],
               eps: float, weight_decay: float) -> None:
    """One AdamW step (decoupled weight decay), arithmetic as ``torch.optim.AdamW`` (single tensor,
    no amsgrad); its state is ``adam_step``, ``exp_avg``, ``exp_avg_sq``."""
    if "exp_avg" not in state:
        state["adam_step"] = 0
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    state["adam_step"] += 1
    beta1, beta2 = betas
    exp_avg, exp_avg_sq, t = state["exp_avg"], state["exp_avg_sq"], state["adam_step"]
    p.mul_(1 - lr * weight_decay)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    bias1, bias2 = 1 - beta1**t, 1 - beta2**t
    denom = (exp_avg_sq.sqrt() / math.sqrt(bias2)).add_(eps)
    p.addcdiv_(exp_avg, denom, value=-lr / bias1)


class MatrixOptimizer(torch.optim.Optimizer):
    """Base of the optimizers: checks every parameter group (the settings both share — ``lr``,
    ``weight_decay``, ``precision``, the method under :attr:`method_key` and ``engine`` — then the
    subclass's ``_check_group``; also for groups added later), gives the dtype of the matrix
    function (:meth:`_dtype`, never below the parameter's nor below :attr:`floor`), counts the
    matrix-function work in :attr:`counts` (diagnostics, not state), and loads state dicts without
    casting: ``torch.optim.Optimizer.load_state_dict`` casts every floating state tensor to its
    parameter's dtype, which would round float32 statistics of a bfloat16 parameter — here each
    tensor keeps the dtype it was saved with (moved to the parameter's device), so a resumed run
    continues bit for bit."""

    method_key: str  # the group setting that names the matrix function: "orthogonalizer" or "root"
    methods: tuple[str, ...]  # its choices
    floor: torch.dtype | None = None  # the lowest default precision of the matrix function

    def __init__(self, params, defaults: dict):
        self.counts = {"calls": 0, "matmuls": 0, "sketch_matmuls": 0, "fallbacks": 0}
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        check_settings(group, numbers=("lr", "weight_decay"), choices={self.method_key: self.methods})
        group["precision"] = precision_name(group["precision"])
        engine, method = group["engine"], group[self.method_key]
        if engine is not None and (method != "autospec" or not isinstance(engine, str)):
            raise InputValueError(f"engine= is a learned engine's name or path, used by {self.method_key}='autospec' "
                                  "only")
        self._check_group(group)
        for p in group["params"]:
            if p.dtype not in PRECISIONS.values():
                raise InputTypeError(f"{type(self).__name__} needs bfloat16, float32 or float64 parameters, "
                                     f"got {p.dtype}")

    def _check_group(self, group: dict) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _dtype(self, group: dict, p: torch.Tensor) -> torch.dtype:
        """The dtype of ``p``'s matrix function: :func:`compute_dtype` with this optimizer's floor."""
        return compute_dtype(group["precision"], p, floor=self.floor)

    @torch.no_grad()
    def step(self, closure=None):
        """One step; ``closure`` (optional) re-evaluates the loss, which is returned."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._update()
        return loss

    def _update(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _with_grads(self):
        """``(p, group)`` for every parameter that has a (dense) gradient, in group order."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise InputValueError(f"{type(self).__name__} does not support sparse gradients")
                yield p, group

    def _count(self, info) -> None:
        self.counts["calls"] += 1
        self.counts["matmuls"] += info.matmuls
        self.counts["sketch_matmuls"] += info.sketch_matmuls

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        params = [p for group in self.param_groups for p in group["params"]]
        saved = [i for group in state_dict["param_groups"] for i in group["params"]]
        for index, p in zip(saved, params):
            for key, value in state_dict["state"].get(index, {}).items():
                if isinstance(value, torch.Tensor):
                    self.state[p][key] = value.detach().clone().to(device=p.device)
