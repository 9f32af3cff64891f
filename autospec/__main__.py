"""Command line: ``python -m autospec export CKPT OUT``, ``python -m autospec list`` and
``python -m autospec labels OUT`` (the labelled set of the learned linsys choice)."""

from __future__ import annotations

import argparse
import sys

from autospec.engine.artifact import shipped_names
from autospec.errors import AutospecError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autospec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="export a Lightning checkpoint to <OUT>.safetensors + <OUT>.json")
    export.add_argument("checkpoint")
    export.add_argument("out")
    sub.add_parser("list", help="list the shipped engines")
    labels = sub.add_parser("labels", help="count PCG iterations of every linsys candidate on training spectra")
    labels.add_argument("out")
    labels.add_argument("--synthetic", type=int, default=2000, help="synthetic spectra (all families)")
    labels.add_argument("--operators", type=int, default=600, help="spectra of random sparse SPD operators")
    labels.add_argument("--seed", type=int, default=1)
    labels.add_argument("--jobs", type=int, default=1, help="worker processes")
    args = parser.parse_args(argv)
    try:
        if args.command == "export":
            from autospec.training.export import export_checkpoint  # Lightning: only for this command

            print(export_checkpoint(args.checkpoint, args.out))
        elif args.command == "labels":
            from autospec.linsys.labels import write_labels

            print(write_labels(args.out, args.synthetic, args.operators, args.seed, jobs=args.jobs))
        else:
            print("\n".join(shipped_names()))
    except AutospecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
