"""The whole graph on small data with the paper broker, and the blocking checks (in one run and
across runs)."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from pipelines.definitions import build_definitions
from tests.pipelines.world import BARS, LAST_DAY, World, submit_bar


def _run(defs: dg.Definitions, job: str, instance: dg.DagsterInstance, **tags: str):  # type: ignore[no-untyped-def]
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance, tags=tags, raise_on_error=False
    )


def _checks(result) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_whole_graph_materialises_with_the_paper_broker(
    world: World, instance: dg.DagsterInstance
) -> None:
    defs = build_definitions(world.resources())
    rules = _run(defs, "rebalance_job", instance)
    assert rules.success
    assert all(_checks(rules).values()), _checks(rules)
    mats = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in rules.get_asset_materialization_events()
    }
    assert mats["allocations"]["session"].value == LAST_DAY
    assert 0 < mats["allocations"]["total_capital_deployed"].value <= 100_000 * (1 + 1e-12)

    submit_bar(world, BARS[0])
    bar = _run(defs, "bar_job", instance, **{"allocator/bar": BARS[0]})
    assert bar.success
    assert all(_checks(bar).values()), _checks(bar)
    orders = pd.read_parquet(world.root / "assets" / "submitted_orders.parquet")
    assert set(orders["symbol"]) <= {"SPY", "QQQ", "TLT"}
    assert (orders["state"] == "filled").all()
    ledger = world.ledger()
    try:
        assert len(ledger.orders()) == len(orders)
        assert ledger.bar_done(dg_bar(BARS[0]))
        fills = ledger.broker_fills()
    finally:
        ledger.close()
    assert len({f.fill_id for f in fills}) == len(fills) == len(orders)
    # Parquet, not pickles, for every asset.
    stored = {p.stem for p in (world.root / "assets").glob("*.parquet")}
    assert {"strategy_returns", "allocations", "netted_orders", "pnl"} <= stored


def dg_bar(key: str):  # type: ignore[no-untyped-def]
    from allocator.execution.records import parse_bar

    return parse_bar(key)


def test_failing_check_blocks_orders_in_the_run_and_in_later_runs(
    world: World, instance: dg.DagsterInstance
) -> None:
    strict = build_definitions(world.resources(max_abs_daily_return=0.001))
    rules = _run(strict, "rebalance_job", instance)
    assert not rules.success
    assert _checks(rules)["returns_quality"] is False
    # Within the run: the blocking check stopped everything downstream, allocations included.
    materialised = {e.asset_key.to_user_string() for e in rules.get_asset_materialization_events()}
    assert materialised == {"strategy_returns"}
    # Across runs: a later bar run refuses to trade, and nothing reaches the broker.
    submit_bar(world, BARS[0])
    defs = build_definitions(world.resources())
    bar = _run(defs, "bar_job", instance, **{"allocator/bar": BARS[0]})
    assert not bar.success
    ledger = world.ledger()
    try:
        assert ledger.orders() == []
    finally:
        ledger.close()
    failure = next(e for e in bar.all_events if e.event_type_value == "STEP_FAILURE")
    assert "refusing to trade" in str(failure.event_specific_data)
    # A good allocation later clears the block; the same bar then trades.
    assert _run(defs, "rebalance_job", instance).success
    assert _run(defs, "bar_job", instance, **{"allocator/bar": BARS[0]}).success


def test_a_failed_allocation_published_in_an_earlier_run_blocks_bars(
    world: World, instance: dg.DagsterInstance
) -> None:
    defs = build_definitions(world.resources())
    assert _run(defs, "rebalance_job", instance).success
    # A later rebalance fails its checks: the allocation the ledger holds is no longer trusted.
    strict = build_definitions(world.resources(max_abs_daily_return=0.001))
    assert not _run(strict, "rebalance_job", instance).success
    submit_bar(world, BARS[0])
    bar = _run(defs, "bar_job", instance, **{"allocator/bar": BARS[0]})
    assert not bar.success
    ledger = world.ledger()
    try:
        assert ledger.orders() == []
    finally:
        ledger.close()


def test_a_failing_bar_path_check_stops_the_orders(
    world: World, instance: dg.DagsterInstance
) -> None:
    # The per-bar checks up to the broker run inside their assets (check_specs): a failing one
    # must still block every step after it in the same run.
    defs = build_definitions(world.resources())
    assert _run(defs, "rebalance_job", instance).success
    capped = build_definitions(world.resources(max_order_notional=1.0))
    submit_bar(world, BARS[0])
    bar = _run(capped, "bar_job", instance, **{"allocator/bar": BARS[0]})
    assert not bar.success
    assert _checks(bar)["netted_quality"] is False
    stored = {e.asset_key.to_user_string() for e in bar.get_asset_materialization_events()}
    assert "netted_orders" in stored  # the failing asset is still stored, for inspection
    started = {e.step_key for e in bar.all_events if e.event_type_value == "STEP_START"}
    assert "submitted_orders" not in started
    ledger = world.ledger()
    try:
        assert ledger.orders() == []
    finally:
        ledger.close()
