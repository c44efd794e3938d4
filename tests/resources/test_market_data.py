"""Reference prices: fresh ones pass, stale or missing ones are ``None`` (→ ``no_price``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from resources.brokers.ccxt.client import CcxtBroker
from resources.market_data import (
    AlpacaPriceSource,
    BarPriceSource,
    CcxtPriceSource,
    PriceSource,
    fresh,
)
from tests.fakes.fake_alpaca import FakeAlpaca
from tests.fakes.fake_binance import FakeBinance

NOW = datetime(2025, 3, 3, 15, 0, tzinfo=UTC)


@pytest.fixture
def fake_alpaca() -> Iterator[FakeAlpaca]:
    fake = FakeAlpaca().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_binance() -> Iterator[FakeBinance]:
    fake = FakeBinance().start()
    yield fake
    fake.stop()


def test_fresh_refuses_stale_missing_and_non_positive() -> None:
    age = timedelta(minutes=5)
    assert fresh("X", "10.5", NOW, max_age=age, now=NOW) == (Decimal("10.5"), NOW)
    assert fresh("X", "10.5", NOW - timedelta(minutes=6), max_age=age, now=NOW) is None
    assert fresh("X", None, NOW, max_age=age, now=NOW) is None
    assert fresh("X", 0, NOW, max_age=age, now=NOW) is None
    with pytest.raises(ValueError, match=r"X: price timestamp .* has no time zone"):
        fresh("X", 1, datetime(2025, 3, 3), max_age=age, now=NOW)  # noqa: DTZ001


def test_bar_source_is_the_paper_default() -> None:
    source = BarPriceSource(
        {"SPY": (Decimal("500"), NOW), "OLD": (Decimal("1"), NOW - timedelta(days=30))},
        clock=lambda: NOW,
    )
    assert isinstance(source, PriceSource)
    assert source.price("SPY") == (Decimal("500"), NOW)
    assert source.price("OLD") is None
    assert source.price("NOPE") is None


def test_ccxt_ticker(fake_binance: FakeBinance) -> None:
    broker = CcxtBroker(
        exchange="binance",
        api_key=fake_binance.key,
        secret=fake_binance.secret,
        base_url=fake_binance.url,
        timeout_s=0.5,
        enable_rate_limit=False,
    )
    source = CcxtPriceSource(broker.client)
    got = source.price("BTC/USDT")
    assert got is not None
    assert got[0] == Decimal("60000")
    late = CcxtPriceSource(broker.client, clock=lambda: datetime.now(UTC) + timedelta(hours=1))
    assert late.price("BTC/USDT") is None
    fake_binance.inject("status", on="any", status=503, when="before")
    assert source.price("BTC/USDT") is None


def test_alpaca_latest_trade(fake_alpaca: FakeAlpaca) -> None:
    source = AlpacaPriceSource(
        api_key=fake_alpaca.key,
        secret_key=fake_alpaca.secret,
        url_override=fake_alpaca.url,
        timeout_s=0.5,
    )
    got = source.price("SPY")
    assert got is not None
    assert got[0] == Decimal("500.25")
    fake_alpaca.trade_time = "2020-01-02T15:00:00Z"
    assert source.price("SPY") is None
    assert source.price("NOPE") is None
