"""The paper broker: prices, rounding, fees per venue, partial fills, duplicate ids."""

from __future__ import annotations

from decimal import Decimal

import pytest

from allocator.execution import DEFAULT_INSTRUMENTS
from allocator.execution.orders import (
    AssetClass,
    Broker,
    DuplicateOrderError,
    OrderRejectedError,
    OrderRequest,
    OrderState,
    Side,
    Venue,
    submit_idempotently,
)
from resources.brokers.paper.client import PaperBroker, PaperBrokerConfig

D = Decimal


def _request(cid: str, symbol: str, side: Side, qty: str, price: str) -> OrderRequest:
    inst = DEFAULT_INSTRUMENTS[symbol]
    return OrderRequest(
        client_order_id=cid,
        symbol=symbol,
        asset_class=inst.asset_class,
        side=side,
        qty=D(qty),
        venue=inst.routed_venue,
        reference_price=D(price),
    )


def _broker(venue: Venue, **config: Decimal) -> PaperBroker:
    return PaperBroker(
        venue=venue, instruments=DEFAULT_INSTRUMENTS, config=PaperBrokerConfig(**config)
    )


def test_it_is_a_broker() -> None:
    assert isinstance(_broker(Venue.ALPACA), Broker)


def test_slippage_moves_against_the_order_and_rounds_to_the_tick() -> None:
    broker = _broker(Venue.ALPACA, slippage_bps=D(10))
    # 100.003 × 1.001 = 100.103003 -> up to 100.11; × 0.999 = 99.902997 -> down to 99.90.
    buy = broker.submit(_request("b1", "KO", Side.BUY, "5", "100.003"))
    sell = broker.submit(_request("s1", "KO", Side.SELL, "2", "100.003"))
    assert (buy.avg_price, buy.filled_qty, buy.fee, buy.state) == (
        D("100.11"),
        D(5),
        D(0),
        OrderState.FILLED,
    )
    assert sell.avg_price == D("99.90")
    assert broker.positions() == {"KO": D(3)}


@pytest.mark.parametrize(
    ("venue", "symbol", "qty", "price", "fee"),
    [
        (Venue.ALPACA, "SPY", "100", "500", "0"),
        (Venue.IBKR, "KO", "100", "60", "1.00"),  # 0.50 per-share, minimum 1.00
        (Venue.IBKR, "KO", "1000", "60", "5.00"),  # 1000 × 0.005
        (Venue.IBKR, "ES", "3", "5000", "2.55"),  # 3 × 0.85
        (Venue.IBKR, "EUR/USD", "100000", "1.1", "2.20"),  # 110000 × 0.2 bps
        (Venue.IBKR, "EUR/USD", "10000", "1.1", "2.00"),  # 0.22, minimum 2.00
        (Venue.CCXT, "BTC/USDT", "0.5", "60000", "30.00"),  # 30000 × 10 bps
    ],
)
def test_fee_schedules(venue: Venue, symbol: str, qty: str, price: str, fee: str) -> None:
    order = _broker(venue).submit(_request("c1", symbol, Side.BUY, qty, price))
    assert order.fee == D(fee)


def test_partial_fill_cancels_the_rest() -> None:
    broker = _broker(Venue.ALPACA, fill_ratio=D("0.5"))
    order = broker.submit(_request("p1", "KO", Side.SELL, "7", "50"))
    # half of 7 lots, rounded down: 3.
    assert (order.qty, order.filled_qty, order.state) == (D(7), D(3), OrderState.CANCELLED)
    assert broker.positions() == {"KO": D(-3)}
    assert broker.open_orders() == []
    assert [f.qty for f in order.fills] == [D(3)]


def test_min_notional_and_missing_price_are_rejected() -> None:
    broker = _broker(Venue.CCXT)
    with pytest.raises(OrderRejectedError, match="below the minimum 5 for BTC/USDT"):
        broker.submit(_request("m1", "BTC/USDT", Side.BUY, "0.00001", "60000"))
    no_price = OrderRequest(
        client_order_id="m2",
        symbol="KO",
        asset_class=AssetClass.EQUITY,
        side=Side.BUY,
        qty=D(1),
        venue=Venue.ALPACA,
    )
    with pytest.raises(OrderRejectedError, match="no reference price"):
        _broker(Venue.ALPACA).submit(no_price)


def test_a_reused_client_order_id_is_refused_and_found_by_lookup() -> None:
    broker = _broker(Venue.ALPACA)
    request = _request("d1", "SPY", Side.BUY, "10", "500")
    broker.submit(request)
    with pytest.raises(DuplicateOrderError, match="d1 already used"):
        broker.submit(request)
    again = submit_idempotently(broker, request, delay_s=0.0)
    assert again.placed_by_this_call is False
    assert again.order is not None
    assert again.order.filled_qty == D(10)
    assert broker.positions() == {"SPY": D(10)}
