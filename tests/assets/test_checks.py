"""The data-quality checks called directly on bad data: they fail, name the failing rows, and
Great Expectations and the native engine (used on the per-bar path) agree."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from assets._gx import expect
from assets.checks import (
    flags_quality,
    gated_quality,
    multipliers_quality,
    netted_quality,
    returns_quality,
    weights_quality,
)
from pipelines.definitions import build_definitions
from resources.dagster_resources import AllocatorSettings
from tests.pipelines.world import World

ENGINES = ("gx", "native")


def _failing(result: dg.AssetCheckResult) -> str:
    return str(result.metadata["failing_rows"].value) if "failing_rows" in result.metadata else ""


def test_definitions_load(world: World) -> None:
    defs = build_definitions(world.resources())
    dg.Definitions.validate_loadable(defs)
    assert {"rebalance_job", "bar_job", "bar_job_multiprocess"} <= {
        j.name for j in defs.resolve_all_job_defs()
    }


@pytest.mark.parametrize("engine", ENGINES)
def test_engines_agree_on_every_kind(engine: str) -> None:
    frame = pd.DataFrame(
        {
            "a": [1.0, 2.0, 9.0, np.nan],
            "b": ["x", "y", "z", "x"],
            "ok": [True, False, True, True],
            "k1": [1, 1, 2, 3],
            "k2": ["p", "p", "q", "r"],
        }
    )
    result = expect(
        frame,
        [
            ("between", "a", 0.0, 5.0),
            ("in_set", "b", ["x", "y"]),
            ("true", "ok"),
            ("not_null", "a"),
            ("unique", "b"),
            ("compound_unique", ("k1", "k2")),
        ],
        engine=engine,
    )
    assert not result.passed
    assert result.metadata["failing_rows_count"].value == 4  # every row breaks something
    failed = str(result.metadata["failed_expectations"].value)
    for kind in ("between", "in_set", "true", "not_null", "unique", "compound_unique"):
        assert f"`{kind}(" in failed


def test_returns_check_names_duplicates_bounds_and_missing_strategies(world: World) -> None:
    res = world.resources(max_abs_daily_return=0.05)
    ledger = res["ledger"]
    with ledger.open() as store:  # type: ignore[attr-defined]
        store.register_strategies(["alpha", "beta", "ghost"])
    frame = pd.DataFrame(
        {
            "date": ["2024-01-02", "2024-01-02", "2024-01-03", "2024-01-06"],
            "strategy": ["alpha", "alpha", "beta", "beta"],
            "return": [0.01, 0.01, 0.2, 0.0],
        }
    )
    strict = AllocatorSettings(max_abs_daily_return=0.05, non_session_dates="refuse")
    result = returns_quality(strategy_returns=frame, settings=strict, ledger=ledger)
    assert not result.passed
    failed = str(result.metadata["failed_expectations"].value)
    assert "compound_unique" in failed
    assert "between(return" in failed
    assert "date_is_session" in failed  # 2024-01-06 is a Saturday
    assert "ghost" in str(result.metadata["failing_rows_2"].value)


@pytest.mark.parametrize("engine", ENGINES)
def test_bar_checks_fail_on_bad_rows(engine: str) -> None:
    settings = AllocatorSettings(bar_check_engine=engine, max_order_notional=10_000)
    gated = pd.DataFrame(
        {
            "intent_id": ["i1", "i2", "i3"],
            "strategy": ["a", "a", "b"],
            "symbol": ["SPY", "QQQ", "SPY"],
            "requested_qty": ["10", "-5", "3"],
            "accepted_qty": ["12", "-2", "3"],
            "reason": [None, None, None],
            "routed_from": [None, None, None],
        }
    )
    result = gated_quality(gated_intents=gated, settings=settings)
    assert not result.passed
    assert "i1" in _failing(result)
    assert "i2" in _failing(result)  # cut without a reason
    assert "i3" not in _failing(result)
    netted = pd.DataFrame(
        {
            "symbol": ["SPY", "QQQ"],
            "side": ["buy", "buy"],
            "qty": ["40", "2.5"],
            "net_signed": ["40", "2.5"],
            "accepted_sum": ["39", "2.5"],
            "lot_size": ["1", "1"],
            "venue": ["alpaca", "alpaca"],
            "asset_class": ["etf", "etf"],
            "reference_price": ["320", "210"],
            "notional": [12_800.0, 525.0],
            "client_order_id": ["a" * 32, "b" * 32],
            "buy_qty": ["40", "2.5"],
            "sell_qty": ["0", "0"],
        }
    )
    result = netted_quality(netted_orders=netted, settings=settings)
    assert not result.passed
    failed = str(result.metadata["failed_expectations"].value)
    assert "net_is_sum" in failed
    assert "positive_lots" in failed
    assert "between(notional" in failed


def test_rule_checks_fail_on_bad_rows() -> None:
    settings = AllocatorSettings()
    weights = pd.DataFrame(
        {
            "date": "2024-01-02",
            "strategy": ["a", "b"],
            "benched": [True, False],
            "eligible": [False, True],
            "vol_60d": [0.1, 0.2],
            "base_weight": [0.3, 0.6],
            "recomputed_today": True,
        }
    )
    result = weights_quality(risk_parity_weights=weights)
    assert not result.passed
    assert "benched_zero" in str(result.metadata["failed_expectations"].value)
    flags = pd.DataFrame(
        {
            "date": "2024-01-02",
            "strategy_a": ["a", "b"],
            "strategy_b": ["b", "a"],
            "corr_90d": [0.9, 0.8],
            "breach_run": [3, 3],
            "calm_run": [0, 0],
            "flagged": [True, False],
        }
    )
    result = flags_quality(correlation_flags=flags, settings=settings)
    assert not result.passed
    failed = str(result.metadata["failed_expectations"].value)
    assert "symmetric" in failed
    assert "counters_ok" in failed
    breaker = pd.DataFrame(
        {
            "date": "2024-01-02",
            "strategy": ["a", "b"],
            "mtd_return": [0.0, -0.2],
            "breaker_state": ["normal", "half"],
            "multiplier": [1.0, 0.7],
            "benched": [False, False],
            "base_weight": [0.5, 0.5],
            "final_weight": [0.5, 0.35],
            "capital": [50_000.0, 35_000.0],
        }
    )
    result = multipliers_quality(breaker_multipliers=breaker, settings=settings)
    assert not result.passed
    assert "0.7" in _failing(result)


def test_vols_check_allows_zero_only_on_an_all_equal_window() -> None:
    from assets.checks import vols_quality

    def frame(vols: list[float], flat: list[bool]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "date": "2024-01-02",
                "strategy": ["a", "b", "c"],
                "vol_60d": vols,
                "sharpe_90d": [1.0, float("nan"), 0.5],
                "mtd_return": [0.0, 0.0, 0.0],
                "full_window": [True, True, False],
                "all_equal": flat,
            }
        )

    assert vols_quality(strategy_vols=frame([0.1, 0.0, float("nan")], [False, True, False])).passed
    bad = vols_quality(strategy_vols=frame([0.0, 0.0, float("nan")], [False, True, False]))
    assert not bad.passed
    assert "vol_ok" in str(bad.metadata["failed_expectations"].value)
    assert not vols_quality(
        strategy_vols=frame([0.1, 0.2, float("nan")], [False, True, False])
    ).passed
