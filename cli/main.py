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
    "cli.sweep",
    "cli.execution",
    "cli.broker",
    "cli.demo",
    "cli.bar",
    "cli.book",
    "cli.rebalance",
    "cli.risk",
    "cli.gateway",
    "cli.doctor",
    "cli.up",
)


# Commands whose module alone is imported when they are the one run: the research commands
# are run from the shell in loops, and importing every capability (venue libraries, polars,
# Dagster's settings) would cost them about a second of start-up (``replay_cli_wall_s``).
_LIGHT_COMMANDS = {"replay": "cli.replay", "sweep": "cli.sweep"}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="allocator", description="Run several trading strategies as one portfolio."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES if only is None else (only,):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # capability not built in this checkout
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_LIGHT_COMMANDS.get(args_list[0]) if args_list else None)
    args = parser.parse_args(args_list)
    try:
        code: int = args.handler(args)
    except AllocatorError as exc:
        print(f"allocator {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
