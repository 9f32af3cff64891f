"""Task registry: a task turns engine corrections into a polynomial and scores it.

A task provides ``layout`` (engine shape), ``features(probe, scale)`` (engine input),
``scale(probe)``, ``polynomial(probe, corrections=None)`` (``None`` → its classical baseline),
``loss(poly, scale, batch)``, ``iterations(poly, scale, batch)`` (the validation cost, lower is
better) and ``safe(poly, scale, probe)``; optionally ``prepare(batch, generator)``, which turns a
synthetic batch (``lam``, ``weights``, ``probe``) into the task's own training batch. New task
families register here.
"""

from __future__ import annotations

from autospec.errors import InputValueError
from autospec.tasks.eigfilter import EigfilterTask
from autospec.tasks.linsys import LinsysTask
from autospec.tasks.matfun import MatfunTask

TASKS = {"linsys": LinsysTask, "eigfilter": EigfilterTask, "matfun": MatfunTask}


def build_task(spec: dict):
    """Build a task from a plain dict ``{"name": ..., **kwargs}`` (as stored in artifacts)."""
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in TASKS:
        raise InputValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name](**spec)
