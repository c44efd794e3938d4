"""alpaca-py's real ``TradingClient`` against the local Alpaca fake: the contract, and more."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from allocator.errors import BrokerError, ConfigError
from allocator.execution.orders import AssetClass, OrderRequest, Side, Venue
from resources.brokers.alpaca import LIVE_URL, AlpacaBroker, AlpacaBrokerResource
from tests.contract.broker import BrokerContract, Harness
from tests.fakes.fake_alpaca import FakeAlpaca

TIMEOUT_S = 0.5


@pytest.fixture
def fake_alpaca() -> Iterator[FakeAlpaca]:
    fake = FakeAlpaca().start()
    yield fake
    fake.stop()


def _broker(fake: FakeAlpaca) -> AlpacaBroker:
    return AlpacaBroker(
        api_key=fake.key,
        secret_key=fake.secret,
        base_url=fake.url,
        timeout_s=TIMEOUT_S,
        retry_wait_s=0,
    )


class TestAlpacaContract(BrokerContract):
    @pytest.fixture
    def venue(self, fake_alpaca: FakeAlpaca) -> Iterator[Harness]:
        broker = _broker(fake_alpaca)
        yield Harness(
            broker=broker,
            venue=Venue.ALPACA,
            symbol="SPY",
            asset_class=AssetClass.ETF,
            qty=Decimal(3),
            reference_price=fake_alpaca.prices["SPY"],
            inject=fake_alpaca.inject,
            venue_orders=lambda cid: len(fake_alpaca.orders_for(cid)),
            venue_qty=lambda cid: fake_alpaca.orders_for(cid)[0].qty,
            request_count=lambda: len(fake_alpaca.log),
            restart=fake_alpaca.restart,
            new_broker=lambda: _broker(fake_alpaca),
            dedup_after_fill=True,
            lot_case=(Decimal("1.1234567891234"), Decimal("1.123456789")),
            too_small=Decimal("0.001"),
        )
        broker.close()


def test_whole_share_asset_truncates_to_whole_shares(fake_alpaca: FakeAlpaca) -> None:
    broker = _broker(fake_alpaca)
    request = OrderRequest(
        client_order_id="a" * 32,
        symbol="AAPL",
        asset_class=AssetClass.EQUITY,
        side=Side.SELL,
        qty=Decimal("2.7"),
        venue=Venue.ALPACA,
    )
    order = broker.submit(request)
    assert order.qty == 2
    assert broker.positions()["AAPL"] == -2
    assert fake_alpaca.orders_for("a" * 32)[0].qty == 2


def test_wrong_credentials_are_a_definitive_error(fake_alpaca: FakeAlpaca) -> None:
    broker = AlpacaBroker(api_key="nope", secret_key="nope", base_url=fake_alpaca.url)
    with pytest.raises(BrokerError, match=r"alpaca lookup .*HTTP 401"):
        broker.lookup("SPY", "b" * 32)


def test_silent_server_times_out_as_ambiguous() -> None:
    import socket

    from allocator.errors import AmbiguousBrokerError

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        broker = AlpacaBroker(
            api_key="k", secret_key="s", base_url=f"http://127.0.0.1:{port}", timeout_s=0.3
        )
        with pytest.raises(AmbiguousBrokerError, match=r"no answer in time"):
            broker.lookup("SPY", "c" * 32)


def test_account_reports_cash(fake_alpaca: FakeAlpaca) -> None:
    assert _broker(fake_alpaca).account()["cash"] == Decimal("100000")


def test_live_mode_needs_the_live_url(fake_alpaca: FakeAlpaca) -> None:
    with pytest.raises(ConfigError, match=r"alpaca.mode: 'live' needs the venue's live endpoint"):
        AlpacaBroker(api_key="k", secret_key="s", mode="live", base_url=fake_alpaca.url)
    with pytest.raises(ConfigError, match=r"'paper' mode points at the live endpoint"):
        AlpacaBroker(api_key="k", secret_key="s", base_url=LIVE_URL)
    assert AlpacaBroker(api_key="k", secret_key="s", mode="live").base_url == LIVE_URL


def test_resource_reads_credentials_from_env(
    fake_alpaca: FakeAlpaca, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    monkeypatch.setenv("TEST_ALPACA_KEY", fake_alpaca.key)
    monkeypatch.setenv("TEST_ALPACA_SECRET", fake_alpaca.secret)
    resource = AlpacaBrokerResource(
        api_key=dg.EnvVar("TEST_ALPACA_KEY"),
        secret_key=dg.EnvVar("TEST_ALPACA_SECRET"),
        base_url=fake_alpaca.url,
    )

    @dg.op
    def read(broker: AlpacaBrokerResource) -> str:
        assert broker.lookup("SPY", "d" * 32) is None
        return broker.name

    @dg.job(resource_defs={"broker": resource})
    def job() -> None:
        read()

    result = job.execute_in_process()
    assert result.success
    assert result.output_for_node("read") == "alpaca"


def test_quantity_reaches_alpaca_as_exact_decimal_text(fake_alpaca: FakeAlpaca) -> None:
    import json

    broker = _broker(fake_alpaca)
    for cid, qty in (("a" * 32, "0.000000007"), ("b" * 32, "2"), ("c" * 32, "1.123456789")):
        broker.submit(
            OrderRequest(
                client_order_id=cid,
                symbol="SPY",
                asset_class=AssetClass.ETF,
                side=Side.BUY,
                qty=Decimal(qty),
                venue=Venue.ALPACA,
            )
        )
        assert json.loads(fake_alpaca.submits[-1].raw_body)["qty"] == qty  # text, not a float
