"""Properties over random bars: the vectorised core equals the plain loop, and conserves.

The plain loop (``benchmarks/hot_path_loop.py``) is a second, independent implementation with
Decimal notionals and Fraction shares; the invariants are checked from first principles.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.config import RoutingConfig
from allocator.execution import (
    BrokerExecution,
    Instrument,
    InstrumentTable,
    Intent,
    StrategyBudget,
    StrategyState,
    gating,
    plan_bar,
    settle_bar,
)
from allocator.execution.orders import AssetClass, Side

from .helpers import BAR, QUANTUM

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from hot_path_loop import reference_bar

D = Decimal
TABLE = InstrumentTable(
    [
        Instrument(symbol="AAA", asset_class=AssetClass.EQUITY, lot_size=D(1)),
        Instrument(symbol="BBB", asset_class=AssetClass.CRYPTO, lot_size=D("0.01")),
        Instrument(symbol="CCC", asset_class=AssetClass.FOREX, lot_size=D(100)),
        Instrument(symbol="DDD", asset_class=AssetClass.ETF, lot_size=D(1)),
    ]
)
SYMBOLS = ("AAA", "BBB", "CCC", "DDD")
STATES = (StrategyState.NORMAL, StrategyState.HALF, StrategyState.HALTED, StrategyState.BENCHED)


@st.composite
def bars(draw: st.DrawFn) -> dict[str, Any]:
    names = [f"S{k}" for k in range(draw(st.integers(1, 6)))]
    traded = draw(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=4, unique=True))
    prices = {
        m: D(draw(st.integers(1, 50_000))) / 100
        for m in SYMBOLS
        if m in traded or draw(st.booleans())
    }
    positions: dict[tuple[str, str], int] = {}
    for s in names:
        for m in SYMBOLS:
            if draw(st.integers(0, 2)) == 0:
                positions[(s, m)] = draw(st.integers(-20, 20))
    n = draw(st.integers(1, 30))
    rows = []
    for k in range(n):
        lots = draw(st.integers(-30, 30).filter(bool))
        rows.append(
            (
                f"i{draw(st.integers(0, 10**6)):07d}-{k}",
                draw(st.sampled_from(names)),
                draw(st.sampled_from(traded)),
                lots,
            )
        )
    budgets: dict[str, StrategyBudget] | None = None
    if draw(st.booleans()):
        budgets = {}
        for s in names:
            if draw(st.integers(0, 5)) == 0:
                continue  # missing: capital 0
            budgets[s] = StrategyBudget(
                capital=D(draw(st.integers(0, 1_000_000))) / 100,
                max_leverage=draw(st.sampled_from([D(1), D("1.5"), D(2)])),
                state=draw(st.sampled_from(STATES)),
            )
    fill_fraction = draw(st.sampled_from([0.0, 0.3, 0.5, 1.0, 1.0]))
    fee = D(draw(st.integers(0, 10**10))) / 10**10
    return {
        "rows": rows,
        "positions": positions,
        "prices": prices,
        "budgets": budgets,
        "fill": fill_fraction,
        "fee": fee,
        "slip": D(draw(st.integers(-50, 50))) / 100,
    }


def _run(bar: dict[str, Any]) -> Any:
    rows = bar["rows"]
    positions = bar["positions"]
    prices = bar["prices"]
    intents = [
        Intent(
            intent_id=i,
            strategy=s,
            symbol=m,
            asset_class=TABLE[m].asset_class,
            qty=lots * TABLE[m].lot_size,
            bar=BAR,
        )
        for i, s, m, lots in rows
    ]
    plan = plan_bar(
        intents,
        bar=BAR,
        prices=prices,
        positions={k: q * TABLE[k[1]].lot_size for k, q in positions.items()},
        budgets=bar["budgets"],
        instruments=TABLE,
        routing=RoutingConfig(),
        total_capital=D(100_000),
        account="paper",
    )
    executions = {}
    filled_lots: dict[str, int] = {}
    fee_units: dict[str, int] = {}
    for order in plan.orders:
        lot = TABLE[order.symbol].lot_size
        n_lots = int(order.qty / lot)
        f = int(n_lots * bar["fill"])
        fee = bar["fee"] if f else D(0)
        executions[order.symbol] = BrokerExecution(
            filled_qty=f * lot,
            avg_price=order.reference_price + bar["slip"],
            fee=fee,
        )
        filled_lots[order.symbol] = f
        fee_units[order.symbol] = int(fee / QUANTUM)
    outcome = settle_bar(plan, executions, cash_quantum=QUANTUM)
    return plan, executions, outcome, filled_lots, fee_units


@pytest.mark.parametrize("compiled", [False, True], ids=["python-kernel", "numba-kernel"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bars())
def test_vectorised_core_equals_the_plain_loop(compiled: bool, bar: dict[str, Any]) -> None:
    # Small bars run the gating kernel as plain Python, large ones compiled: both must agree
    # with the reference loop, so each test run forces one of the two.
    saved = gating.SMALL_BAR_INTENTS
    gating.SMALL_BAR_INTENTS = 0 if compiled else 10**9
    try:
        plan, _, outcome, filled_lots, fee_units = _run(bar)
    finally:
        gating.SMALL_BAR_INTENTS = saved
    budgets = bar["budgets"]
    limits = (
        None if budgets is None else {s: b.capital * b.max_leverage for s, b in budgets.items()}
    )
    blocked = {
        s: b.state.value
        for s, b in (budgets or {}).items()
        if b.state in (StrategyState.BENCHED, StrategyState.HALTED)
    }
    unit = {m: TABLE[m].lot_size * p for m, p in bar["prices"].items()}
    unit |= {m: None for m in SYMBOLS if m not in unit}
    expected, shares = reference_bar(
        bar["rows"],
        bar["positions"],
        unit,
        limits,
        blocked,
        filled_lots,
        fee_units,
    )
    got = {
        g.intent_id: (int(g.accepted_qty / TABLE[g.symbol].lot_size), g.reason and g.reason.value)
        for g in plan.gated()
    }
    assert got == expected
    by_key: dict[tuple[str, str], list[int]] = {}
    for f in outcome.fills:
        lots = int(f.qty / TABLE[f.symbol].lot_size)
        entry = by_key.setdefault((f.strategy, f.symbol), [0, 0, 0])
        entry[0 if f.internal else 1] += lots
        entry[2] += int(f.fee / QUANTUM)
    want = {k: list(v) for k, v in shares.items() if any(v)}
    assert by_key == want


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bars())
def test_conservation_and_no_gated_exposure_growth(bar: dict[str, Any]) -> None:
    plan, executions, outcome, _, _ = _run(bar)
    sides = {o.symbol: o.side for o in plan.orders}
    for symbol in {f.symbol for f in outcome.fills} | set(sides):
        fills = [f for f in outcome.fills if f.symbol == symbol]
        ex = executions.get(symbol)
        signed = D(0) if ex is None else ex.filled_qty * (1 if sides[symbol] is Side.BUY else -1)
        assert sum((f.qty for f in fills), D(0)) == signed
        expected_cash = (
            D(0) if ex is None or ex.filled_qty == 0 else -signed * ex.avg_price - ex.fee
        )
        assert sum((f.cash for f in fills), D(0)) == expected_cash
        assert sum((f.fee for f in fills), D(0)) == (D(0) if ex is None else ex.fee)
    # No gated strategy increases its exposure: per symbol the position after the bar is
    # between zero and the position before for benched/halted ones; and every strategy's gross
    # after gating is within its limit or no larger than before.
    start = {k: q * TABLE[k[1]].lot_size for k, q in bar["positions"].items()}
    after = dict(start)
    for f in outcome.fills:
        after[(f.strategy, f.symbol)] = after.get((f.strategy, f.symbol), D(0)) + f.qty
    budgets = bar["budgets"] or {}
    prices = bar["prices"]
    for (s, m), q in after.items():
        before = start.get((s, m), D(0))
        b = budgets.get(s)
        if b is not None and b.state in (StrategyState.BENCHED, StrategyState.HALTED):
            assert abs(q) <= abs(before)
            assert q == 0 or (q > 0) == (before > 0)
    # Gross after gating (start + accepted; no order-level cuts here: min notional is 0 and
    # every traded symbol has a price) is within the limit, or no larger than before.
    gated = dict(start)
    for g in plan.gated():
        gated[(g.strategy, g.symbol)] = gated.get((g.strategy, g.symbol), D(0)) + g.accepted_qty
    if bar["budgets"] is not None:
        for s in {s for s, _ in gated}:
            if any(m not in prices for (s2, m), q in start.items() if s2 == s and q):
                continue

            def gross(book: dict[tuple[str, str], Decimal], s: str = s) -> Decimal:
                return sum(
                    (abs(q) * prices[m] for (s2, m), q in book.items() if s2 == s and m in prices),
                    D(0),
                )

            b = budgets.get(s)
            limit = D(0) if b is None else b.limit
            assert gross(gated) <= max(limit, gross(start))
