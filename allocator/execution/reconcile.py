"""Startup reconciliation of one venue against the ledger (SPEC §9): a pure comparison.

The venue's positions and open orders are compared with what the ledger expects. Every
difference is reported as a :class:`Difference`; a report with any difference means new
entries on that venue are halted until a person resolves it. Nothing is overwritten here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from allocator.execution.orders import BrokerOrder

__all__ = ["Difference", "DifferenceKind", "ExpectedOrder", "ReconciliationReport", "reconcile"]


class DifferenceKind(enum.StrEnum):
    POSITION_MISMATCH = "position_mismatch"  # both sides hold the symbol, quantities differ
    UNEXPECTED_POSITION = "unexpected_position"  # at the venue, not in the ledger
    MISSING_POSITION = "missing_position"  # in the ledger, not at the venue
    UNEXPECTED_OPEN_ORDER = "unexpected_open_order"  # open at the venue, not open in the ledger
    MISSING_OPEN_ORDER = "missing_open_order"  # open in the ledger, not open at the venue
    OPEN_ORDER_MISMATCH = "open_order_mismatch"  # same id, different symbol/side/qty/fill


@dataclass(frozen=True, kw_only=True, slots=True)
class ExpectedOrder:
    """An order the ledger holds as open (submitted or partially filled) on this venue."""

    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    filled_qty: Decimal = Decimal(0)


@dataclass(frozen=True, kw_only=True, slots=True)
class Difference:
    kind: DifferenceKind
    key: str  # the symbol or the client order id
    venue_value: str
    ledger_value: str

    def __str__(self) -> str:
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
        return not self.differences

    @property
    def halts_entries(self) -> bool:
        return not self.ok

    def summary(self) -> str:
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
) -> ReconciliationReport:
    """Compare the venue with the ledger; zero quantities count as no position.

    ``ledger_uncertain`` are client order ids the ledger holds as ``pending_submit`` or
    ``unknown``: open or not at the venue, they are resolved by a lookup, not reported here.
    """
    diffs: list[Difference] = []
    held = {s: q for s, q in venue_positions.items() if q != 0}
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
