"""``allocator replay RETURNS --out DIR [--config FILE] [--no-pairs]`` (SPEC §11)."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from allocator.config import AllocatorConfig
from allocator.data import build_panel, load_returns
from allocator.replay import replay
from allocator.report import PairsWriter, format_table, write_allocations, write_events
from allocator.settings import load_settings

__all__ = ["register", "run_replay"]


def run_replay(
    returns: Path, out: Path, config: AllocatorConfig, *, pairs: bool = True
) -> tuple[str, Counter[str]]:
    """Replay ``returns`` and write the three files into ``out``.

    Files are written into a temporary folder beside ``out`` and moved in only when all are
    complete, so a failure never leaves a half-written result. Returns the final allocation
    table and the count of events per kind.
    """
    panel = build_panel(load_returns(returns), config.calendar.name)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".replay-", dir=out))
    try:
        if pairs:
            with (staging / "pairs.csv").open("w", newline="", encoding="utf-8") as fh:
                result = replay(panel, config, on_pairs=PairsWriter(fh, panel.strategies))
        else:
            result = replay(panel, config)
        write_allocations(result, staging / "allocations.csv")
        write_events(result.events, staging / "events.csv")
        for produced in staging.iterdir():
            os.replace(produced, out / produced.name)
        if not pairs and (out / "pairs.csv").exists():
            (out / "pairs.csv").unlink()  # a stale file from an earlier run would mislead
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return format_table(result), Counter(e.kind for e in result.events)


def _handle(args: argparse.Namespace) -> int:
    config = load_settings(config=args.config).config  # --config, else ALLOCATOR_CONFIG
    table, counts = run_replay(Path(args.returns), Path(args.out), config, pairs=not args.no_pairs)
    print(table)
    summary = ", ".join(f"{counts[k]} {k}" for k in ("rebalance", "bench", "readmit", "breaker"))
    print(f"\nevents: {summary}; files in {args.out}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "replay",
        help="run the allocation rules over a returns history (SPEC §11)",
        description="Replay SPEC §1-§6 over RETURNS and write allocations.csv, pairs.csv and "
        "events.csv into DIR.",
    )
    p.add_argument("returns", metavar="RETURNS", help="CSV or Parquet: date,strategy,return")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument(
        "--config", metavar="FILE", help="TOML config (SPEC §11 keys; default ALLOCATOR_CONFIG)"
    )
    p.add_argument(
        "--no-pairs",
        action="store_true",
        help="skip pairs.csv (it grows as sessions x strategies^2)",
    )
    p.set_defaults(handler=_handle)
