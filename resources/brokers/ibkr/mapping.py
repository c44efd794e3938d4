"""Our symbols and orders to ib_async contracts and orders, and trades back to our records."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ib_async import Contract, Forex, Future, Stock

from allocator.execution.orders import AssetClass, BrokerFill, BrokerOrder, OrderState, Side
from resources.brokers.common import to_decimal

__all__ = ["STATE_OF", "contract_for", "fills_vwap", "position_key", "to_broker_order"]

STATE_OF: Mapping[str, OrderState] = {
    "PendingSubmit": OrderState.SUBMITTED,
    "ApiPending": OrderState.SUBMITTED,
    "PreSubmitted": OrderState.SUBMITTED,
    "Submitted": OrderState.SUBMITTED,
    "ValidationError": OrderState.SUBMITTED,
    "PendingCancel": OrderState.SUBMITTED,
    "Filled": OrderState.FILLED,
    "Cancelled": OrderState.CANCELLED,
    "ApiCancelled": OrderState.CANCELLED,
    "Inactive": OrderState.REJECTED,
}


def contract_for(symbol: str, asset_class: AssetClass) -> Contract:
    """``SPY`` → ``Stock(SPY, SMART, USD)``; ``EUR/USD`` → ``Forex``; futures as
    ``ES:202506:CME`` (symbol, contract month, exchange)."""
    if asset_class in (AssetClass.EQUITY, AssetClass.ETF):
        return Stock(symbol, "SMART", "USD")
    if asset_class is AssetClass.FOREX:
        base, sep, quote = symbol.partition("/")
        if not sep or len(base) != 3 or len(quote) != 3:
            raise ValueError(f"IB forex symbol must look like EUR/USD, got {symbol!r}")
        return Forex(base + quote)
    if asset_class is AssetClass.FUTURE:
        parts = symbol.split(":")
        if len(parts) != 3:
            raise ValueError(f"IB future symbol must look like ES:202506:CME, got {symbol!r}")
        return Future(parts[0], parts[1], parts[2])
    raise ValueError(f"IB adapter does not trade {asset_class} ({symbol})")


def position_key(contract: Contract) -> str:
    if contract.secType == "CASH":
        return f"{contract.symbol}/{contract.currency}"
    if contract.secType == "FUT":
        return f"{contract.symbol}:{contract.lastTradeDateOrContractMonth[:6]}:{contract.exchange}"
    return str(contract.symbol)


def fills_vwap(fills: tuple[BrokerFill, ...]) -> Decimal | None:
    """Volume-weighted price of ``fills`` (``None`` without any filled quantity).

    Exact when it terminates; otherwise rounded to the decimal context (28 digits)."""
    qty = sum((f.qty for f in fills), Decimal(0))
    if qty == 0:
        return None
    return sum((f.qty * f.price for f in fills), Decimal(0)) / qty


def to_broker_order(symbol: str, trade: Any, fills: tuple[BrokerFill, ...]) -> BrokerOrder:
    """Our view of an ib_async ``Trade``.

    ``avg_price`` is TWS's ``avgFillPrice`` when it gives one; an order found after a
    reconnect (a completed order from the sync or ``reqCompletedOrders``) carries none — its
    status is rebuilt with zero fill and price — so it is computed from the executions
    (``fills``). With a filled quantity but neither, it stays ``None`` (the caller must not
    settle such an order: :meth:`IbkrBroker.lookup` reports it as ambiguous).
    """
    order, status = trade.order, trade.orderStatus
    filled = to_decimal(status.filled or sum((f.qty for f in fills), Decimal(0)), "IB filled")
    qty = to_decimal(order.totalQuantity, "IB totalQuantity")
    state = STATE_OF.get(status.status, OrderState.SUBMITTED)
    if state is OrderState.SUBMITTED and filled > 0:
        state = OrderState.PARTIALLY_FILLED
    if state is OrderState.CANCELLED and filled >= qty > 0:
        state = OrderState.FILLED
    avg = status.avgFillPrice
    return BrokerOrder(
        client_order_id=order.orderRef,
        venue_order_id=str(order.permId or order.orderId),
        symbol=symbol,
        side=Side.BUY if order.action == "BUY" else Side.SELL,
        qty=qty,
        filled_qty=filled,
        avg_price=(to_decimal(avg, "IB avgFillPrice") if avg else fills_vwap(fills))
        if filled
        else None,
        fee=sum((f.fee for f in fills), Decimal(0)),
        state=state,
        fills=fills,
    )
