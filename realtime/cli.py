"""The ``realtime`` command line."""

from __future__ import annotations

import argparse
import sys

from realtime import assets


def _models(args: argparse.Namespace) -> int:
    prepared = assets.prepare_all(reverify=args.verify)
    for name, path in prepared.items():
        print(f"{name}: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="realtime", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    models = commands.add_parser("models", help="assemble and verify the embedded model files")
    models.add_argument("--prepare", action="store_true", help="assemble missing files (the default)")
    models.add_argument("--verify", action="store_true", help="re-hash every file, even verified ones")
    models.set_defaults(handler=_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except assets.ModelIntegrityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
