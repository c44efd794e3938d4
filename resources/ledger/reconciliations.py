"""The ledger's side of reconciliation (SPEC §9): what it expects at a venue, and the halts.

:meth:`Reconciliations.expectation` is what the ledger expects at one venue: the sum of the
strategies' virtual positions in the symbols the journal routed there, the journal's
``submitted``/``partially_filled`` orders there as open, and its ``pending_submit``/``unknown``
orders as uncertain (to be resolved by a lookup, never counted as differences). Fills journaled
as they arrived but not yet settled by ``record_bar`` count as the ledger's own position.
:meth:`Reconciliations.record_reconciliation` appends one reconciliation: any difference halts
new entries on the venue, and only a later clean reconciliation clears the halt (the halting
rows are marked cleared, never overwritten). The comparison and the verdicts are pure and live
in :mod:`allocator.execution.reconcile`.

Why halts are rows rather than a flag per venue: who halted a venue, when, with which
differences and what cleared it stays readable afterwards (the asset check shows it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from allocator.execution.ledger import ExpectedOrder, LedgerExpectation, ReconciliationRecord
from allocator.execution.orders import FeeKind, OrderState, Side, Venue, fee_kind
from resources.ledger import schema as t
from resources.ledger.engine import Database, now, shown_url
from resources.ledger.journal import MANUAL_BAR

BASELINE = "baseline"  # the source of a venue's baseline row (record_venue_baseline)

__all__ = ["Reconciliations"]

_OPEN = {OrderState.SUBMITTED.value, OrderState.PARTIALLY_FILLED.value}
_UNCERTAIN = {OrderState.PENDING_SUBMIT.value, OrderState.UNKNOWN.value}


class Reconciliations(Database):
    """Expectations per venue, recorded reconciliations and venue halts (a part of ``Ledger``)."""

    def expectation(self, venue: Venue | str, *, source: str | None = None) -> LedgerExpectation:
        """What the ledger expects at ``venue`` (positions, open and in-flight orders);
        ``source`` defaults to the ledger's URL with any credentials hidden."""
        venue = Venue(venue)
        o = t.orders
        query = (
            sa.select(o.c.client_order_id, o.c.symbol, o.c.side, o.c.qty, o.c.filled_qty, o.c.state)
            .where(o.c.venue == venue.value)
            .order_by(o.c.bar, o.c.symbol, o.c.client_order_id)
        )
        with self.engine.connect() as conn:
            journal = conn.execute(query).all()
            virtual = conn.execute(sa.select(t.positions)).all()
            f = t.broker_fills
            # Fills journaled as they arrived but not yet settled into a recorded bar (a crash
            # between the fill and record_bar) are the ledger's own (SPEC §9); an operator's
            # manual orders never reach the strategies' books, so theirs are not counted.
            unsettled = conn.execute(
                sa.select(f.c.symbol, f.c.side, f.c.qty, f.c.fee, f.c.fee_currency)
                .select_from(f.join(o, o.c.client_order_id == f.c.client_order_id))
                .where(f.c.venue == venue.value, f.c.settled_bar.is_(None), o.c.bar != MANUAL_BAR)
            ).all()
        symbols = {str(r.symbol) for r in journal}
        positions: dict[str, Decimal] = {}
        for r in virtual:
            if r.qty != 0 and r.symbol in symbols:
                positions[r.symbol] = positions.get(r.symbol, Decimal(0)) + r.qty
        for r in unsettled:
            signed = r.qty if r.side == Side.BUY.value else -r.qty
            if fee_kind(r.symbol, r.fee_currency) is FeeKind.BASE:
                signed -= r.fee  # the venue kept it out of the coins (BrokerFill.position_change)
            positions[r.symbol] = positions.get(r.symbol, Decimal(0)) + signed
        open_orders = tuple(
            ExpectedOrder(
                client_order_id=str(r.client_order_id),
                symbol=str(r.symbol),
                side=str(r.side),
                qty=r.qty,
                filled_qty=r.filled_qty,
            )
            for r in journal
            if r.state in _OPEN
        )
        uncertain = frozenset(str(r.client_order_id) for r in journal if r.state in _UNCERTAIN)
        return LedgerExpectation(
            positions=positions,
            open_orders=open_orders,
            uncertain=uncertain,
            source=shown_url(self.url) if source is None else source,
        )

    def venue_positions(
        self, fallback: Callable[[str], str | None]
    ) -> dict[str, dict[str, Decimal]]:
        """The book per venue: the strategies' virtual positions summed per symbol, zeros
        omitted, at the venue the journal last routed the symbol to, else ``fallback(symbol)``
        (routing's venue; ``None`` files it under ``"unrouted"``)."""
        o = t.orders
        query = sa.select(o.c.symbol, o.c.venue).order_by(o.c.bar, o.c.client_order_id)
        with self.engine.connect() as conn:
            journaled = {str(r.symbol): str(r.venue) for r in conn.execute(query)}
            virtual = conn.execute(sa.select(t.positions)).all()
        totals: dict[str, Decimal] = {}
        for r in virtual:
            totals[r.symbol] = totals.get(r.symbol, Decimal(0)) + r.qty
        out: dict[str, dict[str, Decimal]] = {}
        for symbol in sorted(totals):
            if totals[symbol] == 0:
                continue
            venue = journaled.get(symbol) or fallback(symbol) or "unrouted"
            out.setdefault(venue, {})[symbol] = totals[symbol]
        return out

    def record_reconciliation(
        self,
        venue: Venue | str,
        differences: Sequence[Mapping[str, str]],
        *,
        checked_at: datetime | None = None,
        source: str = "",
    ) -> ReconciliationRecord:
        """Append one reconciliation of ``venue``; any difference halts new entries there.

        A clean reconciliation (no differences) clears every halt in force on the venue (its
        rows get ``cleared_at`` = ``checked_at`` and ``cleared_by`` = the new row); a halt is
        never cleared any other way, and no row is overwritten. One transaction.
        """
        venue = Venue(venue).value
        when = checked_at or now()
        ok = not differences
        body = json.dumps(
            [{k: str(v) for k, v in sorted(d.items())} for d in differences], sort_keys=True
        )
        r = t.reconciliations
        with self.engine.begin() as conn:
            new_id = conn.execute(
                sa.insert(r).values(
                    venue=venue,
                    checked_at=when,
                    ok=ok,
                    differences=body,
                    halted=not ok,
                    cleared_at=None,
                    cleared_by=None,
                    source=source[:64],
                )
            ).inserted_primary_key
            assert new_id is not None
            if ok:
                conn.execute(
                    sa.update(r)
                    .where(r.c.venue == venue, r.c.halted.is_(True), r.c.cleared_at.is_(None))
                    .values(cleared_at=when, cleared_by=int(new_id[0]))
                )
            row = conn.execute(sa.select(r).where(r.c.id == int(new_id[0]))).one()
        return _reconciliation_of(row)

    def record_venue_baseline(
        self, venue: Venue | str, positions: Mapping[str, Decimal], *, checked_at: Any = None
    ) -> None:
        """Store what ``venue`` held before the allocator managed it (once, SPEC §9).

        Kept in the reconciliations table as a row of source ``baseline`` (``ok``, never
        halting, clearing nothing), its ``differences`` JSON one entry per holding
        (``kind`` ``baseline``, ``key`` the symbol, ``venue`` the quantity).
        """
        body = json.dumps(
            [
                {"kind": BASELINE, "key": s, "venue": str(q), "ledger": "0"}
                for s, q in sorted(positions.items())
            ],
            sort_keys=True,
        )
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(t.reconciliations).values(
                    venue=Venue(venue).value,
                    checked_at=checked_at or now(),
                    ok=True,
                    differences=body,
                    halted=False,
                    cleared_at=None,
                    cleared_by=None,
                    source=BASELINE,
                )
            )

    def venue_baseline(self, venue: Venue | str) -> dict[str, Decimal] | None:
        """The baseline :meth:`record_venue_baseline` stored for ``venue``; ``None`` if none."""
        r = t.reconciliations
        query = (
            sa.select(r.c.differences)
            .where(r.c.venue == Venue(venue).value, r.c.source == BASELINE)
            .order_by(r.c.id)
            .limit(1)
        )
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar_one_or_none()
        if found is None:
            return None
        return {d["key"]: Decimal(d["venue"]) for d in json.loads(found)}

    def reconciliations(self, venue: Venue | str | None = None) -> list[ReconciliationRecord]:
        """Every stored reconciliation (of ``venue``), oldest first (baselines not included)."""
        r = t.reconciliations
        query = sa.select(r).where(r.c.source != BASELINE).order_by(r.c.id)
        if venue is not None:
            query = query.where(r.c.venue == Venue(venue).value)
        with self.engine.connect() as conn:
            return [_reconciliation_of(row) for row in conn.execute(query)]

    def venue_halts(self) -> dict[str, ReconciliationRecord]:
        """The halts in force: venue -> its latest halting reconciliation not yet cleared.

        Empty when every venue may take new entries. This is the hook for an asset check:
        it fails while the mapping is not empty, with the records' differences as metadata.
        """
        r = t.reconciliations
        query = (
            sa.select(r)
            .where(r.c.halted.is_(True), r.c.cleared_at.is_(None))
            .order_by(r.c.venue, r.c.id)
        )
        with self.engine.connect() as conn:
            return {row.venue: _reconciliation_of(row) for row in conn.execute(query)}

    def halted_venues(self) -> frozenset[Venue]:
        """The venues on which :func:`~allocator.execution.bar.run_bar` refuses new entries."""
        return frozenset(Venue(v) for v in self.venue_halts())


def _reconciliation_of(row: Any) -> ReconciliationRecord:
    return ReconciliationRecord(
        id=int(row.id),
        venue=str(row.venue),
        checked_at=row.checked_at,
        ok=bool(row.ok),
        differences=tuple(json.loads(row.differences)),
        halted=bool(row.halted),
        cleared_at=row.cleared_at,
        cleared_by=None if row.cleared_by is None else int(row.cleared_by),
        source=str(row.source),
    )
