"""The ledger on both stores: idempotent inboxes, exact decimals, atomic bars, positions."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.config import RoutingConfig
from allocator.execution import DEFAULT_INSTRUMENTS, Intent, StrategyState, parse_bar, run_bar
from allocator.execution.inbox import ReturnRow
from allocator.execution.orders import Venue
from resources.brokers.paper.client import PaperBroker, PaperBrokerConfig
from resources.ledger import AllocationRow, EventRow, Ledger, LedgerPaperState
from resources.ledger import bars as bars_module
from resources.ledger import engine as engine_module

D = Decimal
QUANTUM = D("0.00000001")


def _intent(i: str, s: str, m: str, q: str | int, bar: str = "2024-05-01") -> Intent:
    return Intent(
        intent_id=i,
        strategy=s,
        symbol=m,
        asset_class=DEFAULT_INSTRUMENTS[m].asset_class,
        qty=D(str(q)),
        bar=parse_bar(bar),
    )


def _brokers(ledger: Ledger, fill_ratio: str = "1") -> dict[Venue, PaperBroker]:
    state = LedgerPaperState(ledger)
    config = PaperBrokerConfig(fill_ratio=D(fill_ratio))
    return {
        v: PaperBroker(venue=v, instruments=DEFAULT_INSTRUMENTS, config=config, state=state)
        for v in Venue
    }


def _run(ledger: Ledger, bar: str, prices: dict[str, str], brokers: Any, **kw: Any) -> Any:
    b = parse_bar(bar)
    return run_bar(
        ledger=ledger,
        brokers=brokers,
        bar=b,
        prices={k: D(v) for k, v in prices.items()},
        budgets=kw.get("budgets"),
        instruments=DEFAULT_INSTRUMENTS,
        routing=RoutingConfig(),
        total_capital=D(100_000),
        account="paper",
        cash_quantum=QUANTUM,
        fee_model=brokers[Venue.ALPACA].config.fees.fee,
        lookup_delay_s=0.0,
    )


def test_migrations_are_idempotent(ledger_url: str) -> None:
    first = Ledger(ledger_url)
    first.close()
    again = Ledger(ledger_url)
    try:
        with again.engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        assert version == "0006"
        assert again.strategies() == []
    finally:
        again.close()


def test_the_migrations_build_exactly_the_declared_schema(ledger_url: str) -> None:
    """Alembic's autogenerate finds nothing between the migrated database and schema.py."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from resources.ledger import schema

    store = Ledger(ledger_url)
    try:
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
        assert diff == []
    finally:
        store.close()


def test_a_ledger_at_head_opens_without_running_alembic(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Ledger(ledger_url).close()  # created and brought to head
    calls: list[str] = []
    monkeypatch.setattr(engine_module.command, "upgrade", lambda cfg, rev: calls.append(rev))
    Ledger(ledger_url).close()
    assert calls == []  # recognised from alembic_version alone
    behind = Ledger(ledger_url, upgrade=False)
    with behind.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    behind.close()
    Ledger(ledger_url).close()
    assert calls == ["head"]  # behind head: Alembic runs


def test_intents_are_idempotent_and_conflicts_refused(ledger: Ledger) -> None:
    report = ledger.submit_intents([_intent("x1", "A", "SPY", 10), _intent("x2", "A", "KO", -3)])
    assert (report.accepted, report.unchanged, report.refused) == (2, 0, ())
    again = ledger.submit_intents([_intent("x1", "A", "SPY", 10), _intent("x2", "A", "KO", -4)])
    assert (again.accepted, again.unchanged) == (0, 1)
    assert [(r.key, r.reason) for r in again.refused] == [("x2", "conflict")]
    stored = ledger.intents_for_bar(parse_bar("2024-05-01"))
    assert [(i.intent_id, i.qty) for i in stored] == [("x1", D(10)), ("x2", D(-3))]


def test_returns_restated_refused_unless_correction(ledger: Ledger) -> None:
    rows = [ReturnRow(date="2024-05-01", strategy="A", value=0.01)]
    assert ledger.submit_returns(rows).accepted == 1
    assert ledger.submit_returns(rows).unchanged == 1
    restated = [ReturnRow(date="2024-05-01", strategy="A", value=0.02)]
    refused = ledger.submit_returns(restated).refused
    assert [(r.key, r.reason) for r in refused] == [("2024-05-01/A", "restated")]
    assert ledger.submit_returns(restated, correction=True).accepted == 1
    assert [(r.value, r.version, r.correction) for r in ledger.return_history("A")] == [
        (0.01, 1, False),
        (0.02, 2, True),
    ]
    assert ledger.returns() == restated
    assert ledger.strategies() == ["A"]


def test_allocations_budgets_and_events(ledger: Ledger) -> None:
    ledger.write_allocations(
        [
            AllocationRow(
                date="2024-04-30",
                strategy="A",
                capital=D("12345.678901234567"),
                final_weight=0.1234,
                breaker_state="half",
                benched=False,
            ),
            AllocationRow(
                date="2024-04-30",
                strategy="B",
                capital=D(0),
                final_weight=0.0,
                breaker_state="normal",
                benched=True,
            ),
            AllocationRow(
                date="2024-05-01",
                strategy="A",
                capital=D(1),
                final_weight=0.5,
                breaker_state="normal",
                benched=False,
            ),
        ]
    )
    budgets = ledger.budgets("2024-05-01", D(2))
    assert budgets["A"].capital == D("12345.678901234567")
    assert budgets["A"].state is StrategyState.HALF
    assert budgets["A"].limit == D("24691.357802469134")
    assert budgets["B"].state is StrategyState.BENCHED
    event = EventRow(date="2024-04-30", kind="bench", strategy="B", detail="corr 0.8 with A")
    ledger.write_events([event, event])
    ledger.write_events(
        [EventRow(date="2024-04-30", kind="rebalance", strategy=None, detail="event")]
    )
    assert [e.kind for e in ledger.events()] == ["bench", "rebalance"]


def test_seed_bar_recorded_once_with_exact_cash(ledger: Ledger) -> None:
    ledger.submit_intents([_intent("a1", "A", "SPY", 100), _intent("b1", "B", "SPY", -60)])
    brokers = _brokers(ledger)
    run = _run(ledger, "2024-05-01", {"SPY": "500.123456789"}, brokers)
    assert run.outcome is not None
    assert [(o.symbol, o.side.value, o.qty) for o in run.orders] == [("SPY", "buy", D(40))]
    assert ledger.positions() == {("A", "SPY"): D(100), ("B", "SPY"): D(-60)}
    # Paper fill price: 500.123456789 rounded up to the 0.01 tick = 500.13; no ETF fee.
    assert ledger.cash() == {"A": D("-50013.00"), "B": D("30007.80")}
    assert ledger.savings(parse_bar("2024-05-01")) == 0
    again = _run(ledger, "2024-05-01", {"SPY": "500.123456789"}, brokers)
    assert again.outcome is None
    assert len(ledger.broker_fills()) == 1
    assert len(brokers[Venue.ALPACA].state.orders("paper-alpaca")) == 1


def test_netting_savings_are_the_fees_of_separate_orders(ledger: Ledger) -> None:
    # Crypto taker fee 10 bps: A buys 0.5 BTC, B sells 0.2 BTC at 60000. Separately:
    # 0.5×60000×0.001 + 0.2×60000×0.001 = 30 + 12 = 42; the net order of 0.3 pays 18.
    ledger.submit_intents(
        [_intent("a", "A", "BTC/USDT", "0.5"), _intent("b", "B", "BTC/USDT", "-0.2")]
    )
    _run(ledger, "2024-05-01", {"BTC/USDT": "60000"}, _brokers(ledger))
    assert ledger.savings(parse_bar("2024-05-01")) == D(24)
    assert sum(ledger.cash().values()) == -D("0.3") * D(60000) - D(18)


def test_a_failed_record_leaves_the_ledger_untouched(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.submit_intents([_intent("a1", "A", "SPY", 100)])

    def boom(*_: Any) -> None:
        raise RuntimeError("disk full in the middle of the bar")

    monkeypatch.setattr(bars_module, "_write_virtual_fills", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        _run(ledger, "2024-05-01", {"SPY": "100"}, _brokers(ledger))
    bar = parse_bar("2024-05-01")
    assert not ledger.bar_done(bar)
    assert ledger.gating(bar) == []
    # The fill was journaled as it arrived; the failed record settled nothing.
    assert len(ledger.broker_fills()) == 1
    assert ledger.unsettled_fills() == ledger.broker_fills()
    assert ledger.positions() == {}
    monkeypatch.undo()
    done = _run(ledger, "2024-05-01", {"SPY": "100"}, _brokers(ledger))
    assert done.outcome is not None
    assert ledger.positions() == {("A", "SPY"): D(100)}
    assert len(ledger.broker_fills()) == 1
    assert ledger.unsettled_fills() == []


_BAR_COUNTER = iter(range(10**6))


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from("ABCD"), st.sampled_from(["SPY", "KO", "BTC/USDT"]), st.integers(-9, 9)
        ),
        min_size=1,
        max_size=10,
    ),
    st.sampled_from(["1", "0.5", "0.3"]),
)
def test_virtual_positions_sum_to_the_broker_position(
    ledger: Ledger, rows: list[tuple[str, str, int]], fill_ratio: str
) -> None:
    day = next(_BAR_COUNTER)
    bar = f"2030-01-01T{day // 3600 % 24:02d}:{day // 60 % 60:02d}:{day % 60:02d}Z"
    intents = [
        _intent(
            f"{day}-{k}",
            s,
            m,
            q * DEFAULT_INSTRUMENTS[m].lot_size * 1000 if m == "BTC/USDT" else q,
            bar,
        )
        for k, (s, m, q) in enumerate(rows)
        if q
    ]
    ledger.submit_intents(intents)
    brokers = _brokers(ledger, fill_ratio)
    _run(ledger, bar, {"SPY": "500", "KO": "60", "BTC/USDT": "60000"}, brokers)
    positions = ledger.positions()
    fills = ledger.virtual_fills()
    for key, qty in positions.items():
        assert qty == sum((f.qty for f in fills if (f.strategy, f.symbol) == key), D(0))
    at_broker: dict[str, Decimal] = {}
    for venue_broker in brokers.values():
        for symbol, qty in venue_broker.positions().items():
            at_broker[symbol] = at_broker.get(symbol, D(0)) + qty
    virtual: dict[str, Decimal] = {}
    for (_, symbol), qty in positions.items():
        virtual[symbol] = virtual.get(symbol, D(0)) + qty
    assert {k: v for k, v in virtual.items() if v} == at_broker
