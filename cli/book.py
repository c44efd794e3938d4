"""``allocator book [--json]``: the ledger's book per venue, per strategy, and cash.

``--json`` prints one object, ``{"venues": {VENUE: {SYMBOL: QTY}}, "strategies": {STRATEGY:
{SYMBOL: QTY}}, "cash": {STRATEGY: AMOUNT}, "fees_in_kind": {STRATEGY: {CURRENCY: AMOUNT}}}``
(fees paid in a third currency such as BNB), ``"trading_state": "active"|"reducing"|"halted"``,
``"venue_states": {VENUE: STATE}``, ``"trading_state_detail"`` (who set it and why) and
``"last_denials"`` (the risk stage's latest denials, newest first, each with its bar, intent,
reason, limit and value; docs/spec-12-risk.md), every figure an exact decimal string; readers
must ignore keys they do not know (later versions add some). A symbol's venue is the one the
journal last routed it to, else routing's (:func:`allocator.execution.routing.venue_of`).
Without ``--json`` the same figures print as tables. Exit 0, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from allocator.execution.instruments import DEFAULT_INSTRUMENTS, InstrumentTable, load_instruments
from allocator.execution.routing import venue_of
from allocator.settings import load_settings

__all__ = ["book_of", "register"]


def register(subparsers: Any) -> None:
    """Add ``book`` to the ``allocator`` command."""
    book = subparsers.add_parser("book", help="the ledger's positions per venue and strategy")
    book.add_argument("--json", action="store_true", help="one JSON object, decimals as strings")
    book.add_argument("--ledger", help="ledger URL (over ALLOCATOR_LEDGER_URL and the config)")
    book.add_argument("--config", type=Path, help="allocator TOML config (or ALLOCATOR_CONFIG)")
    book.add_argument("--instruments", type=Path, help="symbol table CSV (default: bundled)")
    book.set_defaults(handler=_book)


def _text(value: Decimal) -> str:
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return format(value.normalize(), "f")


def book_of(ledger: Any, instruments: InstrumentTable) -> dict[str, Any]:
    """The book as the JSON object ``allocator book --json`` prints."""

    def fallback(symbol: str) -> str | None:
        inst = instruments.get(symbol)
        return None if inst is None else venue_of(inst).value

    venues = ledger.venue_positions(fallback)
    strategies: dict[str, dict[str, str]] = {}
    for (strategy, symbol), qty in sorted(ledger.positions().items()):
        strategies.setdefault(strategy, {})[symbol] = _text(qty)
    return {
        "venues": {
            v: {s: _text(q) for s, q in sorted(held.items())} for v, held in sorted(venues.items())
        },
        "strategies": strategies,
        "cash": {s: _text(a) for s, a in sorted(ledger.cash().items())},
        # fees paid in a third currency (BNB), neither cash nor a position: strategy -> currency
        "fees_in_kind": {
            s: {c: _text(a) for c, a in sorted(held.items())}
            for s, held in sorted(ledger.fees_in_kind().items())
        },
        **risk_of(ledger),
    }


LAST_DENIALS = 20
"""How many of the latest risk denials ``book`` shows."""


def risk_of(ledger: Any) -> dict[str, Any]:
    """The book's trading state, each venue's, and the latest risk denials (§12, JSON-ready)."""
    status = ledger.trading_status()
    return {
        "trading_state": status.book.value,
        "venue_states": {v.value: s.value for v, s in sorted(status.venues.items())},
        "trading_state_detail": status.detail("book"),
        "last_denials": [
            {
                "bar": d.bar,
                "stage": d.stage,
                "intent_id": d.intent_id,
                "strategy": d.strategy,
                "symbol": d.symbol,
                "reason": d.reason.value,
                "requested_qty": _text(d.requested_qty),
                "accepted_qty": _text(d.accepted_qty),
                "limit": None if d.limit is None else _text(d.limit),
                "value": None if d.value is None else _text(d.value),
                "detail": d.detail,
            }
            for d in ledger.risk_denials(limit=LAST_DENIALS)
        ],
    }


def _book(args: argparse.Namespace) -> int:
    from resources.ledger import Ledger

    settings = load_settings(
        config=args.config, ledger_url=args.ledger, instruments=args.instruments
    )
    table = load_instruments(settings.instruments) if settings.instruments else DEFAULT_INSTRUMENTS
    ledger = Ledger(settings.ledger_url)
    try:
        book = book_of(ledger, table)
    finally:
        ledger.close()
    if args.json:
        print(json.dumps(book, sort_keys=False))
        return 0
    for title, key in (("venue", "venues"), ("strategy", "strategies")):
        rows = [(owner, s, q) for owner, held in book[key].items() for s, q in held.items()]
        print(f"{title:<16} {'symbol':<16} {'qty':>20}")
        for owner, symbol, qty in rows or [("(none)", "", "")]:
            print(f"{owner:<16} {symbol:<16} {qty:>20}")
        print()
    print(f"{'strategy':<16} {'cash':>37}")
    for strategy, amount in book["cash"].items() or [("(none)", "")]:
        print(f"{strategy:<16} {amount:>37}")
    print()
    venues = ", ".join(f"{v} {s}" for v, s in book["venue_states"].items())
    print(f"trading state: {book['trading_state']} (venues: {venues})")
    if book["trading_state_detail"]:
        print(f"  {book['trading_state_detail']}")
    for d in book["last_denials"]:
        print(f"  denied {d['bar']} {d['intent_id']} {d['symbol']}: {d['reason']}: {d['detail']}")
    return 0
