"""ccxt fees in the base coin and in a third currency, and the reconciliation baseline."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from allocator.execution.orders import AssetClass, OrderRequest, Side, Venue
from allocator.execution.reconcile import DifferenceKind, reconcile_at_start
from resources.brokers.ccxt.client import CcxtBroker
from tests.fakes.fake_binance import FakeBinance


@pytest.fixture
def fake_binance() -> Iterator[FakeBinance]:
    fake = FakeBinance().start()
    yield fake
    fake.stop()


@pytest.fixture
def broker(fake_binance: FakeBinance) -> Iterator[CcxtBroker]:
    b = CcxtBroker(
        exchange="binance",
        api_key=fake_binance.key,
        secret=fake_binance.secret,
        base_url=fake_binance.url,
        timeout_s=1.0,
        enable_rate_limit=False,
    )
    yield b
    b.close()


def _buy(cid: str, qty: str = "0.01") -> OrderRequest:
    return OrderRequest(
        client_order_id=cid,
        symbol="BTC/USDT",
        asset_class=AssetClass.CRYPTO,
        side=Side.BUY,
        qty=Decimal(qty),
        venue=Venue.CCXT,
        reference_price=Decimal(60000),
    )


def test_a_fee_in_the_base_coin_is_reported_in_base_units(
    fake_binance: FakeBinance, broker: CcxtBroker
) -> None:
    fake_binance.fee_asset = "received"  # Binance's rule: a buy pays in the coin received
    order = broker.submit(_buy("a" * 32))
    (fill,) = order.fills
    assert (fill.qty, fill.fee, fill.fee_currency) == (
        Decimal("0.01"),
        Decimal("0.00001"),
        "BTC",
    )
    assert order.fee == Decimal("0.6")  # valued in quote at the fill price, for attribution
    # the venue's position is net of it: what the ledger must charge in base units
    assert broker.positions()["BTC/USDT"] == fill.qty - fill.fee


def test_a_fee_in_a_third_currency_is_kept_in_that_currency(
    fake_binance: FakeBinance, broker: CcxtBroker
) -> None:
    fake_binance.fee_asset = "BNB"
    fake_binance.balances["BNB"] = Decimal(1)
    order = broker.submit(_buy("b" * 32))
    (fill,) = order.fills
    assert (fill.fee, fill.fee_currency) == (Decimal("0.0012"), "BNB")  # 0.6 USDT / 500
    assert order.fee == 0  # no quote fee: the BNB fee is on the fill, not recorded as 0 USDT
    assert broker.positions()["BTC/USDT"] == Decimal("0.01")
    assert broker.account()["BNB"] == Decimal("0.9988")


def test_a_quote_fee_has_no_currency(fake_binance: FakeBinance, broker: CcxtBroker) -> None:
    (fill,) = broker.submit(_buy("c" * 32)).fills
    assert (fill.fee, fill.fee_currency) == (Decimal("0.6"), None)


def test_holdings_at_the_first_reconciliation_are_a_baseline_not_a_difference(
    fake_binance: FakeBinance, broker: CcxtBroker, ledger: object
) -> None:
    fake_binance.balances.update({"ETH": Decimal(2), "BNB": Decimal(1)})  # held before us
    first = reconcile_at_start(ledger, {Venue.CCXT: broker}, source="test")  # type: ignore[arg-type]
    assert first["ccxt"].record.ok  # type: ignore[union-attr]
    assert ledger.venue_baseline(Venue.CCXT) == {"ETH/USDT": Decimal(2)}  # type: ignore[attr-defined]
    again = reconcile_at_start(ledger, {Venue.CCXT: broker}, source="test")  # type: ignore[arg-type]
    assert again["ccxt"].record.ok  # type: ignore[union-attr]
    fake_binance.balances["ETH"] = Decimal(3)  # one ETH the allocator does not know of
    third = reconcile_at_start(ledger, {Venue.CCXT: broker}, source="test")  # type: ignore[arg-type]
    record = third["ccxt"].record  # type: ignore[union-attr]
    assert not record.ok
    (difference,) = record.differences
    assert difference["kind"] == DifferenceKind.UNEXPECTED_POSITION
    assert difference["key"] == "ETH/USDT"
    assert Decimal(difference["venue"]) == 1  # only what the allocator did not put there
    # the baseline row is storage, not a reconciliation
    assert len(ledger.reconciliations(Venue.CCXT)) == 3  # type: ignore[attr-defined]
