"""Reconciliation of each venue against the ledger (SPEC §9): compare, record, and the verdict.

:func:`reconcile` is the pure comparison: the venue's positions and open orders against what
the ledger expects (:class:`~.ledger.LedgerExpectation`). Every difference is reported as a
:class:`Difference`; a report with any difference means new entries on that venue are halted
until a person resolves it. Nothing is overwritten here. :func:`record_report` stores a report
through the :class:`~.ledger.Ledger` protocol (differences halt the venue, a clean report clears
its halts); :func:`reconcile_venue` does both for one venue (the bar's and the operator's one
path, the crypto baseline included) and :func:`reconcile_at_start` for every venue before a bar
trades; and
:func:`halt_check` is the pure verdict an asset check (or any monitor) draws from the halts in
force.

Why the orchestration lives here with the comparison rather than with the store: when a venue
is compared, when it is skipped and what halts it are SPEC §9 rules, the same for the bar job
and the operator's ``allocator broker reconcile``; the ledger only answers and records.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from allocator.execution.ledger import (
    ExpectedOrder,
    Ledger,
    LedgerExpectation,
    ReconciliationRecord,
)
from allocator.execution.orders import Broker, BrokerOrder, Venue

__all__ = [
    "Difference",
    "DifferenceKind",
    "ExpectedOrder",
    "HaltCheck",
    "ReconciliationReport",
    "RecordedReconciliation",
    "VenueReconciliation",
    "baseline_of",
    "halt_check",
    "reconcile",
    "reconcile_at_start",
    "reconcile_venue",
    "record_report",
]


class DifferenceKind(enum.StrEnum):
    """What :func:`reconcile` found to differ between a venue and the ledger."""

    POSITION_MISMATCH = "position_mismatch"  # both sides hold the symbol, quantities differ
    UNEXPECTED_POSITION = "unexpected_position"  # at the venue, not in the ledger
    MISSING_POSITION = "missing_position"  # in the ledger, not at the venue
    UNEXPECTED_OPEN_ORDER = "unexpected_open_order"  # open at the venue, not open in the ledger
    MISSING_OPEN_ORDER = "missing_open_order"  # open in the ledger, not open at the venue
    OPEN_ORDER_MISMATCH = "open_order_mismatch"  # same id, different symbol/side/qty/fill


@dataclass(frozen=True, kw_only=True, slots=True)
class Difference:
    """One difference between a venue and the ledger.

    Attributes
    ----------
    kind : DifferenceKind
        What differs.
    key : str
        The symbol (a position) or the client order id (an open order).
    venue_value : str
        The venue's side as text: a position's signed quantity (base units, ``0`` when none),
        an open order's fields, or ``not open``.
    ledger_value : str
        The ledger's side, written the same way.
    """

    kind: DifferenceKind
    key: str  # the symbol or the client order id
    venue_value: str
    ledger_value: str

    def __str__(self) -> str:
        """Return ``kind: key: venue <value>, ledger <value>``."""
        return f"{self.kind}: {self.key}: venue {self.venue_value}, ledger {self.ledger_value}"


@dataclass(frozen=True, kw_only=True, slots=True)
class ReconciliationReport:
    """What one venue holds against what the ledger expects; ``ok`` when they agree."""

    venue: str
    differences: tuple[Difference, ...]
    venue_positions: Mapping[str, Decimal]
    venue_open_orders: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when the venue and the ledger agree (no difference)."""
        return not self.differences

    @property
    def halts_entries(self) -> bool:
        """True when the report halts new entries on the venue (it has differences)."""
        return not self.ok

    def summary(self) -> str:
        """Return the report as text: one line if reconciled, else a line per difference."""
        if self.ok:
            return (
                f"{self.venue}: reconciled, {len(self.venue_positions)} positions and "
                f"{len(self.venue_open_orders)} open orders agree with the ledger"
            )
        lines = [f"{self.venue}: {len(self.differences)} differences; new entries halted"]
        lines += [f"  {d}" for d in self.differences]
        return "\n".join(lines)


def reconcile(
    venue: str,
    *,
    venue_positions: Mapping[str, Decimal],
    venue_open_orders: Sequence[BrokerOrder],
    ledger_positions: Mapping[str, Decimal],
    ledger_open_orders: Iterable[ExpectedOrder],
    ledger_uncertain: Iterable[str] = (),
    baseline: Mapping[str, Decimal] | None = None,
) -> ReconciliationReport:
    """Compare the venue with the ledger; zero quantities count as no position.

    ``ledger_uncertain`` are client order ids the ledger holds as ``pending_submit`` or
    ``unknown``: open or not at the venue, they are resolved by a lookup, not reported here.
    ``baseline`` is what the account held before the allocator managed it (recorded at the
    venue's first reconciliation, :func:`baseline_of`): it is subtracted from the venue's
    positions, so only what the allocator manages is compared.
    """
    diffs: list[Difference] = []
    base = baseline or {}
    held = {
        s: q - base.get(s, Decimal(0))
        for s, q in venue_positions.items()
        if q - base.get(s, Decimal(0)) != 0
    }
    for s, q in base.items():  # a baseline holding sold off entirely
        if s not in venue_positions and q != 0:
            held[s] = -q
    expected = {s: q for s, q in ledger_positions.items() if q != 0}
    for symbol in sorted(held.keys() | expected.keys()):
        at_venue, in_ledger = held.get(symbol), expected.get(symbol)
        if at_venue is not None and in_ledger is None:
            kind = DifferenceKind.UNEXPECTED_POSITION
        elif at_venue is None and in_ledger is not None:
            kind = DifferenceKind.MISSING_POSITION
        elif at_venue != in_ledger:
            kind = DifferenceKind.POSITION_MISMATCH
        else:
            continue
        diffs.append(
            Difference(
                kind=kind,
                key=symbol,
                venue_value=str(at_venue or 0),
                ledger_value=str(in_ledger or 0),
            )
        )
    open_at_venue = {o.client_order_id: o for o in venue_open_orders}
    open_in_ledger = {o.client_order_id: o for o in ledger_open_orders}
    for cid in set(ledger_uncertain) - open_in_ledger.keys():
        open_at_venue.pop(cid, None)
    for cid in sorted(open_at_venue.keys() | open_in_ledger.keys()):
        order, exp = open_at_venue.get(cid), open_in_ledger.get(cid)
        if order is not None and exp is None:
            diffs.append(
                Difference(
                    kind=DifferenceKind.UNEXPECTED_OPEN_ORDER,
                    key=cid,
                    venue_value=f"{order.side} {order.qty} {order.symbol} ({order.state})",
                    ledger_value="not open",
                )
            )
        elif order is None and exp is not None:
            diffs.append(
                Difference(
                    kind=DifferenceKind.MISSING_OPEN_ORDER,
                    key=cid,
                    venue_value="not open",
                    ledger_value=f"{exp.side} {exp.qty} {exp.symbol}",
                )
            )
        elif order is not None and exp is not None:
            venue_view = (order.symbol, str(order.side), order.qty, order.filled_qty)
            ledger_view = (exp.symbol, exp.side, exp.qty, exp.filled_qty)
            if venue_view != ledger_view:
                diffs.append(
                    Difference(
                        kind=DifferenceKind.OPEN_ORDER_MISMATCH,
                        key=cid,
                        venue_value=" ".join(map(str, venue_view)),
                        ledger_value=" ".join(map(str, ledger_view)),
                    )
                )
    return ReconciliationReport(
        venue=venue,
        differences=tuple(diffs),
        venue_positions=dict(held),
        venue_open_orders=tuple(sorted(open_at_venue)),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordedReconciliation:
    """What :func:`record_report` stored: the new row and the halts it cleared (their ids)."""

    record: ReconciliationRecord
    cleared: tuple[int, ...]


def record_report(
    ledger: Ledger, venue: Venue | str, report: ReconciliationReport, *, source: str = ""
) -> RecordedReconciliation:
    """Store ``report`` for ``venue`` (the routing venue, whatever the adapter calls itself).

    A report with differences halts new entries there; a clean one clears the venue's halts.
    """
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


def baseline_of(
    ledger: Ledger,
    venue: Venue,
    venue_positions: Mapping[str, Decimal],
    ledger_positions: Mapping[str, Decimal],
) -> Mapping[str, Decimal]:
    """Return the venue's recorded baseline, recording it at its first reconciliation.

    Used for crypto spot accounts in ``paper``/``live`` mode (:func:`reconcile_at_start`).

    At the first reconciliation of a venue (none stored yet), what it holds in symbols the
    ledger does not manage (coins already in a spot account, a BNB balance for fees) is the
    baseline, stored once (the ledger's ``record_venue_baseline``), never a difference. A
    ledger without baseline storage (``venue_baseline``) gets none: every holding compared.
    """
    stored = getattr(ledger, "venue_baseline", None)
    record = getattr(ledger, "record_venue_baseline", None)
    if stored is None or record is None:
        return {}
    found: Mapping[str, Decimal] | None = stored(venue)
    if found is not None:
        return found
    if ledger.reconciliations(venue):  # reconciled before baselines existed: none
        record(venue, {})
        return {}
    managed = {s for s, q in ledger_positions.items() if q != 0}
    base = {s: q for s, q in venue_positions.items() if q != 0 and s not in managed}
    record(venue, base)
    return base


def _holds_balances(venue: Venue, broker: Broker) -> bool:
    """Whether the venue's positions are an account's coin balances that may predate us.

    A crypto spot account (ccxt) in ``paper`` or ``live`` mode reports every coin it holds
    (fee coins, earlier deposits); the simulated venue (``sim``) and the securities venues
    report only positions, every one of which the ledger must explain.
    """
    return venue is Venue.CCXT and getattr(broker, "mode", "sim") in ("paper", "live")


@dataclass(frozen=True, kw_only=True, slots=True)
class VenueReconciliation:
    """One venue compared and recorded by :func:`reconcile_venue`.

    What the ledger expected, the report and what was stored.
    """

    expected: LedgerExpectation
    report: ReconciliationReport
    recorded: RecordedReconciliation


def reconcile_venue(
    ledger: Ledger,
    venue: Venue | str,
    broker: Broker,
    *,
    source: str,
    expected: LedgerExpectation | None = None,
    label: str | None = None,
) -> VenueReconciliation:
    """Compare one venue with the ledger and record the report (SPEC §9).

    The one path of reconciliation, for the bar (:func:`reconcile_at_start`) and the operator's
    ``allocator broker reconcile`` alike. The venue's positions and open orders are compared
    with ``expected`` (default: the ledger's expectation of the venue, ``source`` naming who
    asks); a crypto spot account in ``paper`` or ``live`` mode is compared net of its baseline
    (:func:`baseline_of`: the balances present at its first reconciliation, recorded then,
    never a difference), so a coin the allocator never traded does not halt it. ``label``
    names the venue in the report (default the routing venue). A difference halts new entries
    on the venue, a clean report clears its halt.
    """
    venue = Venue(venue)
    if expected is None:
        expected = ledger.expectation(venue, source=source)
    positions = broker.positions()
    report = reconcile(
        label or venue.value,
        venue_positions=positions,
        venue_open_orders=broker.open_orders(),
        ledger_positions=expected.positions,
        ledger_open_orders=expected.open_orders,
        ledger_uncertain=expected.uncertain,
        baseline=baseline_of(ledger, venue, positions, expected.positions)
        if _holds_balances(venue, broker)
        else None,
    )
    recorded = record_report(ledger, venue, report, source=source)
    return VenueReconciliation(expected=expected, report=report, recorded=recorded)


def reconcile_at_start(
    ledger: Ledger, brokers: Mapping[Venue, Broker], *, source: str
) -> dict[str, RecordedReconciliation | str]:
    """Reconcile every venue in ``brokers`` against ``ledger`` and record each outcome.

    Run before a bar trades (SPEC §9): a difference halts new entries on the venue, a clean
    report clears its halt.

    A venue with orders still in flight in the journal (``pending_submit`` or ``unknown``: a
    crash between sending and recording) is not compared yet: its position legitimately differs
    until the bar resolves those orders by lookup, and a halt then would block the very
    recovery that settles it. Such venues map to the reason they were skipped.
    """
    outcome: dict[str, RecordedReconciliation | str] = {}
    for venue, broker in brokers.items():
        expected = ledger.expectation(venue, source=source)
        if expected.uncertain:
            outcome[venue.value] = f"skipped: {len(expected.uncertain)} order(s) in flight"
            continue
        done = reconcile_venue(ledger, venue, broker, source=source, expected=expected)
        outcome[venue.value] = done.recorded
    return outcome


@dataclass(frozen=True, kw_only=True, slots=True)
class HaltCheck:
    """The verdict on the venue halts in force: ``passed`` when there are none."""

    passed: bool
    description: str
    metadata: Mapping[str, Any]


def halt_check(halts: Mapping[str, ReconciliationRecord]) -> HaltCheck:
    """Turn ``Ledger.venue_halts()`` into the pass/fail verdict of an asset check (pure).

    The description and metadata name the halted venues, since when, how many differences
    each has and the first few.
    """
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
