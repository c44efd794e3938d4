"""The paper broker's orders kept in the ledger's database (``paper_orders``), as JSON.

:class:`LedgerPaperState` is the durable
:class:`~resources.brokers.paper.client.PaperState`: each order (with its fills) is one row,
replaced and committed on every ``put``. It is the simulated venue's own memory, not the
ledger's record: the journal (SPEC §9) is what the allocator believes, and reconciliation
compares the two.

Why in the ledger's database: a crash between the paper venue filling an order and the journal
recording it must leave the order findable by lookup, exactly as at a real venue, so the state
has to survive the process on the same store the bar recovers from.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa

from allocator.execution.orders import BrokerFill, BrokerOrder, OrderState, Side
from resources.ledger import schema as t
from resources.ledger.engine import Database

__all__ = ["LedgerPaperState", "order_from_json", "order_to_json"]


class LedgerPaperState:
    """The paper broker's orders in ``ledger``'s database (committed on every put)."""

    def __init__(self, ledger: Database) -> None:
        self._engine = ledger.engine

    def get(self, venue: str, client_order_id: str) -> BrokerOrder | None:
        p = t.paper_orders
        with self._engine.connect() as conn:
            found = conn.execute(
                sa.select(p.c.body).where(
                    p.c.venue == venue, p.c.client_order_id == client_order_id
                )
            ).first()
        return None if found is None else order_from_json(found[0])

    def put(self, venue: str, order: BrokerOrder) -> None:
        p = t.paper_orders
        body = order_to_json(order)
        with self._engine.begin() as conn:
            conn.execute(
                sa.delete(p).where(p.c.venue == venue, p.c.client_order_id == order.client_order_id)
            )
            conn.execute(
                sa.insert(p),
                [
                    {
                        "venue": venue,
                        "client_order_id": order.client_order_id,
                        "symbol": order.symbol,
                        "body": body,
                    }
                ],
            )

    def orders(self, venue: str) -> list[BrokerOrder]:
        p = t.paper_orders
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(p.c.body).where(p.c.venue == venue).order_by(p.c.client_order_id)
            )
            return [order_from_json(r[0]) for r in rows]


def order_to_json(order: BrokerOrder) -> str:
    """``order`` and its fills as canonical JSON (decimals as text, instants ISO 8601)."""
    return json.dumps(
        {
            "client_order_id": order.client_order_id,
            "venue_order_id": order.venue_order_id,
            "symbol": order.symbol,
            "side": order.side.value,
            "qty": str(order.qty),
            "filled_qty": str(order.filled_qty),
            "avg_price": None if order.avg_price is None else str(order.avg_price),
            "fee": str(order.fee),
            "state": order.state.value,
            "fills": [
                {
                    "fill_id": f.fill_id,
                    "qty": str(f.qty),
                    "price": str(f.price),
                    "fee": str(f.fee),
                    "ts": None if f.ts is None else f.ts.isoformat(),
                }
                for f in order.fills
            ],
        },
        sort_keys=True,
    )


def order_from_json(text: str) -> BrokerOrder:
    """The inverse of :func:`order_to_json`."""
    raw = json.loads(text)
    side = Side(raw["side"])
    return BrokerOrder(
        client_order_id=raw["client_order_id"],
        venue_order_id=raw["venue_order_id"],
        symbol=raw["symbol"],
        side=side,
        qty=Decimal(raw["qty"]),
        filled_qty=Decimal(raw["filled_qty"]),
        avg_price=None if raw["avg_price"] is None else Decimal(raw["avg_price"]),
        fee=Decimal(raw["fee"]),
        state=OrderState(raw["state"]),
        fills=tuple(
            BrokerFill(
                fill_id=f["fill_id"],
                client_order_id=raw["client_order_id"],
                symbol=raw["symbol"],
                side=side,
                qty=Decimal(f["qty"]),
                price=Decimal(f["price"]),
                fee=Decimal(f["fee"]),
                ts=None if f["ts"] is None else datetime.fromisoformat(f["ts"]),
            )
            for f in raw["fills"]
        ),
    )
