"""Wall time of the matrix-function kernels against ``torch.linalg.eigh`` on this machine.

Inverse square roots of SPD batches (eigenvalues log-uniform in [1/κ, 1], random bases) run to
``--tol`` on their own residual (or until they stall at the dtype's floor); polar factors of
Gaussian batches run ``--polar-iters`` steps, with ``torch.linalg.svd`` as the exact polar row.
The learned rows run the shipped engines' iterations as the library does, without the API's
input checks and float64 error evaluation (as for the baseline kernels); the engine and its
Lanczos probes of every step are included.
Each row is the best of ``--repeats`` timed runs (after a small warm-up); "× eigh" is seconds over
the seconds of ``torch.linalg.eigh`` on the same batch. ``rel_error`` is ``‖X A X − I‖_F/√n``
(inv_sqrt) or ``‖QᵀQ − I‖_F/√n`` (polar), in float64, worst over the batch.

    python benchmarks/bench_matfun_kernels.py [--sizes 256 1024 2048] [--batch 8] [--dtype float32]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from autospec.kernels import (
    coupled_newton_schulz,
    inverse_newton,
    muon,
    newton_schulz_polar,
    polar_express,
    prism_polar,
    prism_sqrt,
)
from autospec.matfun.task import AUTOSPEC_METHODS as LEARNED

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


def spd_batch(batch: int, n: int, kappa: float, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    Q = torch.linalg.qr(torch.randn(batch, n, n, generator=gen)).Q
    lam = torch.logspace(0, -math.log10(kappa), n)
    return ((Q * lam) @ Q.mT).to(dtype)


REPEATS = 1


def timed(fn, *args, **kwargs):
    """``(fn(*args, **kwargs), best wall time over REPEATS runs)``."""
    best = math.inf
    for _ in range(REPEATS):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return out, best


def inv_sqrt_error(A: torch.Tensor, X: torch.Tensor) -> float:
    A, X = A.double(), X.double()
    eye = torch.eye(A.shape[-1], dtype=torch.float64)
    return float((torch.linalg.matrix_norm(X @ A @ X - eye) / math.sqrt(A.shape[-1])).max())


def orthogonality_error(Q: torch.Tensor) -> float:
    Q = Q.double()
    eye = torch.eye(Q.shape[-1], dtype=torch.float64)
    return float((torch.linalg.matrix_norm(Q.mT @ Q - eye) / math.sqrt(Q.shape[-1])).max())


def lapack(A: torch.Tensor) -> torch.Tensor:
    """LAPACK has no half-precision routines: run those in float32."""
    return A if A.dtype in (torch.float32, torch.float64) else A.float()


def eigh_inv_sqrt(A: torch.Tensor) -> torch.Tensor:
    lam, V = torch.linalg.eigh(lapack(A))
    return (V * lam.rsqrt().unsqueeze(-2)) @ V.mT


def svd_polar(G: torch.Tensor) -> torch.Tensor:
    """``U Vᵀ`` from ``torch.linalg.svd`` (eigh of the Gram is not accurate enough in float32)."""
    U, _, Vh = torch.linalg.svd(lapack(G), full_matrices=False)
    return U @ Vh


def run(sizes, batch, dtype, kappa, tol, polar_iters, seed):
    gen = torch.Generator().manual_seed(seed)
    inv_sqrt_kernels = {
        "newton_schulz": lambda A: coupled_newton_schulz(A, tol=tol),
        "prism (p=8)": lambda A: prism_sqrt(A, tol=tol),
        "inverse_newton": lambda A: inverse_newton(A, 2, tol=tol),
        "autospec (learned)": lambda A: LEARNED["inv_sqrt"](A, tol=tol, max_iters=None, engine=None),
    }
    polar_kernels = {
        "newton_schulz": newton_schulz_polar,
        "muon": muon,
        "polar_express": polar_express,
        "prism (p=8)": prism_polar,
        "autospec (learned)": lambda G, iters: LEARNED["polar"](G, tol=None, max_iters=iters, engine=None),
    }
    print("| n | function | method | iters | matmuls | seconds | × eigh | rel_error |")
    print("|---|---|---|---|---|---|---|---|")

    def record(n, function, method, iters, matmuls, t, err):
        err = f"{err:.1e}" if err != "" else ""
        print(f"| {n} | {function} | {method} | {iters} | {matmuls} | {t:.3f} | {t / t_eigh:.2f} | {err} |", flush=True)

    for n in sizes:
        A = spd_batch(batch, n, kappa, dtype, gen)
        G = torch.randn(batch, n, n, generator=gen).to(dtype)
        coupled_newton_schulz(A[:1], iters=1)  # warm-up (BLAS/LAPACK workspaces at this size)
        torch.linalg.eigh(lapack(A[:1]))
        _, t_eigh = timed(torch.linalg.eigh, lapack(A))
        record(n, "—", "torch.linalg.eigh", "", "", t_eigh, "")
        X, t = timed(eigh_inv_sqrt, A)
        record(n, "inv_sqrt", "eigh", "", "", t, inv_sqrt_error(A, X))
        for name, kernel in inv_sqrt_kernels.items():
            (out, info), t = timed(kernel, A)
            X = out.inv_sqrt if isinstance(out, tuple) else out
            record(n, "inv_sqrt", name, info.iters, info.matmuls, t, inv_sqrt_error(A, X))
        Q, t = timed(svd_polar, G)
        record(n, "polar", "svd", "", "", t, orthogonality_error(Q))
        for name, kernel in polar_kernels.items():
            (Q, info), t = timed(kernel, G, iters=polar_iters)
            record(n, "polar", name, info.iters, info.matmuls, t, orthogonality_error(Q))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 2048])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--kappa", type=float, default=1e3, help="condition number of the SPD inputs")
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--polar-iters", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="time each row as the best of this many runs")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    global REPEATS
    REPEATS = args.repeats
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# batch {args.batch}, {args.dtype}, κ = {args.kappa:g}, tol {args.tol:g}, polar {args.polar_iters} "
          f"steps, best of {args.repeats}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    run(args.sizes, args.batch, DTYPES[args.dtype], args.kappa, args.tol, args.polar_iters, args.seed)


if __name__ == "__main__":
    main()
