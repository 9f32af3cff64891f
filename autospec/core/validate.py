"""Argument checks shared by every front door: each bad value is an ``InputValueError`` (or
``InputTypeError``) naming the argument, raised before any product with A is spent."""

from __future__ import annotations

import functools
import math
import numbers
import warnings

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


def seed_from(rng) -> int:
    """The integer seed of ``rng`` (SciPy's ``rng``): ``None`` → 0 (reproducible by default), an
    integer as it is, a NumPy ``Generator`` → one draw from it (the caller's stream advances)."""
    if rng is None:
        return 0
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(2**62))
    if isinstance(rng, (bool, np.bool_)) or not isinstance(rng, numbers.Integral):
        raise InputValueError(f"rng must be None, an integer seed or a numpy.random.Generator, got {rng!r} "
                              f"({type(rng).__name__})")
    return int(rng)


def seed_renamed(fn):
    """``fn`` also accepts its old keyword ``seed=`` as ``rng=``, with a ``DeprecationWarning``
    (SciPy's transition from ``seed``/``random_state`` to ``rng``, SPEC 7)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if "seed" in kwargs:
            if "rng" in kwargs:
                raise InputValueError("give rng= only (seed= is its old name)")
            warnings.warn(f"{fn.__name__}(seed=...) is now rng= (None, an integer seed or a numpy Generator)",
                          DeprecationWarning, stacklevel=2)
            kwargs["rng"] = kwargs.pop("seed")
        return fn(*args, **kwargs)

    return wrapper


def tolerances(rtol, atol) -> tuple[float, float]:
    """``(rtol, atol)`` of a linear solve: real, not NaN, ``>= 0`` (``inf`` allowed, as SciPy)."""
    return real("rtol", rtol), real("atol", atol)


def choice(name: str, value, options) -> str:
    """``value`` if it is one of ``options`` (strings), else an error listing them."""
    if not isinstance(value, str) or value not in options:
        raise InputValueError(f"unknown {name} {value!r}; choose one of {tuple(options)}")
    return value


def only_for(method: str, name: str, value, used_by) -> None:
    """Nothing silently ignored: an option given (not None) to a method that does not use it raises."""
    if value is not None and method not in used_by:
        raise InputValueError(f"{name}= is only used by method={' or '.join(map(repr, used_by))}, "
                              f"not by method={method!r}")


def working_precision(dtype: torch.dtype) -> float:
    """Machine epsilon of a floating (or complex) torch dtype."""
    return torch.finfo(dtype).eps


def float_dtype(name: str, dtype: torch.dtype, allowed=(torch.float32, torch.float64)) -> None:
    """Raise ``InputTypeError`` unless ``dtype`` is one of ``allowed``."""
    if dtype not in allowed:
        names = " or ".join(str(d).replace("torch.", "") for d in allowed)
        raise InputTypeError(f"{name} needs {names} data, got {str(dtype).replace('torch.', '')}: convert the "
                             "input first (e.g. A.double(), A.astype(np.float64))")
