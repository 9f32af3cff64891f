"""Deflated ``method="autospec"`` solves on the shared SPD matrices (100 <= n <= 3000, symmetric
pattern and values; unscaled and Jacobi-scaled, rtol 1e-8): outer iterations, the iterations PCG
needed on ``A x = b`` after the deflated system met the tolerance, converged and the true residual.

    OMP_NUM_THREADS=1 python benchmarks/check_deflated_finish.py
"""
import glob, os, numpy as np, scipy.sparse as sp, torch, autospec, warnings
torch.set_num_threads(1); warnings.simplefilter("ignore")
rows = []
for path in sorted(glob.glob(os.environ.get("AUTOSPEC_SHARED", "../shared") + "/data/suitesparse/*.mtx")):
    try:
        A = sp.csr_matrix(autospec.read_matrix(path))
    except Exception:
        continue
    if A.shape[0] != A.shape[1] or A.shape[0] > 3000 or A.shape[0] < 100 or abs(A - A.T).max() > 0:
        continue
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    for scaling in ("none", "jacobi"):
        try:
            x, info = autospec.solve(A, b, method="autospec", scaling=scaling, rtol=1e-8)
        except autospec.AutospecError:
            continue
        if info.deflated:
            more = info.message.split(": ")[1].split(" more")[0] if "more iterations" in info.message else "0"
            rows.append((os.path.basename(path)[:-4], scaling, info.outer_iters, int(more), info.converged, info.rel_residual))
            print(*rows[-1], flush=True)
print("deflated runs", len(rows), "converged", sum(r[4] for r in rows), "continued", sum(r[3] > 0 for r in rows),
      "extra iterations", [r[3] for r in rows if r[3]])
