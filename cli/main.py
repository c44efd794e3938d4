"""The ``allocator`` command line: one sub-command per capability.

Each capability module exposes ``register(subparsers)``; a handler returns the process exit
code. Errors the allocator raises on purpose (bad input, bad config) print one line that names
the file, row and problem and exit 2; nothing is half-written.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from allocator.errors import AllocatorError

__all__ = ["main"]

# Modules that add sub-commands; each has ``register(subparsers) -> None``.
_COMMAND_MODULES = (
    "cli.replay",
    "cli.execution",
    "cli.broker",
    "cli.demo",
    "cli.bar",
    "cli.book",
    "cli.rebalance",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="allocator", description="Run several trading strategies as one portfolio."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # capability not built in this checkout
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except AllocatorError as exc:
        print(f"allocator {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
