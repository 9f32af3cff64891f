"""Matrix-polynomial recurrences: the objects the engine parameterises.

Both forms are matrix-free (one block matvec per step, three blocks of storage), batched over
operators (leading dims of the coefficient tensors broadcast against the block's leading dims) and
right-hand sides (columns), and differentiable. The same code evaluates a polynomial on
eigenvalues (``Diagonal`` operator, ``z = 1``) and applies it to a matrix.

Three-term / semi-iteration form (``R(0) = 1``, ``x = p(X) r``, ``1 − λ p(λ) = R(λ)``)::

    x_0 = 0, ρ_0 = r, d_0 = c_0 ρ_0
    x_{k+1} = x_k + d_k,  ρ_{k+1} = ρ_k − X d_k,  d_{k+1} = α_k d_k + β_k ρ_{k+1}

Chebyshev on [a, b] (θ = (a+b)/2, δ = (b−a)/2, σ = θ/δ, ϱ_0 = 1/σ, ϱ_{k+1} = 1/(2σ − ϱ_k)) is
``c_0 = 1/θ, α_k = ϱ_{k+1}ϱ_k, β_k = 2ϱ_{k+1}/δ`` and gives ``R = T_{d+1}((θ−λ)/δ)/T_{d+1}(σ)``.

Chebyshev-basis + expansion form on [a, b] (ℓ(x) = (x − θ)/δ)::

    w_0 = z, w_1 = ℓ(X) z, w_{k+1} = 2 ℓ(X) w_k − w_{k−1},   y = Σ_k c_k w_k
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from autospec.errors import InputValueError

Matmat = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class ThreeTerm:
    """Coefficients of the semi-iteration form; ``degree = alpha.shape[-1]`` (d matvecs)."""

    c0: torch.Tensor  # (...)
    alpha: torch.Tensor  # (..., d)
    beta: torch.Tensor  # (..., d)

    @property
    def degree(self) -> int:
        return self.alpha.shape[-1]

    def flat(self) -> torch.Tensor:
        """All coefficients as one ``(..., 2d+1)`` tensor."""
        return torch.cat([self.c0.unsqueeze(-1), self.alpha, self.beta], dim=-1)

    def apply(self, matmat: Matmat, r: torch.Tensor) -> torch.Tensor:
        """``x = p(X) r`` for a block ``r`` of shape ``(..., n, k)``."""
        d = _bc(self.c0) * r
        x = d
        rho = r
        for k in range(self.degree):
            rho = rho - matmat(d)
            d = _bc(self.alpha[..., k]) * d + _bc(self.beta[..., k]) * rho
            x = x + d
        return x


@dataclass
class ChebyshevBasis:
    """Coefficients of the Chebyshev-basis expansion on ``[a, b]``; ``degree = c.shape[-1] − 1``."""

    c: torch.Tensor  # (..., d+1)
    a: torch.Tensor  # (...)
    b: torch.Tensor  # (...)

    @property
    def degree(self) -> int:
        return self.c.shape[-1] - 1

    def flat(self) -> torch.Tensor:
        return self.c

    def apply(self, matmat: Matmat, z: torch.Tensor) -> torch.Tensor:
        """``y = Σ_k c_k T_k(ℓ(X)) z`` with the three-term Chebyshev recurrence (running sum)."""
        theta, delta = _bc((self.a + self.b) / 2), _bc((self.b - self.a) / 2)

        def ell(v):
            return (matmat(v) - theta * v) / delta

        y = _bc(self.c[..., 0]) * z
        if self.degree == 0:
            return y
        w_prev, w = z, ell(z)
        y = y + _bc(self.c[..., 1]) * w
        for k in range(2, self.degree + 1):
            w_prev, w = w, 2 * ell(w) - w_prev
            y = y + _bc(self.c[..., k]) * w
        return y


def _bc(t: torch.Tensor) -> torch.Tensor:
    """A per-operator scalar of shape ``(...)`` reshaped to broadcast over blocks ``(..., n, k)``."""
    return t[..., None, None]


def _interval(a, b, positive: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.as_tensor(a, dtype=torch.float64) if not isinstance(a, torch.Tensor) else a
    b = torch.as_tensor(b, dtype=a.dtype, device=a.device) if not isinstance(b, torch.Tensor) else b
    if bool((b <= a).any()) or (positive and bool((a <= 0).any())):
        bound = "0 < a < b" if positive else "a < b"
        raise InputValueError(f"Chebyshev interval must satisfy {bound}, got a={a.tolist()}, b={b.tolist()}")
    return a, b


def chebyshev_three_term(a, b, degree: int) -> ThreeTerm:
    """Chebyshev polynomial preconditioner on ``[a, b]`` (0 < a < b) in the three-term form:
    ``1 − λ p(λ) = T_{d+1}((θ−λ)/δ)/T_{d+1}(σ)``."""
    a, b = _interval(a, b)
    theta, delta = (a + b) / 2, (b - a) / 2
    sigma = theta / delta
    rho = [1 / sigma]
    for _ in range(degree):
        rho.append(1 / (2 * sigma - rho[-1]))
    alpha = [rho[k + 1] * rho[k] for k in range(degree)]
    beta = [2 * rho[k + 1] / delta for k in range(degree)]
    empty = theta.unsqueeze(-1)[..., :0]
    return ThreeTerm(
        c0=1 / theta,
        alpha=torch.stack(alpha, -1) if degree else empty,
        beta=torch.stack(beta, -1) if degree else empty,
    )


def chebyshev_nodes(degree: int, dtype=torch.float64) -> torch.Tensor:
    """The d+1 Chebyshev points of the first kind on [−1, 1]: ``cos(π(j+½)/(d+1))``."""
    j = torch.arange(degree + 1, dtype=dtype)
    return torch.cos(math.pi * (j + 0.5) / (degree + 1))


def chebyshev_interpolant(f: Callable[[torch.Tensor], torch.Tensor], a, b, degree: int) -> ChebyshevBasis:
    """Chebyshev interpolant of ``f`` on ``[a, b]`` at the first-kind nodes (batched over a, b):
    ``c_k = (2 − [k=0])/(d+1) Σ_j f(x_j) T_k(t_j)``."""
    a, b = _interval(a, b, positive=False)
    t = chebyshev_nodes(degree, a.dtype).to(a.device)
    x = (a + b).unsqueeze(-1) / 2 + (b - a).unsqueeze(-1) / 2 * t  # (..., d+1)
    fx = f(x)
    k = torch.arange(degree + 1, dtype=a.dtype, device=a.device)
    Tkj = torch.cos(k.unsqueeze(-1) * torch.arccos(t).unsqueeze(0))  # (d+1 [k], d+1 [j])
    c = fx @ Tkj.mT * (2.0 / (degree + 1))
    c = torch.cat([c[..., :1] / 2, c[..., 1:]], dim=-1)
    return ChebyshevBasis(c=c, a=a, b=b)


def chebyshev_basis_preconditioner(a, b, degree: int) -> ChebyshevBasis:
    """The Chebyshev preconditioner polynomial ``p = (1 − R)/λ`` of :func:`chebyshev_three_term`,
    expressed exactly in the Chebyshev basis on ``[a, b]`` (interpolation at d+1 nodes)."""
    three = chebyshev_three_term(a, b, degree)
    return chebyshev_interpolant(lambda lam: evaluate(three, lam), a, b, degree)


def evaluate(poly, lam: torch.Tensor) -> torch.Tensor:
    """``p(λ)`` on eigenvalues ``λ`` of shape ``(..., m)``: the recurrence applied to ``diag(λ)``
    with ``z = 1`` (the same code path as matrix application)."""
    lam = torch.as_tensor(lam)
    ones = torch.ones_like(lam).unsqueeze(-1)
    return poly.apply(lambda V: lam.unsqueeze(-1) * V, ones).squeeze(-1)


def residual_polynomial(poly: ThreeTerm | ChebyshevBasis, lam: torch.Tensor) -> torch.Tensor:
    """``R(λ) = 1 − λ p(λ)``."""
    return 1 - lam * evaluate(poly, lam)


def chebyshev_values(x: torch.Tensor, degree: int) -> torch.Tensor:
    """``[T_0(x), …, T_m(x)]`` (shape ``(..., m+1)``) for any real x by ``T_{j+1} = 2x T_j − T_{j−1}``
    (differentiable)."""
    T = [torch.ones_like(x), x]
    for _ in range(2, degree + 1):
        T.append(2 * x * T[-1] - T[-2])
    return torch.stack(T[: degree + 1], dim=-1)


def chebyshev_vandermonde(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, degree: int) -> torch.Tensor:
    """``T_k(ℓ(x))`` for k = 0..d, ``ℓ(x) = (2x − a − b)/(b − a)`` (three-term recurrence, any x):
    shape ``(..., P, d+1)`` for points ``x (..., P)`` and intervals ``a, b (...)``."""
    return chebyshev_values((2 * x - (a + b).unsqueeze(-1)) / (b - a).unsqueeze(-1), degree)


def chebyshev_T(k: int, x: np.ndarray) -> np.ndarray:
    """Reference ``T_k(x)`` valid on all of ℝ (cos/cosh forms), float64 NumPy."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    inside = np.abs(x) <= 1
    out[inside] = np.cos(k * np.arccos(x[inside]))
    xo = x[~inside]
    out[~inside] = np.sign(xo) ** k * np.cosh(k * np.arccosh(np.abs(xo)))
    return out
