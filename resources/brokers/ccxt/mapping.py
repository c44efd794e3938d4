"""ccxt's unified order and trade structures to our records, and market data to rules."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from allocator.execution.orders import BrokerFill, BrokerOrder, OrderState, Side
from resources.brokers.common import InstrumentRules, to_decimal

__all__ = ["STATE_OF", "fee_in_quote", "rules_from_market", "to_broker_order", "to_fills"]

_log = logging.getLogger(__name__)

# ccxt unified statuses: open, closed, canceled, expired, rejected.
STATE_OF: Mapping[str, OrderState] = {
    "open": OrderState.SUBMITTED,
    "closed": OrderState.FILLED,
    "canceled": OrderState.CANCELLED,
    "cancelled": OrderState.CANCELLED,
    "expired": OrderState.CANCELLED,
    "rejected": OrderState.REJECTED,
}


def _dec(value: Any, what: str) -> Decimal:
    return to_decimal(value, what)


def _step(value: Any, precision_mode: int, what: str) -> Decimal:
    """A ccxt precision as a step: TICK_SIZE mode holds the step, DECIMAL_PLACES digits."""
    import ccxt

    if precision_mode == ccxt.TICK_SIZE:
        return _dec(value, what)
    return Decimal(1).scaleb(-int(value))


def rules_from_market(market: Mapping[str, Any], precision_mode: int) -> InstrumentRules:
    """Lot step, minimum quantity, tick and minimum notional from a loaded ccxt market."""
    symbol = str(market["symbol"])
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    if precision.get("amount") is None:
        raise ValueError(f"{symbol}: the venue's market data has no amount precision")
    min_qty = (limits.get("amount") or {}).get("min")
    min_cost = (limits.get("cost") or {}).get("min")
    tick = precision.get("price")
    return InstrumentRules(
        symbol=symbol,
        lot_step=_step(precision["amount"], precision_mode, f"{symbol} amount precision"),
        min_qty=_dec(min_qty, f"{symbol} min amount") if min_qty is not None else Decimal(0),
        tick=None if tick is None else _step(tick, precision_mode, f"{symbol} price precision"),
        min_notional=_dec(min_cost, f"{symbol} min cost") if min_cost is not None else Decimal(0),
    )


def _fee(fee: Mapping[str, Any] | None, quote: str) -> tuple[Decimal, str | None]:
    """A ccxt trade's fee as (amount, currency): ``None`` currency is the quote currency.

    A fee in the base currency stays in base units (the venue took it from the coins
    received); a fee in a third currency (BNB) stays in that currency: neither is valued here.
    """
    if not fee or fee.get("cost") is None:
        return Decimal(0), None
    cost = _dec(fee["cost"], "fee cost")
    currency = fee.get("currency")
    if currency in (None, "", quote):
        return cost, None
    return cost, str(currency)


def fee_in_quote(fill: BrokerFill, base: str) -> Decimal | None:
    """The fill's fee in quote currency: a base-currency fee valued at the fill's price;
    ``None`` for a fee in a third currency (it has no price here)."""
    if fill.fee_currency is None:
        return fill.fee
    if fill.fee_currency == base:
        return fill.fee * fill.price
    return None


def to_fills(
    client_order_id: str, market: Mapping[str, Any], trades: Iterable[Mapping[str, Any]]
) -> tuple[BrokerFill, ...]:
    """ccxt trades as fills keyed by the venue's trade id (the dedup key)."""
    fills: dict[str, BrokerFill] = {}
    for trade in trades:
        fill_id = str(trade["id"])
        price = _dec(trade["price"], f"trade {fill_id} price")
        fee, currency = _fee(trade.get("fee"), market["quote"])
        ts = trade.get("timestamp")
        fills[fill_id] = BrokerFill(
            fill_id=fill_id,
            client_order_id=client_order_id,
            symbol=str(trade.get("symbol") or market["symbol"]),
            side=Side(str(trade["side"]).lower()),
            qty=_dec(trade["amount"], f"trade {fill_id} amount"),
            price=price,
            fee=fee,
            fee_currency=currency,
            ts=datetime.fromtimestamp(ts / 1000, tz=UTC) if ts else None,
        )
    return tuple(sorted(fills.values(), key=lambda f: (f.ts is None, f.ts, f.fill_id)))


def to_broker_order(
    order: Mapping[str, Any], market: Mapping[str, Any], fills: tuple[BrokerFill, ...] = ()
) -> BrokerOrder:
    """A ccxt order as our record; a partly filled open order is ``partially_filled``."""
    oid = str(order["id"])
    cid = str(order.get("clientOrderId") or "")
    if not cid:
        raise ValueError(f"{market['symbol']} order {oid}: the venue reply has no client order id")
    status = str(order.get("status") or "open")
    if status not in STATE_OF:
        raise ValueError(f"{market['symbol']} order {oid}: unknown status {status!r}")
    filled = _dec(order.get("filled") or 0, f"order {oid} filled")
    state = STATE_OF[status]
    amount = _dec(order["amount"], f"order {oid} amount")
    if state is OrderState.SUBMITTED and filled > 0:
        state = OrderState.PARTIALLY_FILLED
    if state is OrderState.FILLED and filled < amount:
        # ccxt reports Bybit's PartiallyFilledCanceled as "closed": the rest was cancelled.
        state = OrderState.CANCELLED
    average = order.get("average")
    if average is None and filled > 0 and order.get("cost"):
        average = _dec(order["cost"], f"order {oid} cost") / filled
    # The order's fee is in quote currency: quote fees, and base fees valued at their fill's
    # price; a third-currency fee (BNB) is not a quote amount and stays on its fill only.
    fee = Decimal(0)
    for fill in fills:
        valued = fee_in_quote(fill, str(market["base"]))
        if valued is None:
            _log.info(
                "fill %s: fee %s %s kept in its currency", fill.fill_id, fill.fee, fill.fee_currency
            )
        else:
            fee += valued
    return BrokerOrder(
        client_order_id=cid,
        venue_order_id=oid,
        symbol=str(order.get("symbol") or market["symbol"]),
        side=Side(str(order["side"]).lower()),
        qty=amount,
        filled_qty=filled,
        avg_price=None if average is None or filled == 0 else _dec(average, f"order {oid} avg"),
        fee=fee,
        state=state,
        fills=fills,
    )
