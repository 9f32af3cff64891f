"""Acceptance run of the matrix-function evaluation (issue 5, item 4): held-out synthetic spectra,
the shared SuiteSparse collection and optimizer-state matrices, every setting of
``conf/eval/matfun.yaml``.

    python benchmarks/bench_matfun.py [--matrix-dir ../shared/data/suitesparse] [--max-n 1000]
                                      [--n 256] [--output-dir DIR] [--no-plots] [--only apply ...]

Same as ``python evaluate.py task=matfun eval.suitesparse.matrix_dir=DIR eval.suitesparse.max_n=N``
(the settings are read from ``conf/eval/matfun.yaml``; ``--max-n`` caps the dense SuiteSparse
matrices to keep the run near 15 minutes on 2 shared cores). Prints the summary table (the same as
in ``results.md``) and the wall time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import REPO, SHARED
from omegaconf import OmegaConf

from autospec.evaluation.matfun import evaluate_matfun, summary_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matrix-dir", type=Path, default=SHARED)
    parser.add_argument("--max-n", type=int, default=1000, help="largest SuiteSparse n (dense GEMM iterations)")
    parser.add_argument("--n", type=int, default=256, help="size of the synthetic cases")
    parser.add_argument("--output-dir", type=Path, default=REPO / "outputs" / "bench_matfun")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="+", default=None, metavar="FUNCTION",
                        help="keep only these settings' functions (inv_sqrt sqrt polar apply)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cfg = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "eval" / "matfun.yaml"))
    cfg.pop("output_dir")
    cfg["suitesparse"].update(matrix_dir=str(args.matrix_dir), max_n=args.max_n)
    cfg["synthetic"]["n"] = args.n
    cfg["plots"] = not args.no_plots
    if args.only:
        cfg["functions"] = [f for f in cfg["functions"] if f["function"] in args.only]
    start = time.perf_counter()
    result = evaluate_matfun(args.output_dir, **cfg)
    failed = [r for r in result.rows if r.error]
    print(f"\n{summary_table(result.summary)}\n")
    print(f"{len(result.rows)} rows ({len(failed)} failed) over {len({r.case for r in result.rows})} cases in "
          f"{time.perf_counter() - start:.0f} s; per-case tables: {result.markdown}")


if __name__ == "__main__":
    main()
