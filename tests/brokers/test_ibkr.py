"""ib_async's real ``IB`` client, through the IB adapter, against the fake TWS socket server.

The fake (``tests/fakes/fake_tws.py``) proves the wire protocol, the order lifecycle and
reconnects; it does not prove margin, permissions, contract months or market hours.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from fakes.fake_tws import FakeTws

from allocator.orders import AssetClass, OrderState, Venue, submit_idempotently
from resources.brokers.ibkr import IbkrBroker

from .contract import BrokerContract, Harness

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
    from allocator.orders import OrderRequest, Side, client_order_id

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
