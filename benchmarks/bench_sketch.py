"""Sketching baselines on ML systems (issue 15): randomized NLA next to CG, Chebyshev and the learned
polynomial.

    OMP_NUM_THREADS=1 python benchmarks/bench_sketch.py [--quick] [--rtol 1e-6]
    OMP_NUM_THREADS=1 python benchmarks/bench_sketch.py --large      # n = 2·10⁴ only

SPD systems ``(A + μI) x = b`` with ``μ = μ_rel·λ_max(A)`` (so ``κ <= 1 + 1/μ_rel``), μ_rel in
{1e-2, 1e-4, 1e-6}:

* ``krr-gauss-digits``: Gaussian kernel on scikit-learn's bundled digits (n = 1797; generated
  look-alike data when scikit-learn is not installed), bandwidth = median pairwise distance;
* ``krr-gauss-3d`` / ``krr-matern-3d``: Gaussian and Matérn-3/2 kernels on 3000 points in the unit
  cube (fast and slow spectral decay);
* ``rf-ridge``: the Gram ``ZᵀZ`` of 1024 random Fourier features of 10 000 samples in R⁸;
* ``--large``: ``krr-gauss-3d`` on 20 000 points (3.2 GB, built in row blocks; bandwidth = the
  median distance of 3000 of the points), μ_rel in {1e-2, 1e-4}, passed as a SciPy
  ``LinearOperator`` (so no dense copy for the symmetry check), no least squares.

Methods: ``cg``; ``chebyshev`` (degree 10, probe 50); ``autospec`` (engine linsys-cg-d10);
``nystrom`` (adaptive rank); ``nystrom+chebyshev`` and ``nystrom+autospec`` (Nyström deflation, then
the polynomial on ``P^{-1/2}(A + μI)P^{-1/2}``). ``kappa_P`` is κ of the Nyström-preconditioned
system (extreme Ritz values of 80 Lanczos steps on it, not counted). Outer iterations are capped at
3000 (CG, Nyström) and 200 (polynomial methods, 11 products each); ``time/cg`` is wall time over
CG's on the same system.

Least squares ``min ‖Xw − y‖² + μ‖w‖²`` (``μ = μ_rel·‖X‖²``, μ_rel in {1e-4, 1e-8}) with
``autospec.lstsq``: scikit-learn's breast-cancer (569 × 30, raw features) and digits (1797 × 64),
and the random features ``Z`` (10 000 × 1024); methods ``cg`` (normal equations; the time
reference), ``lsqr``, ``sketch_precondition``, ``sketch_solve``, ``chebyshev``/``autospec`` on the
normal equations.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse.linalg as spla
import torch

import autospec
from autospec.core.operators import as_operator
from autospec.core.probe import lanczos
from autospec.sketch.nystrom import NystromPreconditioner, Preconditioned, Shifted, adaptive_nystrom
from common import print_table

SEED = 0
SPD_METHODS = {
    "cg": {"method": "cg"},
    "chebyshev": {"method": "chebyshev", "degree": 10, "probe_steps": 50},
    "autospec": {"method": "autospec"},
    "nystrom": {"method": "nystrom"},
    "nystrom+chebyshev": {"method": "nystrom", "polynomial": "chebyshev", "degree": 10, "probe_steps": 50},
    "nystrom+autospec": {"method": "nystrom", "polynomial": "autospec"},
}
LSTSQ_METHODS = ["cg", "lsqr", "sketch_precondition", "sketch_solve", "chebyshev", "autospec"]


def digits() -> tuple[np.ndarray, np.ndarray, str]:
    """scikit-learn's bundled digits (pixels / 16), or a seeded look-alike without scikit-learn."""
    try:
        from sklearn.datasets import load_digits

        data = load_digits()
        return data.data / 16.0, data.target.astype(float), "sklearn"
    except ImportError:
        rng = np.random.default_rng(SEED)
        centers = rng.random((10, 64))
        labels = rng.integers(0, 10, 1797)
        return np.clip(centers[labels] + 0.2 * rng.standard_normal((1797, 64)), 0, 1), labels.astype(float), "generated"


def breast_cancer() -> tuple[np.ndarray, np.ndarray, str]:
    try:
        from sklearn.datasets import load_breast_cancer

        data = load_breast_cancer()
        return data.data, data.target.astype(float), "sklearn"
    except ImportError:
        rng = np.random.default_rng(SEED + 1)
        X = rng.standard_normal((569, 30)) * np.logspace(-3, 3, 30)
        return X, (X[:, 0] > 0).astype(float), "generated"


def _distances(X: np.ndarray) -> np.ndarray:
    sq = (X * X).sum(1)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0))


def _median_distance(X: np.ndarray) -> float:
    R = _distances(X)
    return float(np.median(R[np.triu_indices_from(R, 1)]))


def _profile(R: np.ndarray, sigma: float, kind: str) -> np.ndarray:
    """Gaussian ``exp(−r²/2σ²)`` or Matérn-3/2 ``(1 + √3 r/σ) exp(−√3 r/σ)`` of distances R."""
    if kind == "gauss":
        return np.exp(-(R / sigma) ** 2 / 2)
    s = np.sqrt(3) * R / sigma
    return (1 + s) * np.exp(-s)


def kernel(X: np.ndarray, kind: str) -> np.ndarray:
    """The kernel matrix of X, σ the median pairwise distance."""
    return _profile(_distances(X), _median_distance(X), kind)


def large_kernel(X: np.ndarray, kind: str, block: int = 2000) -> np.ndarray:
    """The kernel matrix of a large X in row blocks (no n² temporaries), σ the median distance of
    3000 of its points."""
    sigma = _median_distance(X[np.random.default_rng(SEED).choice(len(X), 3000, replace=False)])
    sq = (X * X).sum(1)
    K = np.empty((len(X), len(X)))
    for i in range(0, len(X), block):
        R = np.sqrt(np.maximum(sq[i : i + block, None] + sq[None, :] - 2 * X[i : i + block] @ X.T, 0))
        K[i : i + block] = _profile(R, sigma, kind)
    return K


def random_features(n: int, D: int) -> tuple[np.ndarray, np.ndarray]:
    """``Z = √(2/D) cos(XW + c)`` of Gaussian-kernel random Fourier features, and targets."""
    rng = np.random.default_rng(SEED + 2)
    X = rng.standard_normal((n, 8))
    Z = np.sqrt(2 / D) * np.cos(X @ rng.standard_normal((8, D)) / 2 + rng.uniform(0, 2 * np.pi, D))
    return Z, np.sin(X[:, 0]) + 0.1 * rng.standard_normal(n)


def spd_systems(quick: bool) -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(SEED)
    Xd, yd, source = digits()
    m = 1000 if quick else 3000
    cube = rng.random((m, 3))
    target = np.sin(4 * cube).sum(1)
    Z, yz = random_features(2000 if quick else 10000, 256 if quick else 1024)
    Xd, yd = (Xd[:600], yd[:600]) if quick else (Xd, yd)
    return [(f"krr-gauss-digits ({source})", kernel(Xd, "gauss"), yd), ("krr-gauss-3d", kernel(cube, "gauss"), target),
            ("krr-matern-3d", kernel(cube, "matern"), target), ("rf-ridge", Z.T @ Z, Z.T @ yz)]


def large_systems() -> list[tuple[str, spla.LinearOperator, np.ndarray]]:
    cube = np.random.default_rng(SEED).random((20000, 3))
    return [("krr-gauss-3d", spla.aslinearoperator(large_kernel(cube, "gauss")), np.sin(4 * cube).sum(1))]


def kappa_preconditioned(A, mu: float) -> tuple[float, int]:
    """κ of ``P^{-1/2}(A + μI)P^{-1/2}`` for the Nyström P that ``solve`` builds (same seed)."""
    op = as_operator(A)
    P = NystromPreconditioner(adaptive_nystrom(op, mu, rng=SEED), mu)
    probe = lanczos(Preconditioned(Shifted(op, mu), P), steps=min(80, A.shape[0]), seed=SEED)
    return float(probe.theta_max / probe.theta_min), P.rank


def spd_rows(systems, mu_rels: tuple[float, ...], rtol: float) -> list[dict]:
    rows = []
    for name, A, b in systems:
        lam_max = float(spla.eigsh(A, k=1, which="LA", return_eigenvectors=False)[0])
        for mu_rel in mu_rels:
            mu = mu_rel * lam_max
            kappa, _ = kappa_preconditioned(A, mu)
            base = None
            for label, kwargs in SPD_METHODS.items():
                cap = 200 if kwargs["method"] in ("chebyshev", "autospec") or "polynomial" in kwargs else 3000
                x, info = autospec.solve(A, b, mu=mu, rtol=rtol, maxiter=cap, rng=SEED, **kwargs)
                base = info.seconds if label == "cg" else base
                row = {"system": name, "n": A.shape[0], "mu/lmax": mu_rel, "method": label, "outer": info.outer_iters,
                       "matvecs": info.matvecs, "time/cg": info.seconds / base, "seconds": info.seconds,
                       "rank": getattr(info, "rank", 0) or "", "kappa_P": kappa if label.startswith("nystrom") else "",
                       "converged": info.converged, "fallback": "yes" if info.fallback else ""}
                rows.append(row)
                print(row, flush=True)
    return rows


def lstsq_problems(quick: bool) -> list[tuple[str, np.ndarray, np.ndarray]]:
    Xb, yb, sb = breast_cancer()
    Xd, yd, sd = digits()
    Z, yz = random_features(2000 if quick else 10000, 256 if quick else 1024)
    return [(f"breast-cancer ({sb})", Xb, yb), (f"digits ({sd})", Xd, yd), ("random-features", Z, yz)]


def lstsq_rows(quick: bool, rtol: float) -> list[dict]:
    rows = []
    for name, X, y in lstsq_problems(quick):
        norm2 = float(np.linalg.norm(X, 2)) ** 2
        for mu_rel in (1e-4, 1e-8):
            base = None
            for method in LSTSQ_METHODS:
                cap = 300 if method in ("chebyshev", "autospec") else 20000
                start = time.perf_counter()
                _, info = autospec.lstsq(X, y, method=method, mu=mu_rel * norm2, rtol=rtol, maxiter=cap, rng=SEED)
                seconds = time.perf_counter() - start
                base = seconds if method == "cg" else base
                row = {"problem": name, "shape": f"{X.shape[0]}x{X.shape[1]}", "mu/|X|^2": mu_rel, "method": method,
                       "iters": info.outer_iters, "matvecs": info.matvecs, "time/cg": seconds / base,
                       "seconds": seconds, "normal_res": info.normal_residual, "converged": info.converged}
                rows.append(row)
                print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--large", action="store_true", help="only the n = 2·10⁴ kernel system")
    parser.add_argument("--rtol", type=float, default=1e-6)
    args = parser.parse_args()
    torch.manual_seed(SEED)
    start = time.perf_counter()
    systems, mu_rels = (large_systems(), (1e-2, 1e-4)) if args.large else (spd_systems(args.quick), (1e-2, 1e-4, 1e-6))
    spd = spd_rows(systems, mu_rels, args.rtol)
    print(f"\n## SPD systems (rtol {args.rtol:g})\n")
    print_table(spd, ["system", "n", "mu/lmax", "method", "outer", "matvecs", "time/cg", "rank", "kappa_P", "converged",
                      "fallback"])
    if args.large:
        print(f"\ntotal {time.perf_counter() - start:.0f} s")
        return
    ls = lstsq_rows(args.quick, args.rtol)
    print(f"\n## Least squares (rtol {args.rtol:g})\n")
    print_table(ls, ["problem", "shape", "mu/|X|^2", "method", "iters", "matvecs", "time/cg", "normal_res", "converged"])
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
