"""Small builders shared by the execution tests."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from allocator.config import RoutingConfig
from allocator.execution import (
    DEFAULT_INSTRUMENTS,
    BarPlan,
    InstrumentTable,
    Intent,
    StrategyBudget,
    parse_bar,
    plan_bar,
)
from allocator.execution.orders import AssetClass

BAR = parse_bar("2024-05-01")
QUANTUM = Decimal("0.00000001")


def intent(
    intent_id: str, strategy: str, symbol: str, qty: str | int, cls: AssetClass | None = None
) -> Intent:
    table = DEFAULT_INSTRUMENTS
    asset_class = cls or (table[symbol].asset_class if symbol in table else AssetClass.EQUITY)
    return Intent(
        intent_id=intent_id,
        strategy=strategy,
        symbol=symbol,
        asset_class=asset_class,
        qty=Decimal(str(qty)),
        bar=BAR,
    )


def plan(
    intents: list[Intent],
    prices: Mapping[str, str | int],
    *,
    positions: Mapping[tuple[str, str], str | int] | None = None,
    budgets: Mapping[str, StrategyBudget] | None = None,
    total_capital: str | int = 100_000,
    instruments: InstrumentTable = DEFAULT_INSTRUMENTS,
) -> BarPlan:
    return plan_bar(
        intents,
        bar=BAR,
        prices={k: Decimal(str(v)) for k, v in prices.items()},
        positions={k: Decimal(str(v)) for k, v in (positions or {}).items()},
        budgets=budgets,
        instruments=instruments,
        routing=RoutingConfig(),
        total_capital=Decimal(str(total_capital)),
        account="paper",
    )


def outcome_by_id(p: BarPlan) -> dict[str, tuple[Decimal, str | None]]:
    return {
        g.intent_id: (g.accepted_qty, None if g.reason is None else g.reason.value)
        for g in p.gated()
    }


def budget(capital: str | int, leverage: str | int = 1, state: str = "normal") -> StrategyBudget:
    from allocator.execution import StrategyState

    return StrategyBudget(
        capital=Decimal(str(capital)),
        max_leverage=Decimal(str(leverage)),
        state=StrategyState(state),
    )
