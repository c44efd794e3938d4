"""execute_orders through alpaca-py's real client against the Alpaca fake's timed fills."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from allocator.execution.lifecycle import execute_orders
from allocator.execution.orders import (
    AssetClass,
    NetOrder,
    OrderState,
    Side,
    SubmitOutcome,
    Venue,
    client_order_id,
)
from resources.brokers.alpaca import AlpacaBroker
from tests.fakes.fake_alpaca import FakeAlpaca


@pytest.fixture
def fake_alpaca() -> Iterator[FakeAlpaca]:
    fake = FakeAlpaca().start()
    yield fake
    fake.stop()


def _broker(fake: FakeAlpaca) -> AlpacaBroker:
    return AlpacaBroker(
        api_key=fake.key, secret_key=fake.secret, base_url=fake.url, timeout_s=1.0, retry_wait_s=0
    )


def _order(symbol: str = "SPY", qty: str = "10") -> NetOrder:
    return NetOrder(
        symbol=symbol,
        asset_class=AssetClass.ETF,
        venue=Venue.ALPACA,
        side=Side.BUY,
        qty=Decimal(qty),
        reference_price=Decimal("500.25"),
        client_order_id=client_order_id("paper", "2024-05-01", symbol, Side.BUY),
        buy_qty=Decimal(qty),
        sell_qty=Decimal(0),
    )


def _run(fake: FakeAlpaca, order: NetOrder, fill_timeout_s: float) -> tuple[object, list]:
    updates: list[tuple[OrderState, Decimal]] = []

    def on_update(_: NetOrder, outcome: SubmitOutcome) -> None:
        assert outcome.order is not None
        updates.append((outcome.state, outcome.order.filled_qty))

    broker = _broker(fake)
    try:
        (result,) = execute_orders(
            [order],
            {Venue.ALPACA: broker},
            fill_timeout_s=fill_timeout_s,
            poll_s=0.05,
            lookup_delay_s=0.05,
            on_update=on_update,
        )
    finally:
        broker.close()
    return result, updates


def _cancels(fake: FakeAlpaca) -> int:
    return sum(1 for method, path in fake.log if method == "DELETE")


def test_an_order_accepted_then_filled_later_is_followed_not_cancelled(
    fake_alpaca: FakeAlpaca,
) -> None:
    fake_alpaca.fill_mode = "delayed"
    order = _order()
    start = time.monotonic()
    result, updates = _run(fake_alpaca, order, fill_timeout_s=3.0)
    assert time.monotonic() - start < 2.0  # returned when filled, not at the deadline
    assert result.final is True
    assert result.outcome.state is OrderState.FILLED
    assert updates[0] == (OrderState.SUBMITTED, Decimal(0))
    assert updates[-1] == (OrderState.FILLED, Decimal(10))
    assert _cancels(fake_alpaca) == 0
    (venue_order,) = fake_alpaca.orders_for(order.client_order_id)
    assert venue_order.status == "filled"
    assert len(fake_alpaca.submits) == 1


def test_a_partial_fill_at_the_deadline_is_reported_and_the_rest_cancelled(
    fake_alpaca: FakeAlpaca,
) -> None:
    fake_alpaca.fill_mode = "partial_open"
    order = _order()
    start = time.monotonic()
    result, updates = _run(fake_alpaca, order, fill_timeout_s=0.8)
    assert time.monotonic() - start >= 0.8
    assert result.final is True
    assert result.outcome.state is OrderState.CANCELLED
    assert result.outcome.order is not None
    assert result.outcome.order.filled_qty == 5
    assert result.outcome.order.avg_price == Decimal("500.25")
    assert (OrderState.PARTIALLY_FILLED, Decimal(5)) in updates
    assert updates[-1] == (OrderState.CANCELLED, Decimal(5))
    assert _cancels(fake_alpaca) == 1
    (venue_order,) = fake_alpaca.orders_for(order.client_order_id)
    assert venue_order.status == "canceled"
    assert venue_order.filled_qty == 5
    assert fake_alpaca.positions["SPY"] == 5
