"""Argument checks shared by every front door: each bad value is an ``InputValueError`` (or
``InputTypeError``) naming the argument, raised before any product with A is spent."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from autospec.errors import InputTypeError, InputValueError


def integer(name: str, value, minimum: int | None = 0, *, none: bool = False) -> int | None:
    """``value`` as an ``int`` (Python or NumPy integers; not bool, float or str), ``>= minimum``."""
    if value is None and none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InputValueError(f"{name} must be an integer{'' if minimum is None else f' >= {minimum}'}"
                              f"{' or None' if none else ''}, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise InputValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def real(name: str, value, minimum: float = 0.0, *, allow_inf: bool = True) -> float:
    """``value`` as a ``float`` (any real number type, NumPy and 0-d tensors included), not NaN,
    ``>= minimum``; ``inf`` only with ``allow_inf``."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InputValueError(f"{name} must be a real number >= {minimum:g}, got {value!r} ({type(value).__name__})")
    value = float(value)
    if math.isnan(value):
        raise InputValueError(f"{name} must be a real number >= {minimum:g}, got NaN")
    if math.isinf(value) and not (allow_inf and value > 0):
        raise InputValueError(f"{name} must be finite, got {value}")
    if value < minimum:
        raise InputValueError(f"{name} must be >= {minimum:g}, got {value:g}")
    return value


def tolerances(rtol, atol) -> tuple[float, float]:
    """``(rtol, atol)`` of a linear solve: real, not NaN, ``>= 0`` (``inf`` allowed, as SciPy)."""
    return real("rtol", rtol), real("atol", atol)


def choice(name: str, value, options) -> str:
    """``value`` if it is one of ``options`` (strings), else an error listing them."""
    if not isinstance(value, str) or value not in options:
        raise InputValueError(f"unknown {name} {value!r}; choose one of {tuple(options)}")
    return value


def working_precision(dtype: torch.dtype) -> float:
    """Machine epsilon of a floating (or complex) torch dtype."""
    return torch.finfo(dtype).eps


def float_dtype(name: str, dtype: torch.dtype, allowed=(torch.float32, torch.float64)) -> None:
    """Raise ``InputTypeError`` unless ``dtype`` is one of ``allowed``."""
    if dtype not in allowed:
        names = " or ".join(str(d).replace("torch.", "") for d in allowed)
        raise InputTypeError(f"{name} needs {names} data, got {str(dtype).replace('torch.', '')}: convert the "
                             "input first (e.g. A.double(), A.astype(np.float64))")
