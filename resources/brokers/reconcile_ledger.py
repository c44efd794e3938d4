"""What the ledger expects at one venue, for :func:`allocator.execution.reconcile.reconcile`.

The ledger holds virtual positions per strategy and an order journal with each order's venue.
A venue's expected position in a symbol is the sum of the strategies' virtual positions in the
symbols the journal routed to that venue; its expected open orders are the journal's
``submitted``/``partially_filled`` orders there. Orders the journal has as ``pending_submit``
or ``unknown`` may or may not be open: they are passed on as uncertain, to be resolved by a
lookup, not counted as differences. The ledger is opened (and created) on demand at
``ALLOCATOR_LEDGER_URL`` or the ledger's default URL.

:func:`record_report` stores a reconciliation's outcome (SPEC §9): differences halt new entries
on the venue until a later clean reconciliation clears them. :func:`halt_check` is the pure
verdict an asset check (or any monitor) draws from ``Ledger.venue_halts()``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from allocator.execution.orders import OrderState, Venue
from allocator.execution.reconcile import ExpectedOrder, ReconciliationReport, reconcile

if TYPE_CHECKING:
    from resources.ledger import Ledger, ReconciliationRecord

__all__ = [
    "HaltCheck",
    "LedgerExpectation",
    "RecordedReconciliation",
    "expectation_of",
    "halt_check",
    "ledger_expectation",
    "ledger_url",
    "reconcile_at_start",
    "record_report",
]

_OPEN = {OrderState.SUBMITTED.value, OrderState.PARTIALLY_FILLED.value}
_UNCERTAIN = {OrderState.PENDING_SUBMIT.value, OrderState.UNKNOWN.value}


@dataclass(frozen=True, kw_only=True, slots=True)
class LedgerExpectation:
    positions: Mapping[str, Decimal]
    open_orders: tuple[ExpectedOrder, ...]
    uncertain: frozenset[str]
    source: str


def ledger_url(url: str | None = None) -> str:
    """``url``, else ``ALLOCATOR_LEDGER_URL``, else the ledger's default SQLite file."""
    from resources.ledger import default_url

    return url or os.environ.get("ALLOCATOR_LEDGER_URL") or default_url()


def ledger_expectation(venue: Venue | str, url: str | None = None) -> LedgerExpectation:
    """What the ledger at ``url`` (opened and closed here) expects at ``venue``."""
    from resources.ledger import Ledger

    url = ledger_url(url)
    ledger = Ledger(url)
    try:
        source = url.split("://", 1)[0] + "://…" if "@" in url else url
        return expectation_of(ledger, venue, source=source)
    finally:
        ledger.close()


def expectation_of(ledger: Ledger, venue: Venue | str, *, source: str = "") -> LedgerExpectation:
    """What an open ledger expects at ``venue`` (positions, open and in-flight orders)."""
    venue = Venue(venue)
    journal = ledger.orders()
    virtual = ledger.positions()
    symbols = {str(o["symbol"]) for o in journal if o["venue"] == venue.value}
    positions: dict[str, Decimal] = {}
    for (_strategy, symbol), qty in virtual.items():
        if symbol in symbols:
            positions[symbol] = positions.get(symbol, Decimal(0)) + qty
    open_orders = tuple(
        ExpectedOrder(
            client_order_id=str(o["client_order_id"]),
            symbol=str(o["symbol"]),
            side=str(o["side"]),
            qty=o["qty"],
            filled_qty=o["filled_qty"],
        )
        for o in journal
        if o["venue"] == venue.value and o["state"] in _OPEN
    )
    uncertain = frozenset(
        str(o["client_order_id"])
        for o in journal
        if o["venue"] == venue.value and o["state"] in _UNCERTAIN
    )
    return LedgerExpectation(
        positions=positions, open_orders=open_orders, uncertain=uncertain, source=source
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordedReconciliation:
    """What :func:`record_report` stored: the new row and the halts it cleared (their ids)."""

    record: ReconciliationRecord
    cleared: tuple[int, ...]


def record_report(
    ledger: Ledger, venue: Venue | str, report: ReconciliationReport, *, source: str = ""
) -> RecordedReconciliation:
    """Store ``report`` for ``venue`` (the routing venue, whatever the adapter calls itself):
    a report with differences halts new entries there; a clean one clears the venue's halts."""
    venue = Venue(venue)
    before = ledger.venue_halts().get(venue.value)
    differences = [
        {"kind": str(d.kind), "key": d.key, "venue": d.venue_value, "ledger": d.ledger_value}
        for d in report.differences
    ]
    record = ledger.record_reconciliation(venue, differences, source=source)
    cleared: tuple[int, ...] = ()
    if report.ok and before is not None:
        cleared = tuple(r.id for r in ledger.reconciliations(venue) if r.cleared_by == record.id)
    return RecordedReconciliation(record=record, cleared=cleared)


@dataclass(frozen=True, kw_only=True, slots=True)
class HaltCheck:
    """The verdict on the venue halts in force: ``passed`` when there are none."""

    passed: bool
    description: str
    metadata: Mapping[str, Any]


def halt_check(halts: Mapping[str, ReconciliationRecord]) -> HaltCheck:
    """Pure: turn ``Ledger.venue_halts()`` into a pass/fail with a description and metadata
    (halted venues, since when, how many differences, the first few) for an asset check."""
    if not halts:
        return HaltCheck(
            passed=True,
            description="no venue is halted: every venue reconciled or never differed",
            metadata={"halted_venues": []},
        )
    lines = []
    for venue, record in sorted(halts.items()):
        shown = "; ".join(
            f"{d.get('kind')}: {d.get('key')} (venue {d.get('venue')}, ledger {d.get('ledger')})"
            for d in record.differences[:5]
        )
        more = len(record.differences) - 5
        lines.append(
            f"{venue}: halted since {record.checked_at.isoformat()} (reconciliation "
            f"{record.id}), {len(record.differences)} differences: {shown}"
            + (f"; {more} more" if more > 0 else "")
        )
    return HaltCheck(
        passed=False,
        description="new entries halted on " + ", ".join(sorted(halts)),
        metadata={
            "halted_venues": sorted(halts),
            "differences": {v: len(r.differences) for v, r in halts.items()},
            "since": {v: r.checked_at.isoformat() for v, r in halts.items()},
            "detail": "\n".join(lines),
        },
    )


def reconcile_at_start(
    ledger: Ledger, brokers: Mapping[Venue, Any], *, source: str
) -> dict[str, RecordedReconciliation | str]:
    """Reconcile every venue in ``brokers`` against ``ledger`` before a bar trades (SPEC §9)
    and record each outcome: a difference halts new entries there, a clean one clears a halt.

    A venue with orders still in flight in the journal (``pending_submit`` or ``unknown``: a
    crash between sending and recording) is not compared yet: its position legitimately differs
    until the bar resolves those orders by lookup, and a halt then would block the very
    recovery that settles it. Such venues map to the reason they were skipped.
    """
    outcome: dict[str, RecordedReconciliation | str] = {}
    for venue, broker in brokers.items():
        expected = expectation_of(ledger, venue, source=source)
        if expected.uncertain:
            outcome[venue.value] = f"skipped: {len(expected.uncertain)} order(s) in flight"
            continue
        report = reconcile(
            venue.value,
            venue_positions=broker.positions(),
            venue_open_orders=broker.open_orders(),
            ledger_positions=expected.positions,
            ledger_open_orders=expected.open_orders,
            ledger_uncertain=expected.uncertain,
        )
        outcome[venue.value] = record_report(ledger, venue, report, source=source)
    return outcome
