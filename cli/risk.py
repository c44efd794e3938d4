"""``allocator halt|reduce-only|resume``: the operator's trading-state commands (§12.5).

docs/spec-12-risk.md. Each command journals one row of the ledger's trading-state journal
(``Ledger.set_trading_state``) with who (``--by``, default ``$USER``) and why (``--reason``,
required), for the book or, with ``--venue``, for one venue:

* ``allocator halt [--venue V] --reason WHY``: nothing is sent (to ``V``);
* ``allocator reduce-only [--venue V] --reason WHY``: exits only, and no symbol's net grows;
* ``allocator resume [--venue V] --reason WHY``: back to ``active``; on the book it also clears
  the kill switch's latch (its peak and session start are marked afresh from the next bar).

The state takes effect at the next bar, including one already sealed or planned whose orders
are not journaled yet (the send-time gate of :func:`allocator.execution.bar.run_bar`). Exit 0;
2 on bad input. Each prints the states in force afterwards.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from allocator.execution.orders import Venue
from allocator.settings import load_settings
from allocator.states import TradingState

__all__ = ["register"]

_COMMANDS = {
    "halt": (TradingState.HALTED, "halt the book (or one venue): nothing is sent"),
    "reduce-only": (
        TradingState.REDUCING,
        "put the book (or one venue) in reducing: exits only, no symbol's net grows",
    ),
    "resume": (TradingState.ACTIVE, "resume the book (or one venue); clears the kill switch"),
}


def register(subparsers: Any) -> None:
    """Add ``halt``, ``reduce-only`` and ``resume`` to the ``allocator`` command."""
    for name, (state, text) in _COMMANDS.items():
        cmd = subparsers.add_parser(name, help=text)
        cmd.add_argument("--venue", choices=[v.value for v in Venue], help="one venue only")
        cmd.add_argument("--reason", required=True, help="why (journaled)")
        cmd.add_argument("--by", help="who (default: $USER; journaled)")
        cmd.add_argument("--ledger", help="ledger URL (over ALLOCATOR_LEDGER_URL and the config)")
        cmd.add_argument("--config", type=Path, help="allocator TOML config (or ALLOCATOR_CONFIG)")
        cmd.set_defaults(handler=_handler(name, state))


def _handler(name: str, state: TradingState) -> Any:
    def run(args: argparse.Namespace) -> int:
        from resources.ledger import Ledger

        if not args.reason.strip():
            print(f"allocator {name}: error: --reason must not be empty", file=sys.stderr)
            return 2
        settings = load_settings(config=args.config, ledger_url=args.ledger)
        who = args.by or os.environ.get("USER") or getpass.getuser()
        ledger = Ledger(settings.ledger_url)
        try:
            change = ledger.set_trading_state(
                state,
                by=f"{who} (allocator {name})",
                reason=args.reason,
                venue=args.venue,
            )
            status = ledger.trading_status()
        finally:
            ledger.close()
        scope = "the book" if args.venue is None else f"venue {args.venue}"
        print(f"{scope}: {change.state} ({change.describe()}); takes effect at the next bar")
        venues = ", ".join(f"{v}={status.venue(v)}" for v in Venue)
        print(f"trading_state {status.book}; venue_states {venues}")
        return 0

    return run


def check_trading_state(ctx: Any) -> list[Any]:
    """``allocator doctor``'s finding: the book's and the venues' trading states (§12.5) and
    the latest risk denials; ``warn`` while anything is not ``active``."""
    from cli.doctor import Verdict, finding

    if ctx.settings is None or not ctx.ledger_at_head:
        why = "the config does not load" if ctx.settings is None else "the ledger is not at head"
        return [finding("trading_state", Verdict.WARN, f"not checked: {why}")]
    ledger = ctx.ledger()
    status = ledger.trading_status()
    denials = ledger.risk_denials(limit=5)
    stopped = [f"{v} {s}" for v, s in sorted(status.venues.items()) if s is not TradingState.ACTIVE]
    last = "; ".join(f"{d.bar} {d.intent_id} {d.reason}" for d in denials) or "none"
    message = (
        f"book {status.book}"
        + (f" ({status.detail('book')})" if status.book is not TradingState.ACTIVE else "")
        + (f"; venues not active: {', '.join(stopped)}" if stopped else "; every venue active")
        + f"; last denials: {last}"
    )
    ok = status.book is TradingState.ACTIVE and not stopped
    return [finding("trading_state", Verdict.OK if ok else Verdict.WARN, message)]


DOCTOR_CHECKS = [check_trading_state]
"""The checks ``allocator doctor`` runs from this module (``cli.doctor.CHECK_MODULES``)."""
