"""``allocator replay RETURNS --out DIR [--config FILE] [--no-pairs] [--cash-rate R] [--cost C]``.

SPEC §11's three files, then what the decisions did for the book: ``book.csv``,
``summary.json`` and ``report.html`` (:mod:`allocator.book`, :mod:`allocator.report`).
Heavy modules (numba, the engine) are imported inside :func:`run_replay`, so that
``allocator replay --help`` and the parser stay quick. A CSV replay imports neither pandas nor
Plotly's Python package nor ``exchange_calendars`` once the calendar is cached
(:mod:`allocator.data`, :mod:`allocator.figures`, :mod:`allocator.calendar`): the command is
run from the shell in loops, and those imports were most of its wall time
(``replay_cli_wall_s``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from allocator.errors import ConfigError

if TYPE_CHECKING:
    from allocator.config import AllocatorConfig

__all__ = ["register", "run_replay"]


def run_replay(
    returns: Path,
    out: Path,
    config: AllocatorConfig,
    *,
    pairs: bool = True,
    cash_rate: float = 0.0,
    cost: float = 0.0,
    report: bool = True,
) -> tuple[str, Counter[str]]:
    """Replay ``returns`` and write the files into ``out``.

    ``allocations.csv``, ``pairs.csv`` (unless ``pairs`` is false), ``events.csv``,
    ``book.csv``, ``summary.json`` and ``report.html`` (unless ``report`` is false). Files are
    written into a temporary folder beside ``out`` and moved in only when all are complete, so
    a failure never leaves a half-written result. Returns the final allocation table and the
    count of events per kind.
    """
    import numpy as np

    from allocator.book import book_of, summarize
    from allocator.data import build_panel, load_returns
    from allocator.replay import replay
    from allocator.report import (
        PairsWriter,
        format_table,
        replay_report,
        write_allocations,
        write_book,
        write_events,
        write_summary,
    )

    for name, value, lo, hi in (("--cash-rate", cash_rate, -1.0, 1.0), ("--cost", cost, 0.0, 1.0)):
        if not lo <= value <= hi:
            raise ConfigError(name, f"must lie in [{lo:g}, {hi:g}], got {value!r}")
    panel = build_panel(load_returns(returns), config.calendar.name)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".replay-", dir=out))
    try:
        flags = None
        if pairs:
            writer_rows: list[tuple[str, str]] = []
            names = panel.strategies
            a_idx, b_idx = np.triu_indices(len(names), k=1)
            with (staging / "pairs.csv").open("w", newline="", encoding="utf-8") as fh:
                writer = PairsWriter(fh, names)

                def on_pairs(date: np.datetime64, stream: Any, persistence: int) -> None:
                    writer(date, stream, persistence)
                    for p in np.flatnonzero(stream.breach_run >= persistence).tolist():
                        pair = f"{names[int(a_idx[p])]} / {names[int(b_idx[p])]}"
                        writer_rows.append((str(date)[:10], pair))

                result = replay(panel, config, on_pairs=on_pairs)
            flags = writer_rows
        else:
            result = replay(panel, config)
        write_allocations(result, staging / "allocations.csv")
        write_events(result.events, staging / "events.csv")
        ann = config.sizing.annualization
        book = book_of(result, panel.values, cash_rate=cash_rate, cost=cost, annualization=ann)
        summary = summarize(book, result.events, ann)
        write_book(book, staging / "book.csv")
        write_summary(summary, staging / "summary.json")
        if report:
            page = replay_report(
                panel, result, book, summary, config, flags=flags, cash_rate=cash_rate, cost=cost
            )
            (staging / "report.html").write_text(page, encoding="utf-8")
        for produced in staging.iterdir():
            os.replace(produced, out / produced.name)
        if not pairs and (out / "pairs.csv").exists():
            (out / "pairs.csv").unlink()  # a stale file from an earlier run would mislead
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return format_table(result), Counter(e.kind for e in result.events)


def _handle(args: argparse.Namespace) -> int:
    from allocator.settings import load_settings

    config = load_settings(config=args.config).config  # --config, else ALLOCATOR_CONFIG
    table, counts = run_replay(
        Path(args.returns),
        Path(args.out),
        config,
        pairs=not args.no_pairs,
        cash_rate=args.cash_rate,
        cost=args.cost,
        report=not args.no_report,
    )
    print(table)
    summary = ", ".join(f"{counts[k]} {k}" for k in ("rebalance", "bench", "readmit", "breaker"))
    print(f"\nevents: {summary}; files in {args.out}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "replay",
        help="run the allocation rules over a returns history (SPEC §11)",
        description="Replay SPEC §1-§6 over RETURNS and write allocations.csv, pairs.csv, "
        "events.csv, book.csv, summary.json and report.html into DIR.",
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
    p.add_argument(
        "--cash-rate",
        type=float,
        default=0.0,
        metavar="RATE",
        help="annual rate earned by capital not allocated (default 0: cash earns nothing)",
    )
    p.add_argument(
        "--cost",
        type=float,
        default=0.0,
        metavar="C",
        help="cost per unit of turnover, a fraction of the capital moved (0.001 = 10 bp)",
    )
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.set_defaults(handler=_handle)
