"""Matrices from real optimizer state: a small MLP trained on CPU, its gradients, momentum buffers
and Shampoo-style Kronecker statistics (the inputs Muon and Shampoo hand to matrix functions).

:func:`record` trains a 3-layer tanh MLP (``d_in → hidden → hidden → classes``) with SGD + momentum
(Nesterov, as Muon uses it) on a seeded synthetic classification task — Gaussian inputs labelled by
a random teacher MLP — for ``steps`` full steps, and records, for every weight matrix ``W_l``
(biases are skipped; they are vectors):

* ``gradient``  — ``G_l = ∂loss/∂W_l`` of the last step (``out × in``, float64): the polar case;
* ``momentum``  — the SGD momentum buffer ``M_l = Σ_t μ^{T−t} G_l(t)`` after the last step, what
  Muon orthogonalises (polar case);
* ``shampoo_L`` — ``L_l = Σ_t G_l(t) G_l(t)ᵀ + ε_L I`` (``out × out``, SPD): the inverse-root case;
* ``shampoo_R`` — ``R_l = Σ_t G_l(t)ᵀ G_l(t) + ε_R I`` (``in × in``, SPD): the inverse-root case.

The sums run over every step and are accumulated in float64 (then symmetrised exactly);
``ε = eps · trace(S)/dim`` (relative,
so κ stays bounded by about ``dim/eps`` even where the gradients have low rank, as in the last
layer). Everything is seeded (its own generators; the global RNG is left untouched) and needs no
network or data set: the default run takes about a second on one core. Training is float32 whatever
torch's default dtype is.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from autospec.errors import InputValueError

KINDS = ("gradient", "momentum", "shampoo_L", "shampoo_R")
SPD_KINDS = ("shampoo_L", "shampoo_R")


@dataclass(frozen=True)
class StateMatrix:
    """One recorded matrix: ``name`` is ``<layer>.<kind>`` (e.g. ``fc2.shampoo_L``)."""

    name: str
    layer: str
    kind: str  # one of KINDS
    step: int  # steps taken when it was recorded
    matrix: np.ndarray  # float64

    @property
    def spd(self) -> bool:
        return self.kind in SPD_KINDS


def _mlp(sizes: tuple[int, ...], gen: torch.Generator) -> torch.nn.Sequential:
    """float32 tanh MLP with LeCun-normal weights and zero biases, drawn from ``gen``."""
    layers: list[torch.nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        linear = torch.nn.Linear(fan_in, fan_out, dtype=torch.float32)
        with torch.no_grad():
            linear.weight.copy_(torch.randn(fan_out, fan_in, generator=gen, dtype=torch.float32) / fan_in**0.5)
            linear.bias.zero_()
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


def record(seed: int = 0, steps: int = 300, d_in: int = 32, hidden: int = 128, classes: int = 10,
           batch: int = 64, lr: float = 0.05, momentum: float = 0.9, eps: float = 1e-6) -> list[StateMatrix]:
    """Train the MLP for ``steps`` steps and return the recorded matrices (see the module docstring),
    layers in order, kinds in :data:`KINDS` order. Same arguments → bitwise identical matrices."""
    if steps < 1 or batch < 1 or min(d_in, hidden, classes) < 1:
        raise InputValueError(f"need steps, batch, d_in, hidden, classes >= 1, got steps={steps}, batch={batch}, "
                              f"d_in={d_in}, hidden={hidden}, classes={classes}")
    if not eps > 0:
        raise InputValueError(f"eps must be > 0 (the Shampoo statistics must be positive definite), got {eps}")
    sizes = (d_in, hidden, hidden, classes)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):  # nn.Linear draws its default init from the global RNG
        torch.manual_seed(int(seed))
        teacher, student = _mlp(sizes, gen), _mlp(sizes, gen)
    opt = torch.optim.SGD(student.parameters(), lr=lr, momentum=momentum, nesterov=True)
    weights = {f"fc{i + 1}": layer.weight for i, layer in enumerate(m for m in student if isinstance(m, torch.nn.Linear))}
    stats = {name: [torch.zeros(w.shape[0], w.shape[0], dtype=torch.float64),
                    torch.zeros(w.shape[1], w.shape[1], dtype=torch.float64)] for name, w in weights.items()}
    for _ in range(steps):
        x = torch.randn(batch, d_in, generator=gen, dtype=torch.float32)
        with torch.no_grad():
            y = teacher(x).argmax(dim=-1)
        opt.zero_grad(set_to_none=False)
        torch.nn.functional.cross_entropy(student(x), y).backward()
        for name, w in weights.items():
            G = w.grad.detach().to(torch.float64)
            stats[name][0] += G @ G.mT
            stats[name][1] += G.mT @ G
        opt.step()
    out = []
    for name, w in weights.items():
        L, R = ((S + S.mT) / 2 + eps * float(torch.trace(S)) / S.shape[0] * torch.eye(S.shape[0], dtype=torch.float64)
                for S in stats[name])
        matrices = {"gradient": w.grad, "momentum": opt.state[w]["momentum_buffer"], "shampoo_L": L, "shampoo_R": R}
        out += [StateMatrix(f"{name}.{kind}", name, kind, steps, matrices[kind].detach().to(torch.float64).numpy().copy())
                for kind in KINDS]
    return out
