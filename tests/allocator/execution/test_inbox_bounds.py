"""Whatever the inbox accepts, ``plan_bar`` plans: no Int64 overflow, no decimal trap."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from allocator.config import RoutingConfig
from allocator.execution import DEFAULT_INSTRUMENTS, StrategyBudget, parse_bar, plan_bar
from allocator.execution.inbox import DEFAULT_MAX_INTENT_QTY, check_intents

SYMBOLS = ["SPY", "KO", "ES", "EUR/USD", "BTC/USDT", "SOL/USDT"]
BAR = "2024-05-01"


def _qty_text() -> st.SearchStrategy[str]:
    mantissa = st.integers(-(10**18) + 1, 10**18 - 1).filter(lambda m: m != 0)
    exponent = st.integers(-30, 30)
    plain = st.builds(lambda m, e: str(Decimal(m).scaleb(e)), mantissa, exponent)
    edge = st.sampled_from(
        ["1e12", "-1e12", "1000000000000", "-999999999999", "1e-5", "1e15", "-1e20", "1e50"]
    )
    whole = st.integers(-(10**12), 10**12).filter(lambda q: q != 0).map(str)
    return st.one_of(plain, edge, whole, whole)


rows = st.lists(
    st.tuples(st.sampled_from(["A", "B", "C"]), st.sampled_from(SYMBOLS), _qty_text()),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=rows,
    with_budgets=st.booleans(),
    price=st.sampled_from(["0.0001", "1", "500.10", "65000", "99999999"]),
    total=st.sampled_from([10_000, 100_000, 10**12]),
)
def test_plan_bar_runs_on_anything_the_inbox_accepts(
    items: list[tuple[str, str, str]], with_budgets: bool, price: str, total: int
) -> None:
    table = DEFAULT_INSTRUMENTS
    raw = [
        (
            n,
            {
                "intent_id": f"i{n:03d}",
                "strategy": s,
                "symbol": m,
                "asset_class": table[m].asset_class.value,
                "qty": q,
                "bar": BAR,
            },
        )
        for n, (s, m, q) in enumerate(items, start=1)
    ]
    intents, _ = check_intents(raw, "property", strategies=None, instruments=table, now=None)
    for i in intents:
        lots = abs(i.qty) / table[i.symbol].lot_size
        assert lots <= DEFAULT_MAX_INTENT_QTY
    budgets = (
        {
            s: StrategyBudget(capital=Decimal(10**12), max_leverage=Decimal(100))
            for s in ("A", "B", "C")
        }
        if with_budgets
        else None
    )
    plan = plan_bar(
        intents,
        bar=parse_bar(BAR),
        prices={m: Decimal(price) for m in SYMBOLS},
        positions={},
        budgets=budgets,
        instruments=table,
        routing=RoutingConfig(),
        total_capital=Decimal(total),
        account="paper",
    )
    assert len(plan.gated()) == len(intents)
    event(f"accepted {min(len(intents), 5)}+")
