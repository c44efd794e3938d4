"""``allocator rebalance [--date D]``: publish the allocation from the ledger's returns.

The same code as the rebalance job (:mod:`allocator.rebalance`, called by ``assets/rules.py``):
the ledger's returns through session ``D`` (default: every stored return, so the last session
with returns) are replayed and the decision of that session is written to the ledger, its
allocations and its events, exactly the rows the job writes. Exit 0 when published, 2 on bad
input (no returns, ``D`` not a date, or not a session with returns).

The rebalance job's data-quality checks (Great Expectations) are Dagster asset checks and do
not run here.
"""

from __future__ import annotations

import argparse
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from allocator.errors import InputError
from allocator.rebalance import decide, published_rows, returns_frame
from allocator.settings import load_settings

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``rebalance`` to the ``allocator`` command."""
    cmd = subparsers.add_parser(
        "rebalance", help="publish the allocation from the ledger's returns (as rebalance_job)"
    )
    cmd.add_argument("--date", help="the decision session YYYY-MM-DD (default: the last)")
    cmd.add_argument("--ledger", help="ledger URL (over ALLOCATOR_LEDGER_URL and the config)")
    cmd.add_argument("--config", type=Path, help="allocator TOML config (or ALLOCATOR_CONFIG)")
    cmd.set_defaults(handler=_rebalance)


def _rebalance(args: argparse.Namespace) -> int:
    from resources.ledger import Ledger

    through: str | None = None
    if args.date is not None:
        text = args.date.strip()
        try:
            if len(text) != 10:
                raise ValueError
            through = date.fromisoformat(text).isoformat()
        except ValueError:
            raise InputError("--date", None, f"{args.date[:40]!r} is not YYYY-MM-DD") from None
    settings = load_settings(config=args.config, ledger_url=args.ledger)
    ledger = Ledger(settings.ledger_url)
    try:
        frame = returns_frame(ledger.returns(), through)
        if not frame["return"].notna().any():
            where = f" through {through}" if through else ""
            raise InputError("ledger:daily_returns", None, f"no returns{where}")
        decision = decide(frame, settings.config)
        if through is not None and decision.session != through:
            raise InputError(
                "--date",
                None,
                f"{through} is not a session with returns (the last one up to it is "
                f"{decision.session})",
            )
        rows, events = published_rows(decision.breaker, decision.events)
        ledger.write_allocations(rows)
        ledger.write_events(events)
    finally:
        ledger.close()
    total = sum((r.capital for r in rows), Decimal(0))
    print(
        f"rebalance {decision.session}: {len(rows)} allocation(s) published "
        f"(capital deployed {total}), {len(events)} event(s)"
    )
    return 0
