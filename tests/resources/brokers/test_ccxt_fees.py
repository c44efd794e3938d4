"""ccxt fees in the base coin and in a third currency, and the reconciliation baseline."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from allocator.config import RoutingConfig
from allocator.execution import DEFAULT_INSTRUMENTS, Intent, parse_bar, run_bar
from allocator.execution.orders import AssetClass, OrderRequest, Side, Venue
from allocator.execution.reconcile import DifferenceKind, reconcile_at_start
from allocator.execution.records import Bar
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


# -- the bar path: fees in the base coin and in a third currency, settled and reconciled ------

BTC = "BTC/USDT"
PRICE = Decimal(60000)


def _bar_intents(ledger: Any, bar: Bar, a: str = "0.01", b: str = "0.005") -> None:
    ledger.register_strategies(["A", "B"])
    ledger.submit_intents(
        [
            Intent(
                intent_id=f"{s}-{bar}",
                strategy=s,
                symbol=BTC,
                asset_class=AssetClass.CRYPTO,
                qty=Decimal(q),
                bar=bar,
            )
            for s, q in (("A", a), ("B", b))
        ]
    )


def _run(
    ledger: Any, broker: CcxtBroker, bar: Bar, checkpoint: Callable[[str], None] | None = None
) -> Any:
    return run_bar(
        ledger=ledger,
        brokers={Venue.CCXT: broker},
        bar=bar,
        prices={BTC: PRICE},
        budgets=None,
        instruments=DEFAULT_INSTRUMENTS,
        routing=RoutingConfig(),
        total_capital=Decimal(100_000),
        account="paper",
        cash_quantum=Decimal("0.00000001"),
        lookup_delay_s=0.01,
        fill_timeout_s=2.0,
        poll_s=0.02,
        **({} if checkpoint is None else {"checkpoint": checkpoint}),
    )


def _reconciled(ledger: Any, broker: CcxtBroker) -> Any:
    outcome = reconcile_at_start(ledger, {Venue.CCXT: broker}, source="test")
    recorded = outcome["ccxt"]
    assert not isinstance(recorded, str), recorded
    return recorded.record


def _dashboard_unexplained(ledger: Any) -> Decimal:
    from allocator.config import AllocatorConfig
    from allocator.dashboard import book_series
    from assets.dashboard import ledger_history

    history = ledger_history(
        ledger, lambda _bar: {BTC: PRICE}, DEFAULT_INSTRUMENTS, AllocatorConfig()
    )
    return book_series(history).unexplained


class _CrashError(Exception):
    pass


def _crash_at(name: str) -> Callable[[str], None]:
    def checkpoint(seen: str) -> None:
        if seen == name:
            raise _CrashError(seen)

    return checkpoint


def test_a_base_coin_fee_reduces_the_positions_it_was_taken_from_and_the_venue_reconciles(
    fake_binance: FakeBinance, broker: CcxtBroker, ledger: Any
) -> None:
    fake_binance.fee_asset = "received"  # a buy pays 0.1% in the coin received
    assert _reconciled(ledger, broker).ok  # the first reconciliation: the (empty) baseline
    bar = parse_bar("2024-05-01")
    _bar_intents(ledger, bar)  # A +0.01, B +0.005: one buy of 0.015, fee 0.000015 BTC
    with pytest.raises(_CrashError):  # the fills are journaled, the bar not yet recorded
        _run(ledger, broker, bar, _crash_at("recording"))
    venue_btc = fake_binance.balances["BTC"]
    assert venue_btc == Decimal("0.014985")
    # Reconciliation counts the journaled fill net of its base-coin fee: no halt.
    assert _reconciled(ledger, broker).ok
    run = _run(ledger, broker, bar)
    assert run.outcome is not None
    positions = ledger.positions()
    # Attributed like any fee: pro rata to the external fills, 1000 and 500 units of 1e-8.
    assert positions == {("A", BTC): Decimal("0.00999"), ("B", BTC): Decimal("0.004995")}
    assert sum(positions.values()) == venue_btc  # the strategies sum to the venue's balance
    cash = ledger.cash()
    assert cash == {"A": Decimal("-600.00"), "B": Decimal("-300.00")}  # not charged in USDT
    external = {f.strategy: f for f in ledger.virtual_fills(bar) if not f.internal}
    assert (external["A"].qty, external["A"].base_fee) == (Decimal("0.01"), Decimal("0.00001"))
    assert (external["B"].qty, external["B"].base_fee) == (Decimal("0.005"), Decimal("0.000005"))
    assert ledger.fees_in_kind() == {}
    record = _reconciled(ledger, broker)
    assert record.ok, record.differences
    assert _dashboard_unexplained(ledger) == 0
    # B's position is not whole lots (0.004995 = 499.5 lots): the next bar still plans and
    # B sells its 499 whole lots; the half lot stays B's, in the ledger and at the venue.
    bar2 = parse_bar("2024-05-02")
    ledger.submit_intents(
        [
            Intent(
                intent_id="B-exit",
                strategy="B",
                symbol=BTC,
                asset_class=AssetClass.CRYPTO,
                qty=Decimal("-0.00499"),
                bar=bar2,
            )
        ]
    )
    fake_binance.fee_asset = "quote"  # Binance's sells pay in the quote received
    run2 = _run(ledger, broker, bar2)
    assert run2.outcome is not None
    assert ledger.positions()[("B", BTC)] == Decimal("0.000005")
    assert sum(ledger.positions().values()) == fake_binance.balances["BTC"]
    assert _reconciled(ledger, broker).ok
    assert _dashboard_unexplained(ledger) == 0


def test_a_fee_in_a_third_currency_is_recorded_in_it_per_strategy_never_as_cash(
    fake_binance: FakeBinance, broker: CcxtBroker, ledger: Any
) -> None:
    fake_binance.fee_asset = "BNB"
    fake_binance.balances["BNB"] = Decimal(1)
    bar = parse_bar("2024-05-01")
    _bar_intents(ledger, bar)
    run = _run(ledger, broker, bar)
    assert run.outcome is not None
    # 0.015 × 60000 × 0.1% = 0.9 USDT = 0.0018 BNB at 500, split 2:1 like any fee.
    assert ledger.fees_in_kind() == {
        "A": {"BNB": Decimal("0.0012")},
        "B": {"BNB": Decimal("0.0006")},
    }
    assert ledger.cash() == {"A": Decimal("-600.00"), "B": Decimal("-300.00")}
    assert ledger.positions() == {("A", BTC): Decimal("0.01"), ("B", BTC): Decimal("0.005")}
    (fill,) = ledger.broker_fills()
    assert (fill.fee, fill.fee_currency) == (Decimal("0.0018"), "BNB")
    from cli.book import book_of

    book = book_of(ledger, DEFAULT_INSTRUMENTS)
    assert book["fees_in_kind"] == {"A": {"BNB": "0.0012"}, "B": {"BNB": "0.0006"}}
    assert book["cash"] == {"A": "-600", "B": "-300"}
    assert run.outcome.fee_paid == 0  # no quote fee, and BNB has no price here
    assert _reconciled(ledger, broker).ok
    assert _dashboard_unexplained(ledger) == 0


def test_a_quote_fee_is_charged_to_cash_as_before(
    fake_binance: FakeBinance, broker: CcxtBroker, ledger: Any
) -> None:
    bar = parse_bar("2024-05-01")
    _bar_intents(ledger, bar)
    run = _run(ledger, broker, bar)
    assert run.outcome is not None
    assert run.outcome.fee_paid == Decimal("0.9")
    assert ledger.cash() == {"A": Decimal("-600.60"), "B": Decimal("-300.30")}
    assert ledger.positions() == {("A", BTC): Decimal("0.01"), ("B", BTC): Decimal("0.005")}
    assert ledger.fees_in_kind() == {}
    assert _reconciled(ledger, broker).ok
