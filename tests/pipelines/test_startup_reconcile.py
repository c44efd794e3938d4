"""Startup reconciliation in the bar job (SPEC §9): a venue that differs from the ledger is
halted for new entries before anything is planned, recorded in the ledger and shown by the
``venues_reconciled`` check; a clean venue is recorded as such and trades."""

from __future__ import annotations

from decimal import Decimal

import dagster as dg
import pandas as pd

from allocator.execution.orders import AssetClass, OrderRequest, Side, Venue, client_order_id
from pipelines.definitions import build_definitions
from tests.pipelines.world import BARS, World, submit_bar


def _run(defs: dg.Definitions, job: str, instance: dg.DagsterInstance, **tags: str):  # type: ignore[no-untyped-def]
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance, tags=tags, raise_on_error=False
    )


def test_a_clean_venue_is_recorded_and_trades(world: World, instance: dg.DagsterInstance) -> None:
    defs = build_definitions(world.resources())
    assert _run(defs, "rebalance_job", instance).success
    submit_bar(world, BARS[0])
    result = _run(defs, "bar_job", instance, **{"allocator/bar": BARS[0]})
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["venues_reconciled"] is True
    ledger = world.ledger()
    try:
        recorded = ledger.reconciliations()
        assert {r.venue for r in recorded} == {v.value for v in Venue}
        assert all(r.ok for r in recorded)
        assert ledger.orders()
    finally:
        ledger.close()


def test_a_venue_that_differs_is_halted_before_the_bar(
    world: World, instance: dg.DagsterInstance
) -> None:
    defs = build_definitions(world.resources())
    assert _run(defs, "rebalance_job", instance).success
    # An order the ledger never journaled fills at the (paper) venue: a position appears there.
    from resources.brokers.registry import pipeline_venues
    from resources.dagster_resources import AllocatorSettings

    ledger = world.ledger()
    try:
        brokers = pipeline_venues(AllocatorSettings().instruments(), ledger=ledger)
        stray = OrderRequest(
            client_order_id=client_order_id("outside", "x", "SPY", Side.BUY),
            symbol="SPY",
            asset_class=AssetClass.ETF,
            side=Side.BUY,
            qty=Decimal(5),
            venue=Venue.ALPACA,
            reference_price=Decimal(320),
        )
        brokers[Venue.ALPACA].submit(stray)
    finally:
        ledger.close()
    submit_bar(world, BARS[0])
    result = _run(defs, "bar_job", instance, **{"allocator/bar": BARS[0]})
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["venues_reconciled"] is False
    gated = pd.read_parquet(world.root / "assets" / "gated_intents.parquet")
    ledger = world.ledger()
    try:
        halts = ledger.venue_halts()
        assert set(halts) == {"alpaca"}
        assert halts["alpaca"].differences[0]["kind"] == "unexpected_position"
        refused = ledger.gating(parse(BARS[0]))
        assert ledger.orders(parse(BARS[0])) == []  # every symbol of the bar routes to alpaca
    finally:
        ledger.close()
    assert len(refused) == len(gated) == 5  # every intent of the bar opens a position
    assert {str(g.reason) for g in refused} == {"routing"}
    assert all(g.accepted_qty == 0 for g in refused)


def parse(bar: str):  # type: ignore[no-untyped-def]
    from allocator.execution.records import parse_bar

    return parse_bar(bar)
