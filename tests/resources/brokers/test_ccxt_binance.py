"""ccxt's real ``binance`` client against the local Binance fake (signatures verified)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from allocator.errors import BrokerError, ConfigError
from allocator.execution.orders import AssetClass, Venue
from resources.brokers.ccxt.client import CcxtBroker
from tests.contract.broker import BrokerContract, Harness
from tests.fakes.fake_binance import FakeBinance


@pytest.fixture
def fake_binance() -> Iterator[FakeBinance]:
    fake = FakeBinance().start()
    yield fake
    fake.stop()


def _broker(fake: FakeBinance, *, secret: str | None = None) -> CcxtBroker:
    return CcxtBroker(
        exchange="binance",
        api_key=fake.key,
        secret=secret or fake.secret,
        base_url=fake.url,
        timeout_s=0.5,
        enable_rate_limit=False,
    )


class TestBinanceContract(BrokerContract):
    @pytest.fixture
    def venue(self, fake_binance: FakeBinance) -> Iterator[Harness]:
        broker = _broker(fake_binance)
        yield Harness(
            broker=broker,
            venue=Venue.CCXT,
            symbol="BTC/USDT",
            asset_class=AssetClass.CRYPTO,
            qty=Decimal("0.01"),
            reference_price=fake_binance.prices["BTCUSDT"],
            inject=fake_binance.inject,
            venue_orders=lambda cid: len(fake_binance.orders_for(cid)),
            venue_qty=lambda cid: fake_binance.orders_for(cid)[0].qty,
            request_count=lambda: len(fake_binance.log),
            restart=fake_binance.restart,
            new_broker=lambda: _broker(fake_binance),
            dedup_after_fill=False,
            lot_case=(Decimal("0.0123456"), Decimal("0.01234")),
            too_small=Decimal("0.00005"),
        )
        assert fake_binance.bad_signatures == 0
        broker.close()


def test_binance_refuses_a_reused_id_only_while_open(fake_binance: FakeBinance) -> None:
    from allocator.errors import DuplicateOrderError
    from allocator.execution.orders import OrderRequest, Side

    broker = _broker(fake_binance)
    request = OrderRequest(
        client_order_id="e" * 32,
        symbol="BTC/USDT",
        asset_class=AssetClass.CRYPTO,
        side=Side.BUY,
        qty=Decimal("0.001"),
        venue=Venue.CCXT,
    )
    fake_binance.inject("rest")
    broker.submit(request)
    with pytest.raises(DuplicateOrderError, match=r"binance submit: client order id already used"):
        broker.submit(request)
    assert len(fake_binance.orders_for("e" * 32)) == 1


def test_a_wrong_secret_fails_the_signature_check(fake_binance: FakeBinance) -> None:
    broker = _broker(fake_binance, secret="not-the-secret")
    with pytest.raises(BrokerError, match=r"Signature for this request is not valid"):
        broker.lookup("BTC/USDT", "f" * 32)
    assert fake_binance.bad_signatures == 1


def test_base_url_keeps_each_section_path(fake_binance: FakeBinance) -> None:
    urls = _broker(fake_binance).client.urls["api"]
    assert urls["public"] == fake_binance.url + "/api/v3"
    assert urls["fapiPrivate"] == fake_binance.url + "/fapi/v1"


def test_live_mode_guard() -> None:
    with pytest.raises(ConfigError, match=r"'live' needs the venue's live endpoint"):
        CcxtBroker(
            exchange="binance", api_key="k", secret="s", mode="live", base_url="http://127.0.0.1:9"
        )
    with pytest.raises(ConfigError, match=r"'paper' mode points at the live endpoint"):
        CcxtBroker(exchange="binance", api_key="k", secret="s", base_url="https://api.binance.com")
    paper = CcxtBroker(exchange="binance", api_key="k", secret="s")
    assert paper.client.urls["api"]["public"].startswith("https://testnet.binance.vision")
    with pytest.raises(ConfigError, match=r"unknown ccxt exchange 'nosuch'"):
        CcxtBroker(exchange="nosuch", api_key="k", secret="s")


def test_quantity_reaches_binance_as_exact_decimal_text(fake_binance: FakeBinance) -> None:
    from allocator.execution.orders import OrderRequest, Side

    broker = _broker(fake_binance)
    for cid, qty, wire in (("a" * 32, "0.01234", "0.01234"), ("b" * 32, "0.0000900", "0.00009")):
        broker.submit(
            OrderRequest(
                client_order_id=cid,
                symbol="BTC/USDT",
                asset_class=AssetClass.CRYPTO,
                side=Side.BUY,
                qty=Decimal(qty),
                venue=Venue.CCXT,
            )
        )
        body = fake_binance.submits[-1]
        sent = body.form.get("quantity") or body.query.get("quantity")
        assert sent == wire, body.raw_body or body.raw_query  # float(0.00009) is "9e-05"
