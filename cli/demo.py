"""``allocator demo [--start --end --out DIR]``: the end-to-end demo on the bundled real prices
(see :mod:`demo.runner`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from allocator.settings import load_settings
from demo.runner import (
    DEFAULT_END,
    DEFAULT_START,
    DEFAULT_WARMUP,
    DemoPlan,
    run_demo,
    summary_text,
)

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="six reference strategies on real S&P 500 history through the whole allocator",
        description=(
            "Backfill the bars with the paper broker through the same core as production, run "
            "the last session through Dagster (rebalance_job, bar_job, dashboard) on "
            "$DAGSTER_HOME, print the summary and the dashboard's path."
        ),
    )
    p.add_argument("--start", default=DEFAULT_START, help=f"first bar (default {DEFAULT_START})")
    p.add_argument("--end", default=DEFAULT_END, help=f"last bar (default {DEFAULT_END})")
    p.add_argument(
        "--warmup",
        type=int,
        default=DEFAULT_WARMUP,
        help=f"sessions of returns before the first bar (default {DEFAULT_WARMUP})",
    )
    p.add_argument(
        "--out", default="out/demo", help="output folder, wiped first (default out/demo)"
    )
    p.add_argument(
        "--config", default="", help="allocator TOML (default: ALLOCATOR_CONFIG, else SPEC's)"
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(config=args.config or None)  # --config, else ALLOCATOR_CONFIG
    plan = DemoPlan(
        out_dir=Path(args.out).resolve(),
        start=args.start,
        end=args.end,
        warmup=args.warmup,
        config=settings.config,
        config_path=str(Path(settings.config_path).resolve()) if settings.config_path else "",
    )
    result = run_demo(plan, progress=lambda msg: print(msg, flush=True))
    print(summary_text(result, plan.start))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``allocator demo`` without the main CLI (``python -m cli.demo``)."""
    parser = argparse.ArgumentParser(prog="allocator")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["demo", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.handler(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
