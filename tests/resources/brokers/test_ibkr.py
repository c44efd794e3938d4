"""ib_async's real ``IB`` client, through the IB adapter, against the fake TWS socket server.

The fake (``tests/fakes/fake_tws.py``) proves the wire protocol, the order lifecycle and
reconnects; it does not prove margin, permissions, contract months or market hours.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace

import pytest

from allocator.execution.orders import (
    AssetClass,
    BrokerFill,
    OrderRequest,
    OrderState,
    Side,
    Venue,
    client_order_id,
    submit_idempotently,
)
from resources.brokers.ibkr import IbkrBroker
from resources.brokers.ibkr.mapping import to_broker_order
from tests.contract.broker import BrokerContract, Harness
from tests.fakes.fake_tws import FakeTws

TIMEOUT_S = 1.0


@pytest.fixture
def fake_tws() -> Iterator[FakeTws]:
    fake = FakeTws().start()
    yield fake
    fake.stop()


def _broker(fake: FakeTws, client_id: int = 7) -> IbkrBroker:
    return IbkrBroker(port=fake.port, client_id=client_id, timeout_s=TIMEOUT_S, settle_s=0.1)


class TestIbkrContract(BrokerContract):
    @pytest.fixture
    def venue(self, fake_tws: FakeTws) -> Iterator[Harness]:
        brokers: list[IbkrBroker] = [_broker(fake_tws)]
        assert brokers[0].ib.isConnected()  # connect and sync before requests are counted

        def new_broker() -> IbkrBroker:
            brokers.append(_broker(fake_tws))
            return brokers[-1]

        yield Harness(
            broker=brokers[0],
            venue=Venue.IBKR,
            symbol="SPY",
            asset_class=AssetClass.ETF,
            qty=Decimal(4),
            reference_price=Decimal("500.25"),
            inject=fake_tws.inject,
            venue_orders=lambda cid: len(fake_tws.orders_for(cid)),
            venue_qty=lambda cid: fake_tws.orders_for(cid)[0].qty,
            request_count=lambda: len(fake_tws.log),
            restart=fake_tws.restart,
            new_broker=new_broker,
            dedup_after_fill=False,
            lot_case=(Decimal("3.7"), Decimal(3)),
            too_small=Decimal("0.5"),
        )
        for broker in brokers:
            broker.close()


def test_disconnect_before_the_fill_is_resolved_by_lookup(fake_tws: FakeTws) -> None:
    broker = _broker(fake_tws)
    try:
        request = OrderRequest(
            client_order_id=client_order_id("ib", "bar", "SPY", Side.BUY),
            symbol="SPY",
            asset_class=AssetClass.ETF,
            side=Side.BUY,
            qty=Decimal(2),
            venue=Venue.IBKR,
        )
        fake_tws.inject("disconnect", fill=False)
        outcome = submit_idempotently(broker, request, lookups=3, delay_s=0.05)
        assert outcome.state is OrderState.SUBMITTED, outcome.detail
        assert "resolved by lookup" in outcome.detail
        assert len(fake_tws.orders_for(request.client_order_id)) == 1
        again = submit_idempotently(broker, request, lookups=3, delay_s=0.05)
        assert not again.placed_by_this_call
        assert len(fake_tws.orders_for(request.client_order_id)) == 1
    finally:
        broker.close()


def _request(symbol: str, asset_class: AssetClass, qty: str, tag: str) -> OrderRequest:
    return OrderRequest(
        client_order_id=client_order_id("ib", tag, symbol, Side.BUY),
        symbol=symbol,
        asset_class=asset_class,
        side=Side.BUY,
        qty=Decimal(qty),
        venue=Venue.IBKR,
    )


def test_avg_price_comes_from_the_fills_when_the_order_carries_none() -> None:
    # A completed order rebuilt after a reconnect: status Filled, zero filled, zero price.
    trade = SimpleNamespace(
        order=SimpleNamespace(
            orderRef="c" * 32, permId=9, orderId=0, action="BUY", totalQuantity=30000.0
        ),
        orderStatus=SimpleNamespace(status="Filled", filled=0.0, avgFillPrice=0.0),
    )
    fills = tuple(
        BrokerFill(
            fill_id=f"e{i}",
            client_order_id="c" * 32,
            symbol="EUR/USD",
            side=Side.BUY,
            qty=Decimal(q),
            price=Decimal(p),
            fee=Decimal("1"),
        )
        for i, (q, p) in enumerate([("10000", "1.0850"), ("20000", "1.0853")])
    )
    order = to_broker_order("EUR/USD", trade, fills)
    assert order.state is OrderState.FILLED
    assert order.filled_qty == Decimal(30000)
    # (10000 × 1.0850 + 20000 × 1.0853) / 30000 = 32556 / 30000 = 1.0852
    assert order.avg_price == Decimal("1.0852")
    assert order.fee == Decimal(2)
    unfilled = SimpleNamespace(
        order=trade.order,
        orderStatus=SimpleNamespace(status="Cancelled", filled=0.0, avgFillPrice=0.0),
    )
    assert to_broker_order("EUR/USD", unfilled, ()).avg_price is None


def test_an_order_found_after_a_reconnect_has_its_price(fake_tws: FakeTws) -> None:
    request = _request("SPY", AssetClass.ETF, "2", "reconnect-price")
    first = _broker(fake_tws)
    try:
        placed = submit_idempotently(first, request, lookups=2, delay_s=0.05)
        assert placed.state is OrderState.FILLED, placed.detail
    finally:
        first.close()
    again = _broker(fake_tws)  # same client id: TWS syncs the completed order and executions
    try:
        found = again.lookup("SPY", request.client_order_id)
        assert found is not None
        assert found.state is OrderState.FILLED
        assert found.filled_qty == Decimal(2)
        assert found.avg_price == Decimal("500.25")
        assert sum(f.qty for f in found.fills) == Decimal(2)
        rerun = submit_idempotently(again, request, lookups=2, delay_s=0.05)
        assert not rerun.placed_by_this_call
        assert rerun.order is not None
        assert rerun.order.avg_price == Decimal("500.25")
        assert len(fake_tws.orders_for(request.client_order_id)) == 1
    finally:
        again.close()


def test_forex_pair_qualifies_and_trades(fake_tws: FakeTws) -> None:
    request = _request("EUR/USD", AssetClass.FOREX, "20000", "forex")
    broker = _broker(fake_tws)
    try:
        contract = broker.contract("EUR/USD", AssetClass.FOREX)
        assert (contract.secType, contract.symbol, contract.currency) == ("CASH", "EUR", "USD")
        assert contract.conId == 12087792  # qualified by the fake TWS
        outcome = submit_idempotently(broker, request, lookups=2, delay_s=0.05)
        assert outcome.state is OrderState.FILLED, outcome.detail
        assert outcome.order is not None
        assert outcome.order.filled_qty == Decimal(20000)
        assert outcome.order.avg_price == Decimal("1.0850")
        assert {f.symbol for f in outcome.order.fills} == {"EUR/USD"}
        assert broker.positions() == {"EUR/USD": Decimal(20000)}
        (sent,) = fake_tws.orders_for(request.client_order_id)
        assert sent.instrument.sec_type == "CASH"
    finally:
        broker.close()
    again = _broker(fake_tws)
    try:
        found = again.lookup("EUR/USD", request.client_order_id)
        assert found is not None
        assert found.avg_price == Decimal("1.0850")
    finally:
        again.close()


def test_quantity_reaches_tws_as_exact_decimal_text(fake_tws: FakeTws) -> None:
    broker = _broker(fake_tws)
    request = OrderRequest(
        client_order_id=client_order_id("paper", "2024-05-01", "SPY", Side.BUY, 9),
        symbol="SPY",
        asset_class=AssetClass.ETF,
        side=Side.BUY,
        qty=Decimal("4"),
        venue=Venue.IBKR,
    )
    broker.submit(request)
    assert fake_tws.received_qty == ["4"]  # a float would have gone out as "4.0"


def test_concurrent_lookups_on_one_session_all_get_their_answer(fake_tws: FakeTws) -> None:
    # A bar's orders go out concurrently (execute_orders), each looked up before it is sent.
    # ib_async keeps one future per request kind ("completedOrders", "openOrders",
    # "positions"): a second such request while one is in flight would orphan the first,
    # which then times out and leaves its order unknown, unsent.
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    broker = _broker(fake_tws)
    placed = submit_idempotently(broker, _request("SPY", AssetClass.ETF, "1", "seen"), lookups=2)
    assert placed.state is OrderState.FILLED, placed.detail
    n = 8
    barrier = Barrier(n)

    def lookup(i: int) -> object:
        barrier.wait()
        if i % 2:
            return broker.positions()
        return broker.lookup("SPY", client_order_id("ib", f"never-{i}", "SPY", Side.BUY))

    try:
        with ThreadPoolExecutor(n) as pool:
            answers = list(pool.map(lookup, range(n)))
    finally:
        broker.close()
    assert answers == [None if i % 2 == 0 else {"SPY": Decimal(1)} for i in range(n)]
