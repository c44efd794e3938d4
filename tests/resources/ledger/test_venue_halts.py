"""Reconciliation consequences (SPEC §9) and the mode of every order, on both stores.

A reconciliation with differences is recorded and halts new entries on its venue; only a
later clean reconciliation clears the halt; a bar refuses entries routed to a halted venue
with reason ``routing`` while exits pass. Every journaled order carries ``paper`` or ``live``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from allocator.config import RoutingConfig
from allocator.execution import DEFAULT_INSTRUMENTS, Intent, Reason, parse_bar, run_bar
from allocator.execution.orders import (
    AssetClass,
    BrokerOrder,
    OrderRequest,
    Side,
    Venue,
)
from allocator.execution.reconcile import halt_check, reconcile, reconcile_at_start, record_report
from resources.brokers.paper.client import PaperBroker
from resources.ledger import Ledger, LedgerPaperState
from resources.ledger import engine as engine_module

D = Decimal
DIFF = {"kind": "unexpected_position", "key": "SPY", "venue": "2", "ledger": "0"}


def _intent(i: str, s: str, m: str, q: str | int, bar: str) -> Intent:
    return Intent(
        intent_id=i,
        strategy=s,
        symbol=m,
        asset_class=DEFAULT_INSTRUMENTS[m].asset_class,
        qty=D(str(q)),
        bar=parse_bar(bar),
    )


def _brokers(ledger: Ledger) -> dict[Venue, PaperBroker]:
    state = LedgerPaperState(ledger)
    return {v: PaperBroker(venue=v, instruments=DEFAULT_INSTRUMENTS, state=state) for v in Venue}


def _run(ledger: Ledger, bar: str, prices: Mapping[str, str], brokers: Mapping[Venue, Any]) -> Any:
    b = parse_bar(bar)
    return run_bar(
        ledger=ledger,
        brokers=brokers,
        bar=b,
        prices={k: D(v) for k, v in prices.items()},
        budgets=None,
        instruments=DEFAULT_INSTRUMENTS,
        routing=RoutingConfig(),
        total_capital=D(100_000),
        account="paper",
        cash_quantum=D("0.00000001"),
        lookup_delay_s=0.0,
    )


def test_differences_halt_and_only_a_clean_reconciliation_clears(ledger: Ledger) -> None:
    t0 = datetime(2024, 5, 1, 13, 0, tzinfo=UTC)
    first = ledger.record_reconciliation("alpaca", [DIFF], checked_at=t0, source="test")
    assert first.halts_entries
    assert not first.ok
    assert ledger.halted_venues() == {Venue.ALPACA}
    second = ledger.record_reconciliation(Venue.ALPACA, [DIFF, {**DIFF, "key": "QQQ"}])
    assert set(ledger.venue_halts()) == {"alpaca"}
    assert ledger.venue_halts()["alpaca"].id == second.id  # the latest differences
    assert len(ledger.venue_halts()["alpaca"].differences) == 2
    # A clean reconciliation of another venue clears nothing here.
    ledger.record_reconciliation("ccxt", [])
    assert ledger.halted_venues() == {Venue.ALPACA}
    check = halt_check(ledger.venue_halts())
    assert not check.passed
    assert check.metadata["halted_venues"] == ["alpaca"]
    assert "unexpected_position: QQQ" in str(check.metadata["detail"])
    clean = ledger.record_reconciliation("alpaca", [])
    assert clean.ok
    assert not clean.halted
    assert ledger.venue_halts() == {}
    assert ledger.halted_venues() == frozenset()
    assert halt_check(ledger.venue_halts()).passed
    history = ledger.reconciliations("alpaca")
    # Nothing overwritten: both halting rows are kept, each marked cleared by the clean one.
    assert [(r.id, r.halted, r.cleared_by) for r in history] == [
        (first.id, True, clean.id),
        (second.id, True, clean.id),
        (clean.id, False, None),
    ]
    assert history[0].checked_at == t0
    assert history[0].source == "test"
    assert history[0].differences == (DIFF,)
    assert history[0].cleared_at is not None
    assert history[0].cleared_at.tzinfo is not None


def test_unknown_venue_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="'nasdaq' is not a valid Venue"):
        ledger.record_reconciliation("nasdaq", [])


def test_a_halted_venue_refuses_entries_and_passes_exits(ledger: Ledger) -> None:
    brokers = _brokers(ledger)
    ledger.submit_intents([_intent("a1", "A", "SPY", 100, "2024-05-01")])
    _run(ledger, "2024-05-01", {"SPY": "500"}, brokers)
    assert ledger.positions() == {("A", "SPY"): D(100)}
    ledger.record_reconciliation("alpaca", [DIFF])
    ledger.submit_intents(
        [
            _intent("a2", "A", "SPY", -150, "2024-05-02"),  # exit 100 passes, flip 50 refused
            _intent("a3", "A", "SPY", 30, "2024-05-02"),  # an entry again (A is flat): refused
            _intent("b1", "B", "SPY", 10, "2024-05-02"),  # entry: refused
            _intent("c1", "C", "BTC/USDT", "0.1", "2024-05-02"),  # ccxt is not halted
        ]
    )
    run = _run(ledger, "2024-05-02", {"SPY": "500", "BTC/USDT": "60000"}, brokers)
    assert run.outcome is not None
    gated = {g.intent_id: g for g in ledger.gating(parse_bar("2024-05-02"))}
    assert (gated["a2"].requested_qty, gated["a2"].accepted_qty) == (D(-150), D(-100))
    assert gated["a2"].reason is Reason.ROUTING
    assert "venue alpaca is halted by reconciliation" in gated["a2"].detail
    for i, asked in (("a3", D(30)), ("b1", D(10))):
        assert (gated[i].requested_qty, gated[i].accepted_qty) == (asked, 0)
        assert gated[i].reason is Reason.ROUTING
        assert "new entries refused, exits pass" in gated[i].detail
    assert gated["c1"].reason is None
    assert gated["c1"].accepted_qty == D("0.1")
    assert ledger.positions() == {("C", "BTC/USDT"): D("0.1")}
    sent = {(o["symbol"], o["side"], o["qty"]) for o in ledger.orders(parse_bar("2024-05-02"))}
    assert sent == {("SPY", "sell", D(100)), ("BTC/USDT", "buy", D("0.1"))}


def test_explicit_halted_venues_override_the_ledger(ledger: Ledger) -> None:
    ledger.submit_intents([_intent("a1", "A", "SPY", 5, "2024-05-01")])
    b = parse_bar("2024-05-01")
    run = run_bar(
        ledger=ledger,
        brokers=_brokers(ledger),
        bar=b,
        prices={"SPY": D(500)},
        budgets=None,
        instruments=DEFAULT_INSTRUMENTS,
        routing=RoutingConfig(),
        total_capital=D(100_000),
        account="paper",
        cash_quantum=D("0.00000001"),
        lookup_delay_s=0.0,
        halted_venues={Venue.ALPACA},
    )
    assert run.orders == ()
    assert [g.reason for g in ledger.gating(b)] == [Reason.ROUTING]


class _Live:
    """A paper venue that says it is live: its orders must be journaled ``live``."""

    mode = "live"

    def __init__(self, inner: PaperBroker) -> None:
        self.inner = inner
        self.name = inner.name

    def submit(self, request: OrderRequest) -> BrokerOrder:
        return self.inner.submit(request)

    def lookup(self, symbol: str, client_order_id: str) -> BrokerOrder | None:
        return self.inner.lookup(symbol, client_order_id)

    def open_orders(self) -> Sequence[BrokerOrder]:
        return self.inner.open_orders()

    def positions(self) -> Mapping[str, Decimal]:
        return self.inner.positions()

    def cancel(self, symbol: str, client_order_id: str) -> None:
        self.inner.cancel(symbol, client_order_id)


def test_every_order_carries_its_mode(ledger: Ledger) -> None:
    brokers: dict[Venue, Any] = dict(_brokers(ledger))
    brokers[Venue.CCXT] = _Live(brokers[Venue.CCXT])
    ledger.submit_intents(
        [
            _intent("a1", "A", "SPY", 5, "2024-05-01"),
            _intent("c1", "C", "BTC/USDT", "0.1", "2024-05-01"),
        ]
    )
    _run(ledger, "2024-05-01", {"SPY": "500", "BTC/USDT": "60000"}, brokers)
    assert {o["symbol"]: o["mode"] for o in ledger.orders()} == {"SPY": "sim", "BTC/USDT": "live"}
    # A rerun of the bar in the other mode is refused rather than re-labelled.
    with pytest.raises(
        ValueError,
        match=r"\(sim\); the rerun of bar 2024-05-01 wants buy 5 SPY at alpaca \(live\)",
    ):
        ledger.journal_orders(
            parse_bar("2024-05-01"),
            "paper",
            _run_plan_orders(ledger),
            modes={Venue.ALPACA: "live"},
        )
    with pytest.raises(ValueError, match="mode of alpaca must be one of"):
        ledger.journal_orders(parse_bar("2024-05-01"), "paper", [], modes={Venue.ALPACA: "demo"})


def _run_plan_orders(ledger: Ledger) -> list[Any]:
    from allocator.execution.orders import NetOrder

    return [
        NetOrder(
            symbol=str(o["symbol"]),
            asset_class=AssetClass.ETF,
            venue=Venue(o["venue"]),
            side=Side(o["side"]),
            qty=o["qty"],
            reference_price=o["reference_price"],
            client_order_id=str(o["client_order_id"]),
            buy_qty=o["qty"],
            sell_qty=D(0),
        )
        for o in ledger.orders()
        if o["symbol"] == "SPY"
    ]


def test_migration_0002_marks_existing_orders_paper(ledger_url: str) -> None:
    engine = sa.create_engine(ledger_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(engine_module.MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(
            sa.text(
                "INSERT INTO orders (client_order_id, bar, account, venue, symbol, side, qty, "
                "reference_price, state, filled_qty, fee, detail, updated_at) VALUES "
                "('old1', '2024-05-01', 'paper', 'alpaca', 'SPY', 'buy', 1, 500, 'filled', 1, 0, "
                "'', :now)"
            ),
            {"now": datetime(2024, 5, 1, tzinfo=UTC)},
        )
    engine.dispose()
    upgraded = Ledger(ledger_url)
    try:
        assert [(o["client_order_id"], o["mode"]) for o in upgraded.orders()] == [("old1", "paper")]
        assert upgraded.venue_halts() == {}
    finally:
        upgraded.close()


def test_startup_reconciliation_halts_clears_and_skips_venues_in_flight(ledger: Ledger) -> None:
    brokers = _brokers(ledger)
    ledger.submit_intents([_intent("a1", "A", "SPY", 5, "2024-05-01")])
    _run(ledger, "2024-05-01", {"SPY": "500"}, brokers)
    clean = reconcile_at_start(ledger, brokers, source="test")
    assert set(clean) == {v.value for v in Venue}
    assert all(not isinstance(r, str) and r.record.ok and r.cleared == () for r in clean.values())
    # A fill the ledger never journaled appears at the venue: alpaca halts, the rest do not.
    stray = OrderRequest(
        client_order_id="stray1",
        symbol="SPY",
        asset_class=AssetClass.ETF,
        side=Side.BUY,
        qty=D(2),
        venue=Venue.ALPACA,
        reference_price=D(500),
    )
    brokers[Venue.ALPACA].submit(stray)
    # An order in flight at ccxt (journaled, outcome not recorded): ccxt is not compared yet.
    ledger.journal_manual_order(
        OrderRequest(
            client_order_id="fly1",
            symbol="BTC/USDT",
            asset_class=AssetClass.CRYPTO,
            side=Side.BUY,
            qty=D("0.1"),
            venue=Venue.CCXT,
            reference_price=D(60000),
        ),
        account="ops",
        mode="paper",
    )
    halted = reconcile_at_start(ledger, brokers, source="bar_job test")
    assert halted["ccxt"] == "skipped: 1 order(s) in flight"
    alpaca = halted["alpaca"]
    assert not isinstance(alpaca, str)
    assert alpaca.record.halts_entries
    assert alpaca.record.source == "bar_job test"
    assert alpaca.record.differences == (
        {"kind": "position_mismatch", "key": "SPY", "ledger": "5", "venue": "7"},
    )
    assert ledger.halted_venues() == {Venue.ALPACA}
    # The stray position is closed at the venue: the next clean report clears the halt.
    brokers[Venue.ALPACA].submit(
        OrderRequest(
            client_order_id="stray2",
            symbol="SPY",
            asset_class=AssetClass.ETF,
            side=Side.SELL,
            qty=D(2),
            venue=Venue.ALPACA,
            reference_price=D(500),
        )
    )
    report = reconcile(
        "paper-alpaca",
        venue_positions=brokers[Venue.ALPACA].positions(),
        venue_open_orders=brokers[Venue.ALPACA].open_orders(),
        ledger_positions=ledger.expectation("alpaca").positions,
        ledger_open_orders=(),
    )
    stored = record_report(ledger, "alpaca", report, source="operator")
    assert stored.record.ok
    assert stored.cleared == (alpaca.record.id,)
    assert ledger.venue_halts() == {}
