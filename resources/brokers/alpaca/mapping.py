"""Our orders to Alpaca requests, and Alpaca replies to our records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import Order
from alpaca.trading.requests import MarketOrderRequest

from allocator.execution.orders import BrokerFill, BrokerOrder, OrderRequest, OrderState, Side
from resources.brokers.common import decimal_text, to_decimal

__all__ = ["STATE_OF", "ExactMarketOrderRequest", "to_broker_order", "to_fills", "to_market_order"]

STATE_OF: Mapping[OrderStatus, OrderState] = {
    OrderStatus.NEW: OrderState.SUBMITTED,
    OrderStatus.ACCEPTED: OrderState.SUBMITTED,
    OrderStatus.PENDING_NEW: OrderState.SUBMITTED,
    OrderStatus.ACCEPTED_FOR_BIDDING: OrderState.SUBMITTED,
    OrderStatus.HELD: OrderState.SUBMITTED,
    OrderStatus.PENDING_REVIEW: OrderState.SUBMITTED,
    OrderStatus.PENDING_CANCEL: OrderState.SUBMITTED,
    OrderStatus.PENDING_REPLACE: OrderState.SUBMITTED,
    OrderStatus.STOPPED: OrderState.SUBMITTED,
    OrderStatus.SUSPENDED: OrderState.SUBMITTED,
    OrderStatus.CALCULATED: OrderState.SUBMITTED,
    OrderStatus.PARTIALLY_FILLED: OrderState.PARTIALLY_FILLED,
    OrderStatus.FILLED: OrderState.FILLED,
    OrderStatus.CANCELED: OrderState.CANCELLED,
    OrderStatus.EXPIRED: OrderState.CANCELLED,
    OrderStatus.DONE_FOR_DAY: OrderState.CANCELLED,
    OrderStatus.REPLACED: OrderState.CANCELLED,
    OrderStatus.REJECTED: OrderState.REJECTED,
}


class ExactMarketOrderRequest(MarketOrderRequest):
    """alpaca-py's market order with ``qty`` as exact decimal text (Alpaca's API takes a string).

    alpaca-py types ``qty`` as a float; a float on the wire is not the quantity we decided.
    """

    qty: str | None = None  # type: ignore[assignment]


def to_market_order(request: OrderRequest, qty: Decimal) -> MarketOrderRequest:
    """A DAY market order by quantity (fractional shares need DAY) with our client order id.

    The quantity goes out as exact decimal text (:func:`decimal_text`), never a float.
    """
    return ExactMarketOrderRequest(
        symbol=request.symbol,
        qty=decimal_text(qty),
        side=OrderSide.BUY if request.side is Side.BUY else OrderSide.SELL,
        time_in_force=TimeInForce.DAY,
        client_order_id=request.client_order_id,
    )


def to_fills(order: Order, activities: Iterable[Mapping[str, Any]]) -> tuple[BrokerFill, ...]:
    """The ``FILL`` activities of ``order`` as fills, keyed by Alpaca's activity id."""
    fills: dict[str, BrokerFill] = {}
    for act in activities:
        if str(act.get("order_id")) != str(order.id) or act.get("activity_type") != "FILL":
            continue
        fill_id = str(act["id"])
        ts = act.get("transaction_time")
        fills[fill_id] = BrokerFill(
            fill_id=fill_id,
            client_order_id=order.client_order_id,
            symbol=str(act.get("symbol") or order.symbol),
            side=Side(str(act["side"]).lower()),
            qty=to_decimal(act["qty"], f"alpaca fill {fill_id} qty"),
            price=to_decimal(act["price"], f"alpaca fill {fill_id} price"),
            fee=Decimal(0),
            ts=datetime.fromisoformat(str(ts).replace("Z", "+00:00")) if ts else None,
        )
    return tuple(sorted(fills.values(), key=lambda f: (f.ts is None, f.ts, f.fill_id)))


def to_broker_order(order: Order, fills: tuple[BrokerFill, ...] = ()) -> BrokerOrder:
    """Alpaca's order as our record; equities trade commission-free (fee 0)."""
    status = OrderStatus(order.status)
    if order.side is None or order.symbol is None:
        raise ValueError(f"alpaca order {order.id}: reply lacks side or symbol")
    avg = order.filled_avg_price
    qty = order.qty if order.qty is not None else order.filled_qty
    return BrokerOrder(
        client_order_id=order.client_order_id,
        venue_order_id=str(order.id),
        symbol=order.symbol,
        side=Side(str(order.side.value if hasattr(order.side, "value") else order.side)),
        qty=to_decimal(qty, f"alpaca order {order.id} qty"),
        filled_qty=to_decimal(order.filled_qty or "0", f"alpaca order {order.id} filled_qty"),
        avg_price=None if avg in (None, "") else to_decimal(avg, f"alpaca order {order.id} avg"),
        fee=Decimal(0),
        state=STATE_OF[status],
        fills=fills,
    )
