"""Randomized Nyström approximation and the Nyström preconditioner (Frangella, Tropp & Udell,
"Randomized Nyström preconditioning", SIMAX 44(2), 2023).

For symmetric positive semidefinite ``A`` and a test matrix ``Ω (n × ℓ)``, the Nyström
approximation is ``Â = (AΩ)(ΩᵀAΩ)⁺(AΩ)ᵀ = U Λ̂ Uᵀ``. The stable construction (their Algorithm 2.1,
after Tropp et al. 2017) orthonormalises ``Ω = QR``, forms ``Y = AQ`` (ℓ products with A), shifts
``Y_ν = Y + νQ`` by ``ν = √n·u·‖Y‖_F`` (u the unit roundoff), factors ``QᵀY_ν = LLᵀ`` (Cholesky),
takes the thin SVD ``Y_ν L^{−T} = U Σ Vᵀ`` and unshifts ``Λ̂ = max(0, Σ² − ν)``.

Preconditioner for ``A_μ = A + μI`` (their eq. (5.3); ``λ̂_ℓ`` the smallest kept eigenvalue)::

    P⁻¹   = (λ̂_ℓ + μ) U (Λ̂ + μI)⁻¹ Uᵀ + (I − UUᵀ)
    P^{−½} = (λ̂_ℓ + μ)^{½} U (Λ̂ + μI)^{−½} Uᵀ + (I − UUᵀ)

It maps the top ℓ eigenvalues of ``A_μ`` near ``λ̂_ℓ + μ`` and leaves the rest: ``κ(P^{−½}A_μP^{−½})
≤ (λ̂_ℓ + μ + ‖A − Â‖)/(λ_min(A) + μ)``, which is O(1) once ℓ is about twice the effective dimension
``d_eff(μ) = tr(A(A + μI)⁻¹)``.

Adaptive rank (their Section 5.4: grow ℓ until the bound ``1 + (λ̂_ℓ + ‖A − Â‖)/μ`` on κ is small):
start at ``rank0`` and double ℓ — reusing the products already made: ``Ω`` grows by new columns,
and ``A[Ω_old, Ω_new]R⁻¹`` is the new ``Y`` — until ``λ̂_ℓ + Ê <= ratio·μ_ref`` or ``ℓ = max_rank``.
``Ê`` estimates ``‖A − Â‖₂`` by ``power_steps`` power iterations on the PSD error ``A − Â`` (one
product with A each), run only once the free test ``λ̂_ℓ <= ratio·μ_ref`` passes (λ̂_ℓ alone
underestimates the error: the last eigenvalues of a sketch are its worst). ``μ_ref = μ``; for
``μ = 0`` (no regularisation: only the top of the spectrum can be removed) ``μ_ref = 10⁻³·λ̂₁``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from autospec.core.operators import Operator, as_linear_operator, as_operator
from autospec.errors import InputValueError, NotPositiveDefiniteError
from autospec.kernels.sketch import KINDS, make_sketch, torch_generator

RANK0 = 16  # first rank of the adaptive rule
MAX_RANK = 512  # default cap of the adaptive rule: min(MAX_RANK, n/4) (a sketch of n columns is A itself)
RATIO = 10.0  # stop when λ̂_ℓ + Ê <= RATIO·μ_ref
POWER_STEPS = 8  # power iterations of the error estimate Ê
UNREGULARISED = 1e-3  # μ_ref = UNREGULARISED·λ̂₁ when μ = 0


@dataclass
class NystromApproximation:
    """``Â = U diag(lam) Uᵀ`` (``lam`` descending, only positive entries kept); ``matvecs`` products
    with A went into it (error estimates included); ``rank`` is the sketch size ℓ (``len(lam)`` may
    be smaller); ``error`` the last estimate of ``‖A − Â‖₂`` (NaN when none was made)."""

    U: torch.Tensor
    lam: torch.Tensor
    rank: int
    matvecs: int
    error: float = math.nan

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """``Â V``."""
        return self.U @ (self.lam.unsqueeze(-1) * (self.U.mT @ V))


def _test_matrix(n: int, columns: int, kind: str, gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """``Ω = Sᵀ (n × columns)`` of a sketch of the given kind (Gaussian: i.i.d. normal entries)."""
    if kind not in KINDS:
        raise InputValueError(f"unknown sketch {kind!r}; choose one of {KINDS}")
    if kind == "srht" and columns > 1 << max(0, (n - 1).bit_length()):
        kind = "gaussian"  # an SRHT cannot have more rows than its padded length
    return make_sketch(kind, columns, n, rng=gen, dtype=dtype).to_dense().mT


def _from_products(Omega: torch.Tensor, Y: torch.Tensor, matvecs: int) -> NystromApproximation:
    """The stable shifted-Cholesky construction from ``Ω`` and ``Y = AΩ`` (both ``n × ℓ``)."""
    n, ell = Omega.shape
    Q, R = torch.linalg.qr(Omega)
    if bool((R.diagonal().abs() <= torch.finfo(R.dtype).eps * R.diagonal().abs().max()).any()):
        raise InputValueError("the Nyström test matrix is rank deficient; use a larger n or a smaller rank")
    Y = torch.linalg.solve_triangular(R, Y, upper=True, left=False)  # A Q = A Ω R⁻¹
    nu = math.sqrt(n) * torch.finfo(Y.dtype).eps * float(torch.linalg.matrix_norm(Y))
    nu = max(nu, torch.finfo(Y.dtype).tiny)
    Y_nu = Y + nu * Q
    core = Q.mT @ Y_nu
    L, bad = torch.linalg.cholesky_ex((core + core.mT) / 2)
    if int(bad):
        raise NotPositiveDefiniteError("the Nyström core QᵀAQ + νI has no Cholesky factor: A is not positive "
                                       "semidefinite (or not symmetric)")
    B = torch.linalg.solve_triangular(L, Y_nu.mT, upper=False).mT  # Y_ν L^{−T}
    U, sigma, _ = torch.linalg.svd(B, full_matrices=False)
    lam = (sigma**2 - nu).clamp_min(0)
    keep = lam > 0
    return NystromApproximation(U[:, keep], lam[keep], ell, matvecs)


def nystrom(op: Operator, rank: int, *, rng=None, sketch: str = "gaussian") -> NystromApproximation:
    """Rank-ℓ randomized Nyström approximation of PSD ``op`` (ℓ counted products with it)."""
    n = op.n
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= n:
        raise InputValueError(f"Nyström rank must be an integer in [1, n={n}], got {rank!r}")
    gen = torch_generator(rng)
    Omega = _test_matrix(n, rank, sketch, gen, op.dtype).to(op.device)
    return _from_products(Omega, op.matmat(Omega), rank)


def adaptive_nystrom(op: Operator, mu: float = 0.0, *, rank0: int = RANK0, max_rank: int | None = None,
                     ratio: float = RATIO, power_steps: int = POWER_STEPS, rng=None,
                     sketch: str = "gaussian") -> NystromApproximation:
    """Double the rank from ``rank0`` until ``λ̂_ℓ + Ê <= ratio·μ_ref`` or ``max_rank`` (module
    docstring); every product with A is reused, so the cost is the final ℓ plus the error estimates."""
    n = op.n
    mu = check_mu(mu)
    max_rank = min(MAX_RANK, max(1, n // 4)) if max_rank is None else int(max_rank)
    if not 1 <= max_rank <= n or rank0 < 1 or ratio <= 0 or power_steps < 1:
        raise InputValueError(f"adaptive Nyström needs 1 <= max_rank <= n={n}, rank0 >= 1, ratio > 0 and "
                              f"power_steps >= 1 (got {max_rank}, {rank0}, {ratio}, {power_steps})")
    gen = torch_generator(rng)
    ell, spent = min(rank0, max_rank), 0
    Omega = _test_matrix(n, ell, sketch, gen, op.dtype).to(op.device)
    Y = op.matmat(Omega)
    while True:
        approx = _from_products(Omega, Y, ell)
        lam = approx.lam
        reference = mu if mu > 0 else UNREGULARISED * float(lam[0]) if len(lam) else 0.0
        done = ell >= max_rank or len(lam) < ell
        if not done and float(lam[-1]) <= ratio * reference:
            approx.error = error_norm(op, approx, power_steps, gen)
            spent += power_steps
            done = float(lam[-1]) + approx.error <= ratio * reference
        if done:
            approx.matvecs += spent
            return approx
        extra = min(ell, max_rank - ell)
        new = _test_matrix(n, extra, sketch, gen, op.dtype).to(op.device)
        Omega, Y = torch.cat([Omega, new], dim=-1), torch.cat([Y, op.matmat(new)], dim=-1)
        ell += extra


def error_norm(op: Operator, approx: NystromApproximation, steps: int, gen: torch.Generator) -> float:
    """``‖A − Â‖₂`` estimated by ``steps`` power iterations from a random start (``steps`` counted
    products with A): ``‖(A − Â)v‖`` for the last unit iterate v, a lower bound that converges up."""
    v = torch.randn(op.n, 1, generator=gen, dtype=torch.float64).to(dtype=op.dtype, device=op.device)
    estimate = 0.0
    for _ in range(steps):
        v = v / v.norm().clamp_min(torch.finfo(v.dtype).tiny)
        v = op.matmat(v) - approx.matmat(v)
        estimate = float(v.norm())
    return estimate


def check_mu(mu) -> float:
    """``μ`` as a float, ``>= 0`` and finite (else ``InputValueError``)."""
    mu = float(mu)
    if not math.isfinite(mu) or mu < 0:
        raise InputValueError(f"the regularisation mu must be finite and >= 0, got {mu}")
    return mu


class NystromPreconditioner:
    """``P⁻¹`` (and ``P^{−½}``) of the module docstring for ``A + μI``; callable on torch blocks
    ``(..., n, k)`` and vectors ``(n,)``. Applying it costs no product with A."""

    degree = 0  # no product with A per application (what PCG's matvec accounting reads)

    def __init__(self, approx: NystromApproximation, mu: float = 0.0):
        self.approx, self.mu = approx, check_mu(mu)
        lam = approx.lam
        if len(lam) and self.mu == 0 and float(lam[-1]) <= 0:
            raise InputValueError("a Nyström preconditioner with mu = 0 needs positive eigenvalues")
        self.U = approx.U
        self.n = self.U.shape[0]
        self.dtype = self.U.dtype
        self.floor = float(lam[-1]) + self.mu if len(lam) else 1.0  # λ̂_ℓ + μ
        self._inv = self.floor / (lam + self.mu)
        self._inv_sqrt = self._inv.sqrt()

    @property
    def rank(self) -> int:
        return len(self.approx.lam)

    def _apply(self, R: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        vector = R.ndim == 1
        R = R.unsqueeze(-1) if vector else R
        C = self.U.mT @ R
        out = R + self.U @ ((weights.unsqueeze(-1) - 1) * C)
        return out.squeeze(-1) if vector else out

    def __call__(self, R: torch.Tensor) -> torch.Tensor:
        """``P⁻¹ R = R + U((λ̂_ℓ+μ)(Λ̂+μ)⁻¹ − I)UᵀR``."""
        return self._apply(R, self._inv)

    def sqrt_inverse(self, R: torch.Tensor) -> torch.Tensor:
        """``P^{−½} R`` (symmetric), for the split-preconditioned operator ``P^{−½} A_μ P^{−½}``."""
        return self._apply(R, self._inv_sqrt)

    def as_linear_operator(self) -> spla.LinearOperator:
        """``P⁻¹`` as a SciPy ``LinearOperator`` (the ``M`` of ``scipy.sparse.linalg.cg``)."""
        return as_linear_operator(self, self.n, self.dtype, self.U.device)


class Preconditioned(Operator):
    """``P^{−½} A P^{−½}`` for a :class:`NystromPreconditioner` P (one counted product with A each)."""

    def __init__(self, op: Operator, P: NystromPreconditioner):
        super().__init__(op.shape, op.dtype, op.device)
        self.inner, self.P = op, P

    def _matmat(self, V):
        return self.P.sqrt_inverse(self.inner.matmat(self.P.sqrt_inverse(V)))


class Shifted(Operator):
    """``A + μI`` (one counted product with A each; the diagonal is ``diag(A) + μ``)."""

    def __init__(self, op: Operator, mu: float):
        super().__init__(op.shape, op.dtype, op.device)
        self.inner, self.mu = op, check_mu(mu)

    def _matmat(self, V):
        return self.inner._matmat(V) + self.mu * V

    def diagonal(self):
        return self.inner.diagonal() + self.mu


def nystrom_preconditioner(A, mu: float = 0.0, rank: int | None = None, *, rng=None, sketch: str = "gaussian",
                           max_rank: int | None = None) -> NystromPreconditioner | spla.LinearOperator:
    """``P⁻¹ ≈ (A + μI)⁻¹`` from a Nyström sketch of A (fixed ``rank``, or the adaptive rule when
    ``None``): a SciPy ``LinearOperator`` (for ``M`` of ``scipy.sparse.linalg.cg``) for
    NumPy/SciPy input, the torch-callable :class:`NystromPreconditioner` otherwise. The products
    spent are in ``.matvecs`` on both."""
    op = as_operator(A, symmetric=True)
    approx = (adaptive_nystrom(op, mu, rng=rng, sketch=sketch, max_rank=max_rank) if rank is None
              else nystrom(op, rank, rng=rng, sketch=sketch))
    P = NystromPreconditioner(approx, mu)
    if isinstance(A, (np.ndarray, spla.LinearOperator)) or sp.issparse(A):
        M = P.as_linear_operator()
        M.rank, M.preconditioner = P.rank, P
    else:
        M = P
    M.matvecs = approx.matvecs
    return M
