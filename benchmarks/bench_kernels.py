"""Kernel benchmark (issue 16): what a recurrence step, a polynomial application, a CG iteration
and the probe cost in units of one SpMV, and autospec's CG/PCG wall time against SciPy's ``cg``.

    OMP_NUM_THREADS=1 python benchmarks/bench_kernels.py [--grids 500 1000] [--problems poisson3d_100]
        [--repeats 3] [--threads 1]

Per 2-D Poisson problem (n = grid²) and gallery problem, every figure measured in this one process,
the candidates of a row interleaved, the minimum of ``--repeats`` runs; every "/SpMV" ratio divides by
10 products of the fastest SpMV kernel timed in the same rounds as its numerator:

- ``spmv ms``: the fastest SpMV available (SciPy CSR ``A @ x``, SciPy's kernel into a buffer, the
  C kernel, torch CSR), timed as 10 products back to back; ``floor ms``: the bytes an SpMV must
  move (values, indices, row pointers, x, y) over the bandwidth of a large copy measured here;
- ``3-term step/SpMV``, ``basis step/SpMV``: a degree-10 polynomial application (three-term and
  Chebyshev-basis form, fused: one wavefront sweep over A when the matrix's band fits the cache, see
  ``wavefront``) over 10 SpMVs; ``stepwise``: the same with one pass over A per degree; and the unfused
  reference recurrence's ratio;
- ``cg/scipy``: ``autospec.solve(method="cg")`` over ``scipy.sparse.linalg.cg``, both ``--cg-iters``
  iterations (rtol unreachable), ``pcg/scipy`` the same for ``autospec.pcg``;
- learned PCG (``solve(method="autospec")``, rtol 1e-8) against SciPy's plain ``cg`` to the same
  rtol: wall ratio, matvec overhead ``outer·(d+1)/cg_iters`` and per-matvec cost ``wall/(matvecs·SpMV)``;
- the 50-step probe: wall time in SpMVs, and as the probe reports it
  (``Probe.spmv_equivalents``), beside the full-reorthogonalisation probe;
- with ``--block k``: PCG on k right-hand sides as one block over k vector solves (plain, and with a
  degree-10 Chebyshev M).
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Callable

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from scipy.sparse import _sparsetools

import autospec
from autospec.core import native
from autospec.core.operators import as_operator
from autospec.core.probe import lanczos
from autospec.core.recurrences import chebyshev_basis_preconditioner, chebyshev_three_term
from autospec.kernels import polynomial
from autospec.matrices.gallery import make_problem
from common import print_table

DEGREE = 10


def poisson2d(m: int) -> sp.csr_matrix:
    """5-point Laplacian on an m×m grid (Dirichlet), n = m²."""
    T = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(m, m))
    return (sp.kron(sp.eye(m), T) + sp.kron(T, sp.eye(m))).tocsr()


def interleaved(candidates: dict, repeats: int, warm: bool = True) -> dict[str, float]:
    """Minimum wall time (s) of each candidate, the candidates run in turn ``repeats`` times (after
    one untimed run each when ``warm``)."""
    for fn in candidates.values() if warm else ():
        fn()
    best = {name: float("inf") for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def bandwidth(repeats: int) -> float:
    """Bytes/s of a 256 MB copy (read + write)."""
    src = np.ones(32_000_000)
    dst = np.empty_like(src)
    seconds = interleaved({"copy": lambda: np.copyto(dst, src)}, repeats)["copy"]
    return 2 * src.nbytes / seconds


def spmv_row(A: sp.csr_matrix, bytes_per_s: float, repeats: int) -> tuple[dict, Callable[[], object]]:
    """SpMV kernels, each timed as DEGREE products back to back (so that its unit is measured over as
    long a stretch as the polynomial application it is compared with; a shared machine's noise hits
    both alike)."""
    n = A.shape[0]
    op = as_operator(A)
    x = torch.randn(n, dtype=torch.float64)
    y = torch.empty_like(x)
    xn, yn = x.numpy(), y.numpy()
    torch_csr = torch.sparse_csr_tensor(torch.from_numpy(A.indptr), torch.from_numpy(A.indices),
                                        torch.from_numpy(A.data), A.shape)
    kernels = {"scipy": lambda: A @ xn,
               "scipy into": lambda: _sparsetools.csr_matvec(n, n, A.indptr, A.indices, A.data, xn, yn),
               "torch csr": lambda: torch_csr @ x}
    csr = native.csr_of(op, x)
    if csr is not None:
        kernels["native"] = lambda: native.spmm(csr, x, y)
    times = {name: seconds / DEGREE for name, seconds in interleaved(
        {name: (lambda fn=fn: [fn() for _ in range(DEGREE)]) for name, fn in kernels.items()}, repeats).items()}
    floor = (A.data.nbytes + A.indices.nbytes + A.indptr.nbytes + 2 * x.numel() * 8) / bytes_per_s
    fastest = min(times, key=times.get)
    row = {"spmv ms": 1e3 * times[fastest], "kernel": fastest, "floor ms": 1e3 * floor,
           "scipy ms": 1e3 * times["scipy"], "torch csr ms": 1e3 * times["torch csr"]}
    return row, (lambda fn=kernels[fastest]: [fn() for _ in range(DEGREE)])


def with_unit(candidates: dict, unit: Callable, repeats: int, warm: bool = True) -> tuple[dict, float]:
    """:func:`interleaved` with ``unit`` (DEGREE products of the fastest SpMV kernel) among the
    candidates: every ratio's numerator and denominator are timed in the same rounds."""
    times = interleaved({**candidates, "unit": unit}, repeats, warm)
    return times, times.pop("unit") / DEGREE


def polynomial_row(A, unit: Callable, repeats: int) -> dict:
    op = as_operator(A)
    r = torch.randn(A.shape[0], dtype=torch.float64)
    a, b, s = torch.tensor(1e-3), torch.tensor(1.0), 8.0
    three, basis = chebyshev_three_term(a, b, DEGREE), chebyshev_basis_preconditioner(a, b, DEGREE)
    times, spmv = with_unit({
        "three": lambda: polynomial.apply(three, op, r, s),
        "basis": lambda: polynomial.apply(basis, op, r, s),
        "three stepwise": lambda: stepwise(polynomial.apply, three, op, r, s),
        "basis stepwise": lambda: stepwise(polynomial.apply, basis, op, r, s),
        "reference": lambda: three.apply(lambda V: op.matmat(V) / s, r.unsqueeze(-1)) / s,
    }, unit, repeats)
    wave = native.wave(op, native.csr_of(op, r), DEGREE)
    ratio = {name: seconds / (DEGREE * spmv) for name, seconds in times.items()}
    return {"wavefront": "no" if wave is None else f"lag {wave.lag}",
            "3-term step/SpMV": ratio["three"], "basis step/SpMV": ratio["basis"],
            "3-term stepwise": ratio["three stepwise"], "basis stepwise": ratio["basis stepwise"],
            "unfused step/SpMV": ratio["reference"]}


def stepwise(fn, *args):
    """``fn(*args)`` with the wavefront off: one pass over A per degree."""
    budget, native.WAVE_CACHE_BYTES = native.WAVE_CACHE_BYTES, 0
    try:
        return fn(*args)
    finally:
        native.WAVE_CACHE_BYTES = budget


def cg_row(A, b, iters: int, repeats: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        times = interleaved({
            "scipy": lambda: spla.cg(A, b, rtol=1e-300, maxiter=iters),
            "solve": lambda: autospec.solve(A, b, method="cg", rtol=1e-300, maxiter=iters),
            "pcg": lambda: autospec.pcg(A, b, rtol=1e-300, maxiter=iters),
        }, repeats, warm=False)
    return {"cg/scipy": times["solve"] / times["scipy"], "pcg/scipy": times["pcg"] / times["scipy"]}


def block_row(A, columns: int, iters: int, repeats: int) -> dict:
    """PCG on ``columns`` right-hand sides as one block against one vector solve per column."""
    B = np.random.default_rng(1).standard_normal((A.shape[0], columns))
    M = autospec.chebyshev_preconditioner(A, degree=DEGREE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        times = interleaved({
            "block": lambda: autospec.pcg(A, B, rtol=1e-300, maxiter=iters),
            "columns": lambda: [autospec.pcg(A, B[:, j], rtol=1e-300, maxiter=iters) for j in range(columns)],
            "block M": lambda: autospec.pcg(A, B, rtol=1e-300, maxiter=iters // DEGREE, M=M),
            "columns M": lambda: [autospec.pcg(A, B[:, j], rtol=1e-300, maxiter=iters // DEGREE, M=M)
                                  for j in range(columns)],
        }, repeats, warm=False)
    return {"block/columns": times["block"] / times["columns"], "block/columns (M)": times["block M"] / times["columns M"]}


def learned_row(A, b, unit: Callable, repeats: int) -> dict:
    count = [0]
    results = {}

    def scipy_cg():
        count[0] = 0
        spla.cg(A, b, rtol=1e-8, maxiter=20 * A.shape[0], callback=lambda _: count.__setitem__(0, count[0] + 1))

    def learned():
        results["info"] = autospec.solve(A, b, method="autospec", rtol=1e-8)[1]

    times, spmv = with_unit({"scipy": scipy_cg, "learned": learned}, unit, repeats, warm=False)
    info = results["info"]
    return {"cg iters": count[0], "pcg outer": info.outer_iters, "pcg converged": info.converged,
            "matvec overhead": info.outer_iters * (info.degree + 1) / count[0],
            "pcg/scipy cg": times["learned"] / times["scipy"],
            "pcg per-matvec/SpMV": times["learned"] / (info.matvecs * spmv),
            "probe in solve (SpMV)": info.probe_seconds / spmv}


def probe_row(A, unit: Callable, repeats: int) -> dict:
    op = as_operator(A)
    probes = {}

    def run(reorth):
        probes[reorth] = lanczos(op, steps=50, seed=0, reorth=reorth)

    times, spmv = with_unit({"partial": lambda: run("partial")}, unit, repeats)
    full = interleaved({"full": lambda: run("full")}, 1, warm=False)  # hundreds of SpMVs: once
    return {"probe (SpMV)": times["partial"] / spmv, "probe self-reported": probes["partial"].spmv_equivalents,
            "reorths": probes["partial"].reorthogonalisations, "full-reorth probe (SpMV)": full["full"] / spmv,
            "max |Δθ|/θmax": float((probes["full"].ritz - probes["partial"].ritz).abs().max() / probes["full"].ritz[-1])}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grids", type=int, nargs="*", default=[500, 1000])
    parser.add_argument("--problems", nargs="*", default=[],
                        help="also these gallery problems (autospec.matrices.gallery, e.g. poisson3d_100)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cg-iters", type=int, default=200)
    parser.add_argument("--skip-learned", action="store_true", help="no full learned-PCG/SciPy solves")
    parser.add_argument("--block", type=int, default=0, help="also PCG on this many right-hand sides as a block")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Sparse (CSR tensor support|invariant checks)")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, native kernels "
          f"{'on' if native.library() is not None else 'off'}, CUDA {torch.cuda.is_available()}", flush=True)
    bytes_per_s = bandwidth(args.repeats)
    print(f"copy bandwidth {bytes_per_s / 1e9:.1f} GB/s", flush=True)
    rows = []
    problems = [(f"poisson2d_{grid}", lambda grid=grid: poisson2d(grid)) for grid in args.grids]
    problems += [(name, lambda name=name: make_problem(name)[1]) for name in args.problems]
    for name, build in problems:
        A = build()
        b = np.random.default_rng(0).standard_normal(A.shape[0])
        row = {"problem": name, "n": A.shape[0], "nnz": A.nnz}
        spmv, unit = spmv_row(A, bytes_per_s, args.repeats)  # unit: DEGREE products of the fastest kernel
        row.update(spmv)
        row.update(polynomial_row(A, unit, args.repeats))
        row.update(cg_row(A, b, args.cg_iters, args.repeats))
        row.update(probe_row(A, unit, args.repeats))
        if args.block:
            row.update(block_row(A, args.block, args.cg_iters, args.repeats))
        if not args.skip_learned:
            row.update(learned_row(A, b, unit, args.repeats))
        rows.append(row)
        print(row, flush=True)
    columns = list(dict.fromkeys(c for row in rows for c in row))
    for start in range(0, len(columns), 8):
        print_table(rows, ["problem", *[c for c in columns[start:start + 8] if c not in ("problem", "n")]])


if __name__ == "__main__":
    main()
