"""The SciPy baselines of :func:`autospec.eigsh`: ARPACK (``method="lanczos"``) and LOBPCG, run on the
shared probe, budget and residual test of :mod:`autospec.eigen.subspace` (their products counted)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse.linalg as spla
import torch

from autospec.core.operators import torch_block
from autospec.eigen.subspace import EigenInfo, _orthonormalise, _Problem, _rayleigh_ritz

ARPACK_TOL_FACTOR = 0.5  # ARPACK's Ritz estimates β|s_j| vs. true residuals
LOBPCG_TOL_FACTOR = 0.5  # LOBPCG's recursively updated residuals vs. true residuals
LOBPCG_RUNS = 5  # LOBPCG restarts from its result while its residuals fail the test


class _BudgetReached(Exception):
    """Raised inside SciPy solvers when the next product would exceed the matvec budget."""


class _CountingOperator(spla.LinearOperator):
    """SciPy view of ``A + shift·I`` whose products go through ``prob.op`` (counted). With
    ``keep > 0`` it remembers its last ``keep`` inputs ``X`` and products ``A X`` and, once it has
    made ``keep/4`` products, raises ``_BudgetReached`` instead of exceeding the budget."""

    def __init__(self, prob: _Problem, shift: float = 0.0, keep: int = 0):
        super().__init__(dtype=np.float64, shape=prob.op.shape)
        self.prob, self.shift, self.keep, self.products, self.calls = prob, shift, keep, 0, 0
        self.X, self.AX = (torch.zeros(prob.op.n, keep, dtype=prob.op.dtype, device=prob.op.device) for _ in range(2))

    def _matmat(self, X):
        X = torch_block(X, self.shape[0], self.prob.op.dtype, self.prob.op.device)
        if self.keep and 4 * self.products >= self.keep and self.prob.matvecs + X.shape[1] > self.prob.budget:
            raise _BudgetReached
        AX = self.prob.op.matmat(X)
        if self.keep:  # ring buffer of the last `keep` columns
            take = min(X.shape[1], self.keep)
            slots = (self.products + torch.arange(X.shape[1] - take, X.shape[1])) % self.keep
            self.X[:, slots], self.AX[:, slots] = X[:, -take:], AX[:, -take:]
        self.products += X.shape[1]
        self.calls += 1
        return (AX + self.shift * X).to(torch.float64).cpu().numpy()

    def _adjoint(self):
        return self

    def rayleigh_ritz(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Ritz pairs ``θ, V, AV`` of the remembered inputs without new products: ``X = U Σ Wᵀ``
        (directions with ``σ <= 1e-8 σ_max`` dropped), ``A U = (A X) W Σ⁻¹``."""
        filled = min(self.products, self.keep)
        U, sigma, Wt = torch.linalg.svd(self.X[:, :filled], full_matrices=False)
        kept = sigma > 1e-8 * sigma[:1]
        return _rayleigh_ritz(U[:, kept], self.AX[:, :filled] @ Wt[kept].mT / sigma[kept])


def _verified(prob: _Problem, theta, V):
    """Pairs from a SciPy solver as tensors, with residuals from uncounted products."""
    theta, V = (torch.as_tensor(x).to(dtype=prob.op.dtype, device=prob.op.device) for x in (theta, V))
    return theta, V, prob.residuals(V, prob.op._matmat(V), theta)


def _arpack(prob: _Problem):
    """``scipy.sparse.linalg.eigsh(which="SA")`` (implicitly restarted Lanczos, no shift-invert) for
    ``prob.block`` pairs (default :func:`default_block`; the guard pairs help it find second copies of
    repeated eigenvalues), SciPy's ``ncv = max(2·block + 1, 20)`` (n when that is ≥ n/2, where
    ARPACK's restarts can break down); the lowest k are returned.

    ARPACK stops at ``‖r_j‖ <= tol_A·|θ_j|``; it runs on ``A + σI`` with ``σ = ‖A‖_est − θ_min(probe)``
    (same Krylov spaces, wanted ``|θ_j + σ| ≈ ‖A‖_est``) and ``tol_A = tol/2``, so its test matches
    the common ``‖r_j‖ <= tol·‖A‖_est``. At the budget (the first ``ncv`` Lanczos steps always
    run), or if ARPACK fails, the result is the Rayleigh–Ritz of its last ``4·ncv`` Lanczos
    vectors (stored products, no extra matvecs), completed by Gaussian vectors (their products
    counted, beyond the budget) when those span fewer than k directions.
    """
    n, k = prob.op.n, prob.k
    pairs = min(prob.block, n - 1)
    ncv = max(2 * pairs + 1, 20)
    ncv = n if 2 * ncv >= n else ncv  # a basis of half the space: take all of it (exact, no restarts)
    shift = prob.scale - float(prob.probe.theta_min)
    A = _CountingOperator(prob, shift=shift, keep=4 * ncv)
    v0 = np.random.default_rng(prob.seed).standard_normal(n)
    info = EigenInfo(block=pairs)
    start = prob.matvecs
    try:
        theta, V = spla.eigsh(A, k=pairs, which="SA", v0=v0, ncv=ncv, maxiter=prob.budget,
                              tol=ARPACK_TOL_FACTOR * prob.tol)
        lowest = np.argsort(theta)[:k]
        theta, V = theta[lowest] - shift, V[:, lowest]
    except (_BudgetReached, spla.ArpackNoConvergence, spla.ArpackError) as err:
        budget = isinstance(err, _BudgetReached)
        info.message = f"stopped at the matvec budget ({prob.budget})" if budget else f"ARPACK: {err}"
        theta, V, AV = A.rayleigh_ritz()
        if V.shape[1] < k:
            gen = torch.Generator().manual_seed(prob.seed)
            W = _orthonormalise(prob.gaussian(k - V.shape[1], gen), V, prob, gen)
            theta, V, _ = _rayleigh_ritz(torch.cat([V, W], 1), torch.cat([AV, prob.op.matmat(W)], 1))
        theta, V = theta[:k], V[:, :k]
    info.outer_iters = prob.matvecs - start
    return (*_verified(prob, theta, V), info)


def _lobpcg(prob: _Problem):
    """``scipy.sparse.linalg.lobpcg(largest=False)`` on ``block = prob.block`` (default
    :func:`default_block`) Gaussian columns, with its absolute test ``‖r_j‖ <= tol_L`` at ``tol_L = tol·‖A‖_est/2``.

    LOBPCG deactivates a column for good once its residual passes the test, so the returned
    residuals may exceed it again: the run is restarted from its result (at most 5 runs) while
    SciPy's final, explicitly computed residuals fail the common test and still decrease. Each run
    costs ``block`` products to start and to end and at most ``block`` per iteration; ``maxiter``
    keeps it within the budget (SciPy's rare internal restarts cost ``block`` more). Small problems
    (``n < 5·block``) are solved densely by SciPy (n products). If SciPy fails (Cholesky or
    ``eigh`` breakdown) the last result, or the Rayleigh–Ritz of the start block, is returned.
    """
    k, bs = prob.k, prob.block
    A = _CountingOperator(prob)
    X = torch.randn(prob.op.n, bs, generator=torch.Generator().manual_seed(prob.seed), dtype=torch.float64).numpy()
    theta, previous, info = None, math.inf, EigenInfo(block=bs)
    for run in range(LOBPCG_RUNS):
        maxiter = (prob.budget - prob.matvecs - 3 * bs) // bs  # SciPy runs maxiter + 1 iterations
        if run and maxiter < 1:
            break
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theta, X, *history = spla.lobpcg(A, X, tol=LOBPCG_TOL_FACTOR * prob.tol * prob.scale,
                                                 maxiter=max(1, maxiter), largest=False, retResidualNormsHistory=True)
        except (ValueError, np.linalg.LinAlgError) as err:
            info.message = f"LOBPCG failed: {err}"
            break
        # history[0][-1]: residuals of the final explicit Rayleigh–Ritz (none for the dense path)
        worst = float(np.max(history[0][-1][:k])) / prob.scale if history else 0.0
        if worst <= prob.tol:
            break
        if worst >= previous:
            info.message = f"LOBPCG restarts stopped improving (max residual {worst:.2e})"
            break
        previous = worst
    if theta is None:
        Q = torch.linalg.qr(torch.from_numpy(X).to(dtype=prob.op.dtype, device=prob.op.device)).Q
        theta, X, _ = _rayleigh_ritz(Q, prob.op.matmat(Q))
    if not info.message and prob.matvecs > prob.budget - 3 * bs:
        info.message = f"stopped at the matvec budget ({prob.budget})"
    info.outer_iters = max(1, A.calls - 2 * (run + 1))
    return (*_verified(prob, theta[:k], X[:, :k]), info)
