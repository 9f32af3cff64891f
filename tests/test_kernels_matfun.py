"""Matrix-function kernels (``autospec.kernels``) against float64 ``eigh``/SVD references.

Tolerances (relative Frobenius error vs the float64 reference of the same, dtype-rounded input;
observed worst case in brackets): float64 1e-9 [9e-11]; float32 2e-6 at κ = 10 [5e-7] and 1e-4 at
κ = 1e4 [4e-5] (the floor grows with κ); bfloat16 2e-2 at κ = 10 [9e-3] (8 significant bits;
SPD inputs with κ ≳ 1e2 are not even definite after rounding to bf16).
"""

import math

import numpy as np
import pytest
import torch

from autospec.kernels import (
    coupled_newton_schulz,
    inverse_newton,
    muon,
    newton_schulz_inverse,
    newton_schulz_polar,
    polar_express,
    prism_polar,
    prism_sqrt,
    reference,
)
from autospec.kernels.inverse_newton import power_cost
from autospec.kernels.polar import (
    MUON,
    POLAR_EXPRESS,
    POLAR_EXPRESS_PUBLISHED,
    minimax_quintic,
    optimal_quintic,
    polar_express_coefficients,
    singular_value_map,
)
from autospec.kernels.prism import (
    INTERVALS,
    TAYLOR,
    minimise_quartic,
    objective_coefficients,
)


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny matrices: intra-op threads only add synchronisation


BATCH = 3
TOL = {  # (dtype, κ) -> relative error bound
    (torch.float64, 1e1): 1e-9,
    (torch.float64, 1e4): 1e-9,
    (torch.float32, 1e1): 2e-6,
    (torch.float32, 1e4): 1e-4,
    (torch.bfloat16, 1e1): 2e-2,
}
KERNEL_TOL = {torch.float64: 1e-10, torch.float32: 1e-6, torch.bfloat16: 1e-6}


def spd_batch(n: int, kappa: float, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    """``(BATCH, n, n)`` SPD, log-uniform eigenvalues in [1/κ, 1], random bases."""
    g = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(BATCH, n, n, generator=g, dtype=torch.float64)).Q
    lam = torch.logspace(0, -math.log10(kappa), n, dtype=torch.float64)
    return ((Q * lam.unsqueeze(-2)) @ Q.mT).to(dtype)


def matrix_batch(m: int, n: int, kappa: float, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    """``(BATCH, m, n)`` with log-uniform singular values in [1/κ, 1]."""
    g = torch.Generator().manual_seed(seed)
    k = min(m, n)
    U = torch.linalg.qr(torch.randn(BATCH, m, k, generator=g, dtype=torch.float64)).Q
    V = torch.linalg.qr(torch.randn(BATCH, n, k, generator=g, dtype=torch.float64)).Q
    s = torch.logspace(0, -math.log10(kappa), k, dtype=torch.float64)
    return ((U * s.unsqueeze(-2)) @ V.mT).to(dtype)


def rel(X: torch.Tensor, ref: torch.Tensor) -> float:
    return float((X.double() - ref).norm() / ref.norm())


CASES = [(dtype, kappa) for dtype, kappa in TOL]
SQRT_KERNELS = {
    "newton_schulz": lambda A, **kw: coupled_newton_schulz(A, **kw),
    "prism": lambda A, **kw: prism_sqrt(A, **kw),
    "prism_exact": lambda A, **kw: prism_sqrt(A, sketch=None, **kw),
}


@pytest.mark.parametrize("dtype,kappa", CASES)
@pytest.mark.parametrize("name", sorted(SQRT_KERNELS))
def test_coupled_sqrt_kernels_match_eigh(name, dtype, kappa):
    A = spd_batch(48, kappa, dtype)
    (S, Z), info = SQRT_KERNELS[name](A, tol=KERNEL_TOL[dtype])
    assert S.dtype == dtype and S.shape == A.shape
    assert rel(S, reference.sqrt(A)) <= TOL[dtype, kappa]
    assert rel(Z, reference.inv_sqrt(A)) <= TOL[dtype, kappa]
    assert not info.diverged and info.iters > 0
    assert info.converged or (dtype != torch.float64 and info.stalled)


@pytest.mark.parametrize("dtype,kappa", CASES)
def test_inverse_newton_matches_eigh(dtype, kappa):
    A = spd_batch(40, kappa, dtype)
    X, _ = inverse_newton(A, 2, tol=KERNEL_TOL[dtype])
    assert rel(X, reference.inv_sqrt(A)) <= TOL[dtype, kappa]
    X4, _ = inverse_newton(A, 4, tol=KERNEL_TOL[dtype])
    assert rel(X4, reference.inv_root(A, 4)) <= TOL[dtype, kappa]


def test_newton_schulz_inverse_matches_inverse():
    A = spd_batch(32, 1e3)
    X, info = newton_schulz_inverse(A, tol=1e-12)
    assert info.converged
    assert rel(X, torch.linalg.inv(A)) <= 1e-9
    assert info.residual_history[-1] <= 1e-12


POLAR_KERNELS = {
    "newton_schulz": lambda G, **kw: newton_schulz_polar(G, **kw),
    "polar_express": lambda G, **kw: polar_express(G, **kw),
    "prism": lambda G, **kw: prism_polar(G, **kw),
    "prism_exact": lambda G, **kw: prism_polar(G, sketch=None, **kw),
}


@pytest.mark.parametrize("dtype,kappa", CASES)
@pytest.mark.parametrize("shape", [(64, 32), (32, 56)])
@pytest.mark.parametrize("name", sorted(POLAR_KERNELS))
def test_polar_kernels_match_svd(name, shape, dtype, kappa):
    G = matrix_batch(*shape, kappa, dtype)
    X, info = POLAR_KERNELS[name](G, tol=KERNEL_TOL[dtype])
    assert X.shape == G.shape and X.dtype == dtype
    assert rel(X, reference.polar(G)) <= TOL[dtype, kappa]
    assert not info.diverged


# bf16: the published A-form loop (aX + (bA + cA²)X) lands at 3–4e-2 here, our residual form at 1–3e-2
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5), (torch.bfloat16, 4e-2)])
@pytest.mark.parametrize("kernel,quintics,scale", [(muon, [MUON] * 5, 1.0), (polar_express, POLAR_EXPRESS[:5], 1.01)])
def test_fixed_quintics_apply_their_singular_value_map(kernel, quintics, scale, dtype, tol):
    """5 steps give ``U p(Σ/(s‖G‖_F)) Vᵀ`` with p the composed scalar map."""
    G = matrix_batch(48, 32, 1e2, torch.float64)
    X, info = kernel(G.to(dtype), iters=5)
    U, s, Vh = torch.linalg.svd(G.to(dtype).double(), full_matrices=False)
    mapped = singular_value_map(quintics, (s / (scale * G.to(dtype).double().norm(dim=(-2, -1), keepdim=True)[..., 0])).numpy())
    expected = (U * torch.from_numpy(mapped).unsqueeze(-2)) @ Vh
    assert rel(X, expected) <= tol
    assert info.iters == 5 and info.matmuls == 3 * 5 + 1


def test_batched_leading_dims_and_tall_wide_consistency():
    A = spd_batch(32, 1e2).reshape(1, BATCH, 32, 32).expand(2, BATCH, 32, 32)
    (_, Z), _ = coupled_newton_schulz(A, tol=1e-10)
    assert Z.shape == (2, BATCH, 32, 32)
    assert rel(Z, reference.inv_sqrt(A)) <= 1e-8
    G = matrix_batch(40, 24, 1e2)
    tall, _ = polar_express(G, tol=1e-12)
    wide, _ = polar_express(G.mT, tol=1e-12)
    assert torch.allclose(tall, wide.mT, atol=1e-10)


# --------------------------------------------------------------------------- matmul counts

K = 4


@pytest.mark.parametrize(
    "run,matmuls,thin",
    [
        (lambda A: coupled_newton_schulz(A, iters=K), 3 * K - 1, 0),
        (lambda A: prism_sqrt(A, iters=K), 4 * K - 1, 5 * K),
        (lambda A: prism_sqrt(A, iters=K, sketch=None), 7 * K - 1, 0),
        (lambda A: prism_sqrt(A, iters=K, degree=1), 3 * K - 1, 3 * K),
        (lambda A: inverse_newton(A, 2, iters=K), 3 * K - 1, 0),
        (lambda A: inverse_newton(A, 3, iters=K), (power_cost(3) + 2) * K - 1, 0),
        (lambda A: newton_schulz_inverse(A, iters=K), 2 * K + 1, 0),
        (lambda A: newton_schulz_polar(A, iters=K), 2 * K + 1, 0),
        (lambda A: muon(A, iters=K), 3 * K + 1, 0),
        (lambda A: polar_express(A, iters=K), 3 * K + 1, 0),
        (lambda A: prism_polar(A, iters=K), 3 * K + 1, 5 * K),
        (lambda A: prism_polar(A, iters=K, sketch=None), 6 * K + 1, 0),
    ],
)
def test_matmul_counts_follow_the_formula(run, matmuls, thin):
    _, info = run(spd_batch(32, 1e2))
    assert info.iters == K
    assert (info.matmuls, info.sketch_matmuls) == (matmuls, thin)
    assert len(info.residual_history) == K + 1


def test_power_cost():
    assert [power_cost(p) for p in (1, 2, 3, 4, 5, 8)] == [0, 1, 2, 2, 3, 3]


# --------------------------------------------------------------------------- PRISM α


def residual_states():
    """Symmetric residuals R = I − XᵀX: far from (α at the upper end) and close to convergence."""
    g = torch.Generator().manual_seed(3)
    G = torch.randn(48, 48, generator=g, dtype=torch.float64)
    U, _, Vh = torch.linalg.svd(G)
    yield torch.eye(48, dtype=torch.float64) - (G / G.norm()).mT @ (G / G.norm())
    for spread in (0.3, 0.6, 0.9):
        sigma = 1 - spread * torch.rand(48, generator=g, dtype=torch.float64)
        X = U @ torch.diag(sigma) @ Vh
        yield torch.eye(48, dtype=torch.float64) - X.mT @ X


def grid_minimum(R: torch.Tensor, S: torch.Tensor, degree: int, points: int = 100_001) -> tuple[float, float]:
    """Brute force over a grid of α: ``‖(I − (I−R) g(R; α)²) S‖_F²`` evaluated on R's eigenbasis."""
    lam, Q = torch.linalg.eigh(R)
    lam, w = lam.numpy(), ((Q.mT @ S) ** 2).sum(-1).numpy()
    lo, hi = INTERVALS[degree]
    grid = np.linspace(lo, hi, points)[:, None]
    g = sum(c * lam**i for i, c in enumerate(TAYLOR[:degree])) + grid * lam**degree
    f = ((1 - (1 - lam) * g**2) ** 2 * w).sum(-1)
    return float(grid[np.argmin(f), 0]), float(f.min())


def sketched_objective(c: torch.Tensor, alpha: float) -> float:
    return float(sum(float(ci) * alpha**i for i, ci in enumerate(c)))


@pytest.mark.parametrize("degree", [1, 2])
@pytest.mark.parametrize("sketch", [8, None])
def test_prism_alpha_is_the_grid_minimum_of_the_sketched_objective(degree, sketch):
    lo, hi = INTERVALS[degree]
    spacing = (hi - lo) / 100_000
    for i, R in enumerate(residual_states()):
        n = R.shape[-1]
        S = torch.eye(n, dtype=torch.float64) if sketch is None else (
            torch.randn(n, sketch, generator=torch.Generator().manual_seed(i), dtype=torch.float64) / sketch**0.5)
        powers = [S]
        for _ in range(2 * degree + 1):
            powers.append(R @ powers[-1])
        c = objective_coefficients(powers, degree)
        alpha = float(minimise_quartic(c, lo, hi))
        alpha_grid, f_grid = grid_minimum(R, S, degree)
        assert sketched_objective(c, alpha_grid) == pytest.approx(f_grid, rel=1e-9)  # same objective
        assert sketched_objective(c, alpha) <= f_grid * (1 + 1e-12)  # no grid point does better
        assert abs(alpha - alpha_grid) <= 2 * spacing


def test_prism_kernel_uses_the_fitted_alpha():
    """The α of the first PRISM step is the grid minimum for the kernel's own (seeded) sketch."""
    G = matrix_batch(40, 40, 1e2)[0]
    seed, p = 7, 8
    _, info = prism_polar(G, iters=1, generator=torch.Generator().manual_seed(seed))
    X = G / G.norm()
    R = torch.eye(40, dtype=torch.float64) - X @ X.mT
    S = torch.randn(40, p, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) / p**0.5
    alpha_grid, _ = grid_minimum(R, S, 2)
    assert abs(float(info.alphas[0]) - alpha_grid) <= 2e-5
    _, exact = prism_polar(G, iters=1, sketch=None)
    assert abs(float(exact.alphas[0]) - grid_minimum(R, torch.eye(40, dtype=torch.float64), 2)[0]) <= 2e-5


def test_prism_alpha_starts_high_and_decays_to_taylor():
    _, info = prism_polar(matrix_batch(64, 32, 1e2)[0], sketch=None, tol=1e-14)
    alphas = [float(a) for a in info.alphas]
    assert alphas[0] == pytest.approx(1.45)
    assert alphas[-1] == pytest.approx(0.375, abs=1e-3)


# --------------------------------------------------------------------------- published coefficients

SIGMA = np.logspace(-4, 0, 40001)


def test_polar_express_table_reproduces_published_bounds():
    x = SIGMA[SIGMA >= 1e-3] / 1.01
    five = singular_value_map(POLAR_EXPRESS[:5], x)
    assert five.min() == pytest.approx(0.840, abs=1e-3) and five.max() == pytest.approx(1.124, abs=1e-3)
    six = singular_value_map(POLAR_EXPRESS[:6], x)
    assert six.min() == pytest.approx(0.9935, abs=1e-4) and six.max() == pytest.approx(1.0012, abs=1e-4)
    eight = singular_value_map(POLAR_EXPRESS[:8], x)
    assert np.abs(eight - 1).max() <= 1e-4


def test_polar_express_remez_reproduces_the_table():
    """basic.py's table is the greedy schedule (safety applied afterwards) with the cushion at
    l/u = 0.0240733, where the minimax error is E = 9/11 (image [2/11, 20/11], ratio 1/10)."""
    *_, E = optimal_quintic(0.024073274241826956, 1.0)
    assert E == pytest.approx(9 / 11, abs=1e-12)
    ours = polar_express_coefficients(1e-3, 1.0, 8, safety=0.0, cushion=0.024073274241826956)
    assert np.allclose(ours, POLAR_EXPRESS_PUBLISHED, rtol=1e-9, atol=1e-8)


@pytest.mark.parametrize("lo,hi", [(1e-3, 1.0), (0.1, 1.0), (0.5, 1.5)])
def test_optimal_quintic_equioscillates(lo, hi):
    a, b, c, E = optimal_quintic(lo, hi)
    x = np.linspace(lo, hi, 200001)
    err = 1 - singular_value_map([(a, b, c)], x)
    assert np.abs(err).max() == pytest.approx(E, rel=1e-6)
    assert err[0] == pytest.approx(E, rel=1e-9) and err[-1] == pytest.approx(-E, rel=1e-9)


@pytest.mark.parametrize("lo,hi", [(1e-9, 1.0), (2e-3, 0.7), (0.3, 1.2), (0.9, 1.0), (0.999, 1.001)])
def test_tabulated_minimax_quintic_is_near_optimal_and_differentiable(lo, hi):
    """The interpolated table loses at most 1% of the optimal error E (or 1e-12 absolute, near Taylor)."""
    lo_t = torch.tensor(lo, dtype=torch.float64, requires_grad=True)
    q = minimax_quintic(lo_t, torch.tensor(hi, dtype=torch.float64))
    *_, E = optimal_quintic(lo, hi)
    x = np.linspace(lo, hi, 100001)
    err = np.abs(1 - singular_value_map([tuple(q.detach().tolist())], x)).max()
    assert err <= 1.01 * E + 1e-12, (err, E)
    q.sum().backward()
    assert torch.isfinite(lo_t.grad)


def test_polar_express_default_schedule_contracts_the_interval():
    coeffs = polar_express_coefficients()  # l = 1e-3, 8 steps, safety 1e-2, cushion 0.02
    y = singular_value_map(coeffs, SIGMA[SIGMA >= 1e-3] / 1.01)
    assert np.abs(y - 1).max() <= 1e-3


def test_muon_singular_value_band():
    y = singular_value_map([MUON] * 5, SIGMA[SIGMA >= 1e-2])
    assert y.min() == pytest.approx(0.682, abs=1e-3) and y.max() == pytest.approx(1.134, abs=1e-3)


# --------------------------------------------------------------------------- stopping, divergence


def indefinite(n: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    Q = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64)).Q
    lam = torch.linspace(-0.5, 1.0, n, dtype=torch.float64)
    return (Q * lam) @ Q.mT


@pytest.mark.parametrize("kernel", [coupled_newton_schulz, prism_sqrt, lambda A, **kw: inverse_newton(A, 2, **kw)])
def test_divergence_is_reported_not_nan(kernel):
    out, info = kernel(indefinite(), tol=1e-8)
    X = out[1] if isinstance(out, tuple) else out
    assert info.diverged and not info.converged
    assert torch.isfinite(X).all()
    assert all(math.isfinite(r) for r in info.residual_history)


def test_low_precision_stalls_instead_of_looping():
    A = spd_batch(32, 1e1, torch.bfloat16)
    _, info = coupled_newton_schulz(A, tol=1e-8)
    assert info.stalled and not info.converged and not info.diverged
    assert info.iters < 20


def test_muon_tolerance_mode_runs_to_max_iters():
    _, info = muon(matrix_batch(32, 32, 1e1), iters=None, tol=1e-6, max_iters=12)
    assert info.iters == 12 and not info.converged


def test_references():
    A = spd_batch(24, 1e3)
    X = reference.inv_root(A, 4)
    eye = torch.eye(24, dtype=torch.float64)
    assert torch.allclose(torch.linalg.matrix_power(X, 4) @ A, eye, atol=1e-8)
    Q = reference.polar(matrix_batch(30, 20, 1e3))
    assert torch.allclose(Q.mT @ Q, torch.eye(20, dtype=torch.float64), atol=1e-12)
    with pytest.raises(Exception, match="positive definite"):
        reference.inv_sqrt(indefinite())
