"""The ``returns_match_attribution`` check on ``strategy_returns``: it fails naming the strategy
whose reported returns are not what the allocator saw, and the sessions."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import dagster as dg
import sqlalchemy as sa

from allocator.execution.inbox import ReturnRow
from allocator.rebalance import AllocationRow
from assets.checks import returns_match_attribution
from resources.ledger import schema as t
from tests.pipelines.world import World

BARS = ("2030-01-02", "2030-01-03")


def _trade(world: World, reported: dict[str, list[float]]) -> None:
    """Both strategies buy SPY at 320 on the first bar (world prices: SPY 320 on every bar,
    so each session's P&L is 0); each reports ``reported[name]`` for the two bars."""
    ledger = world.ledger()
    try:
        ledger.write_allocations(
            [
                AllocationRow(
                    date="2029-12-31",
                    strategy=name,
                    capital=Decimal(10_000),
                    final_weight=0.5,
                    breaker_state="normal",
                    benched=False,
                )
                for name in reported
            ]
        )
        ledger.submit_returns(
            [
                ReturnRow(date=day, strategy=name, value=value)
                for name, values in reported.items()
                for day, value in zip(BARS, values, strict=True)
            ]
        )
        with ledger.engine.begin() as conn:
            for bar in BARS:
                conn.execute(sa.insert(t.bars).values(bar=bar, recorded_at=datetime.now(UTC)))
            for name, qty in zip(reported, (10, 2), strict=True):
                conn.execute(
                    sa.insert(t.virtual_fills).values(
                        bar=BARS[0],
                        strategy=name,
                        symbol="SPY",
                        internal=True,
                        qty=Decimal(qty),
                        price=Decimal(320),
                        fee=Decimal(0),
                        cash=Decimal(-320 * qty),
                    )
                )
    finally:
        ledger.close()


def _check(world: World) -> dg.AssetCheckResult:
    res = world.resources()
    return returns_match_attribution(  # type: ignore[no-any-return]
        settings=res["settings"], ledger=res["ledger"], market=res["market"]
    )


def test_it_passes_when_reports_match_and_fails_naming_the_liar(world: World) -> None:
    _trade(world, {"honest": [0.03, 0.0004], "liar": [0.012, 0.011]})
    result = _check(world)
    assert result.passed is False
    assert result.metadata["strategies"].value == ["liar"]
    # compared on 2030-01-03 only: the first bar's fills are marked at their own price, and
    # the return reported for that date was earned before the allocator held anything
    assert result.metadata["divergent_sessions"].value == 1
    assert "liar: 1 session(s): 2030-01-03 (reported 1.1000%" in (result.description or "")
    assert "honest" not in (result.description or "")


def test_it_passes_on_honest_reports(world: World) -> None:
    _trade(world, {"honest": [0.0, 0.0], "also": [0.001, -0.002]})
    result = _check(world)
    assert result.passed is True
    assert result.metadata["divergent_sessions"].value == 0
