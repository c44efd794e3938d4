"""The order journal: every order a bar or an operator sends, before and after it is sent.

SPEC §9: an order is written ``pending_submit`` (with its venue's mode, ``paper`` or ``live``)
before it is sent, and what :func:`allocator.execution.orders.submit_idempotently` concluded is
written after (state, detail and, when the venue answered, fills, average price, fee, venue
order id). An id already journaled must be the same order in the same mode, else
:class:`ValueError`: a rerun never changes what a client order id means. The sending itself is
not here: :func:`allocator.execution.bar.run_bar` and
:func:`allocator.execution.manual.submit_manual_order` do it around these methods.

Why the journal refuses instead of re-labelling: the client order id is how a rerun finds the
order at the venue, so one id naming two orders would let a rerun send the second one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from allocator.execution.orders import (
    BrokerFill,
    NetOrder,
    OrderRequest,
    OrderState,
    Side,
    SubmitOutcome,
    Venue,
)
from allocator.execution.records import Bar
from resources.ledger import schema as t
from resources.ledger.engine import Database, insert_ignore, now

__all__ = ["MANUAL_BAR", "MODES", "Journal", "journal_fills", "venue_of_order"]

MODES = ("sim", "paper", "live")  # SPEC §8 venue modes
MANUAL_BAR = "manual"


class Journal(Database):
    """The order journal (a part of ``Ledger``)."""

    def journal_orders(
        self,
        bar: Bar,
        account: str,
        orders: Sequence[NetOrder],
        *,
        modes: Mapping[Venue, str] | None = None,
    ) -> None:
        """Journal each order ``pending_submit`` with its venue's mode (``paper`` unless
        ``modes`` says ``live``); an id already journaled must be the same order in the same
        mode, else :class:`ValueError` (a rerun never changes what an id means)."""
        modes = modes or {}
        for venue, mode in modes.items():
            _check_mode(mode, f"mode of {venue}")
        rows = [
            _pending_row(
                client_order_id=o.client_order_id,
                bar=bar.key,
                account=account,
                venue=o.venue,
                symbol=o.symbol,
                side=o.side.value,
                qty=o.qty,
                reference_price=o.reference_price,
                detail="",
                mode=modes.get(o.venue, "paper"),
            )
            for o in orders
        ]
        with self.engine.begin() as conn:
            for row in rows:
                _journal_once(conn, row, f"the rerun of bar {bar}")

    def journal_manual_order(self, request: OrderRequest, *, account: str, mode: str) -> None:
        """Journal one operator order ``pending_submit`` (bar ``manual``, ``account``,
        ``mode``); the same id again must be the same order, else :class:`ValueError`."""
        _check_mode(mode, "mode")
        row = _pending_row(
            client_order_id=request.client_order_id,
            bar=MANUAL_BAR,
            account=account,
            venue=request.venue,
            symbol=request.symbol,
            side=request.side.value,
            qty=request.qty,
            reference_price=request.reference_price,
            detail="manual order",
            mode=mode,
        )
        with self.engine.begin() as conn:
            _journal_once(conn, row, "this manual order")

    def update_order(self, order: NetOrder, outcome: SubmitOutcome) -> None:
        """Journal a bar order's outcome as it arrives (SPEC §9 "the journal is the truth"):
        the order row and every fill the venue reported with it (new ones inserted, unsettled,
        deduplicated by (venue, fill id)), in one transaction."""
        with self.engine.begin() as conn:
            _write_outcome(conn, order.client_order_id, outcome)
            if outcome.order is not None and outcome.order.fills:
                journal_fills(conn, order.venue.value, outcome.order.fills)

    def journaled_fills(self, bar: Bar) -> dict[str, list[BrokerFill]]:
        """The fills journaled for ``bar``'s orders (settled or not), by client order id,
        each order's by fill id."""
        f, o = t.broker_fills, t.orders
        query = (
            sa.select(f)
            .select_from(f.join(o, o.c.client_order_id == f.c.client_order_id))
            .where(o.c.bar == bar.key)
            .order_by(f.c.client_order_id, f.c.fill_id)
        )
        out: dict[str, list[BrokerFill]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(query):
                out.setdefault(str(r.client_order_id), []).append(broker_fill_of(r))
        return out

    def unsettled_fills(self) -> list[BrokerFill]:
        """The fills journaled as they arrived and not yet settled by a recorded bar."""
        f = t.broker_fills
        query = sa.select(f).where(f.c.settled_bar.is_(None)).order_by(f.c.fill_id)
        with self.engine.connect() as conn:
            return [broker_fill_of(r) for r in conn.execute(query)]

    def record_order_outcome(self, client_order_id: str, outcome: SubmitOutcome) -> None:
        """Write what :func:`~allocator.execution.orders.submit_idempotently` concluded for a
        journaled order: its state, detail and (when the venue answered) fills, price, fee, id."""
        with self.engine.begin() as conn:
            _write_outcome(conn, client_order_id, outcome)

    def orders(self, bar: Bar | None = None) -> list[dict[str, Any]]:
        query = sa.select(t.orders).order_by(t.orders.c.bar, t.orders.c.symbol)
        if bar is not None:
            query = query.where(t.orders.c.bar == bar.key)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]


def broker_fill_of(r: Any) -> BrokerFill:
    """A ``broker_fills`` row as the record (the one place that reads that table's rows)."""
    return BrokerFill(
        fill_id=r.fill_id,
        client_order_id=r.client_order_id,
        symbol=r.symbol,
        side=Side(r.side),
        qty=r.qty,
        price=r.price,
        fee=r.fee,
        ts=r.ts,
        fee_currency=r.fee_currency,
    )


def journal_fills(conn: Connection, venue: str, fills: Sequence[BrokerFill]) -> None:
    """Insert the fills not journaled yet (key (venue, fill id)), ``settled_bar`` NULL."""
    insert_ignore(
        conn,
        t.broker_fills,
        [
            {
                "venue": venue,
                "fill_id": f.fill_id,
                "client_order_id": f.client_order_id,
                "symbol": f.symbol,
                "side": f.side.value,
                "qty": f.qty,
                "price": f.price,
                "fee": f.fee,
                "ts": f.ts,
                "settled_bar": None,
                "fee_currency": f.fee_currency,
            }
            for f in fills
        ],
        ["venue", "fill_id"],
    )


def _write_outcome(conn: Connection, client_order_id: str, outcome: SubmitOutcome) -> None:
    values: dict[str, Any] = {
        "state": outcome.state.value,
        "detail": outcome.detail,
        "updated_at": now(),
    }
    if outcome.order is not None:
        values |= {
            "filled_qty": outcome.order.filled_qty,
            "avg_price": outcome.order.avg_price,
            "fee": outcome.order.fee,
            "venue_order_id": outcome.order.venue_order_id,
        }
    done = conn.execute(
        sa.update(t.orders).where(t.orders.c.client_order_id == client_order_id).values(**values)
    )
    if done.rowcount != 1:
        raise ValueError(f"order {client_order_id} is not in the journal")


def venue_of_order(conn: Connection, cid: str) -> str:
    """The venue a journaled order went to (a fill of an order not journaled is an error)."""
    found = conn.execute(
        sa.select(t.orders.c.venue).where(t.orders.c.client_order_id == cid)
    ).first()
    if found is None:
        raise ValueError(f"fill for order {cid} which is not in the journal")
    return str(found[0])


def _check_mode(mode: str, what: str) -> None:
    if mode not in MODES:
        raise ValueError(f"{what} must be one of {MODES}, got {mode!r}")


def _pending_row(
    *,
    client_order_id: str,
    bar: str,
    account: str,
    venue: Venue,
    symbol: str,
    side: str,
    qty: Decimal,
    reference_price: Decimal | None,
    detail: str,
    mode: str,
) -> dict[str, Any]:
    return {
        "client_order_id": client_order_id,
        "bar": bar,
        "account": account,
        "venue": venue.value,
        "symbol": symbol,
        "side": side,
        "qty": qty,
        "reference_price": reference_price,
        "state": OrderState.PENDING_SUBMIT.value,
        "filled_qty": Decimal(0),
        "avg_price": None,
        "fee": Decimal(0),
        "venue_order_id": None,
        "detail": detail,
        "updated_at": now(),
        "mode": mode,
    }


def _journal_once(conn: Connection, row: Mapping[str, Any], who: str) -> None:
    """Insert a ``pending_submit`` journal row unless its id is there as the same order."""
    o = t.orders
    known = conn.execute(
        sa.select(o.c.symbol, o.c.qty, o.c.side, o.c.venue, o.c.mode).where(
            o.c.client_order_id == row["client_order_id"]
        )
    ).first()
    if known is None:
        conn.execute(sa.insert(o), [dict(row)])
        return
    journaled = (known.symbol, known.qty, known.side, known.venue, known.mode)
    wanted = (row["symbol"], row["qty"], row["side"], row["venue"], row["mode"])
    if journaled != wanted:
        raise ValueError(
            f"order {row['client_order_id']} is journaled as {known.side} {known.qty} "
            f"{known.symbol} at {known.venue} ({known.mode}); {who} wants {row['side']} "
            f"{row['qty']} {row['symbol']} at {row['venue']} ({row['mode']})"
        )
