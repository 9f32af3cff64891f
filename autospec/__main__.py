"""Command line: ``python -m autospec export CKPT OUT`` and ``python -m autospec list``."""

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
    args = parser.parse_args(argv)
    try:
        if args.command == "export":
            from autospec.training.export import export_checkpoint  # Lightning: only for this command

            print(export_checkpoint(args.checkpoint, args.out))
        else:
            print("\n".join(shipped_names()))
    except AutospecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
