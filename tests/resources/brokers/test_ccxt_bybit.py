"""ccxt's real ``bybit`` client against the local Bybit v5 fake (signatures verified)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from allocator.errors import BrokerError
from allocator.execution.orders import AssetClass, OrderRequest, Side, Venue
from resources.brokers.ccxt.client import CcxtBroker
from tests.contract.broker import BrokerContract, Harness
from tests.fakes.fake_bybit import FakeBybit


@pytest.fixture
def fake_bybit() -> Iterator[FakeBybit]:
    fake = FakeBybit().start()
    yield fake
    fake.stop()


def _broker(fake: FakeBybit, *, secret: str | None = None) -> CcxtBroker:
    return CcxtBroker(
        exchange="bybit",
        api_key=fake.key,
        secret=secret or fake.secret,
        base_url=fake.url,
        timeout_s=0.5,
        enable_rate_limit=False,
    )


class TestBybitContract(BrokerContract):
    @pytest.fixture
    def venue(self, fake_bybit: FakeBybit) -> Iterator[Harness]:
        broker = _broker(fake_bybit)
        yield Harness(
            broker=broker,
            venue=Venue.CCXT,
            symbol="BTC/USDT",
            asset_class=AssetClass.CRYPTO,
            qty=Decimal("0.01"),
            reference_price=fake_bybit.prices["BTCUSDT"],
            inject=fake_bybit.inject,
            venue_orders=lambda cid: len(fake_bybit.orders_for(cid)),
            venue_qty=lambda cid: fake_bybit.orders_for(cid)[0].qty,
            request_count=lambda: len(fake_bybit.log),
            restart=fake_bybit.restart,
            new_broker=lambda: _broker(fake_bybit),
            dedup_after_fill=True,
            lot_case=(Decimal("0.01234567"), Decimal("0.012345")),
            too_small=Decimal("0.00001"),
            position_delta=lambda qty: qty * (1 - fake_bybit.FEE_RATE),
        )
        assert fake_bybit.bad_signatures == 0
        broker.close()


def test_buy_fee_in_base_coin_is_kept_in_base_units(fake_bybit: FakeBybit) -> None:
    broker = _broker(fake_bybit)
    request = OrderRequest(
        client_order_id="1" * 32,
        symbol="BTC/USDT",
        asset_class=AssetClass.CRYPTO,
        side=Side.BUY,
        qty=Decimal("0.01"),
        venue=Venue.CCXT,
    )
    order = broker.submit(request)
    # 0.1% of 0.01 BTC, charged in BTC, is 0.00001 BTC = 0.6 USDT at 60,000.
    assert order.fee == Decimal("0.6")  # the order's fee, in quote, for attribution
    fill = order.fills[0]
    assert (fill.fee, fill.fee_currency) == (Decimal("0.00001"), "BTC")  # the fill's, in base
    assert broker.account()["BTC"] == Decimal("0.00999") == fill.qty - fill.fee


def test_a_fee_charged_in_the_quote_coin_is_read_as_a_quote_fee(fake_bybit: FakeBybit) -> None:
    # The execution names its fee coin (feeCoin): ccxt must not assume Bybit's base-coin rule.
    fake_bybit.fee_asset = "quote"
    broker = _broker(fake_bybit)
    request = OrderRequest(
        client_order_id="3" * 32,
        symbol="ETH/USDT",
        asset_class=AssetClass.CRYPTO,
        side=Side.BUY,
        qty=Decimal("0.5"),
        venue=Venue.CCXT,
    )
    order = broker.submit(request)
    (fill,) = order.fills
    assert (fill.fee, fill.fee_currency) == (Decimal("1.5"), None)  # 0.1% of 1,500 USDT
    assert order.fee == Decimal("1.5")
    assert broker.positions()["ETH/USDT"] == Decimal("0.5") == fill.qty
    assert fake_bybit.holdings() == {"ETHUSDT": Decimal("0.5")}


def test_a_wrong_secret_fails_the_signature_check(fake_bybit: FakeBybit) -> None:
    broker = _broker(fake_bybit, secret="not-the-secret")
    with pytest.raises(BrokerError, match=r"error sign"):
        broker.lookup("BTC/USDT", "2" * 32)
    assert fake_bybit.bad_signatures >= 1


def test_paper_mode_uses_bybit_testnet() -> None:
    paper = CcxtBroker(exchange="bybit", api_key="k", secret="s")
    private = paper.client.implode_hostname(paper.client.urls["api"]["private"])
    assert private == "https://api-testnet.bybit.com"
