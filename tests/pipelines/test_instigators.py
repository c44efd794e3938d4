"""The rebalance schedule and the bar sensor with Dagster's test contexts; re-execution with
Dagster's real re-execution API never sends a second order nor counts a fill twice."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from allocator.execution.records import parse_bar
from cli.main import main
from pipelines.definitions import build_definitions
from pipelines.schedules import rebalance_schedule
from pipelines.sensors import bar_sensor
from tests.pipelines import _jobs
from tests.pipelines.world import BARS, World, bar_intents, submit_bar

NY = ZoneInfo("America/New_York")


def test_schedule_runs_once_per_session_and_skips_holidays() -> None:
    monday = dt.datetime(2026, 11, 23, 16, 30, tzinfo=NY)
    request = rebalance_schedule(dg.build_schedule_context(scheduled_execution_time=monday))
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == "rebalance-2026-11-23"
    assert request.tags["allocator/session"] == "2026-11-23"
    thanksgiving = dt.datetime(2026, 11, 26, 16, 30, tzinfo=NY)
    skipped = rebalance_schedule(dg.build_schedule_context(scheduled_execution_time=thanksgiving))
    assert isinstance(skipped, dg.SkipReason)
    assert "not an XNYS session" in str(skipped.skip_message)


def test_schedule_cron_fires_after_the_close_on_weekdays() -> None:
    assert rebalance_schedule.cron_schedule == "30 16 * * 1-5"
    assert rebalance_schedule.execution_timezone == "America/New_York"


def _sensor(world: World, instance: dg.DagsterInstance, cursor: str | None, **settings: object):  # type: ignore[no-untyped-def]
    # The sensor answers at once unless a test asks it to watch the inbox.
    settings.setdefault("sensor_hold_s", 0.0)
    res = world.resources(**settings)
    ctx = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"ledger": res["ledger"], "settings": res["settings"]},
    )
    return bar_sensor(ctx), ctx


def _rebalance(world: World, instance: dg.DagsterInstance) -> None:
    defs = build_definitions(world.resources())
    assert defs.resolve_job_def("rebalance_job").execute_in_process(instance=instance).success


def test_sensor_waits_for_every_active_strategy_then_one_run_per_bar(
    world: World, instance: dg.DagsterInstance
) -> None:
    _rebalance(world, instance)
    ledger = world.ledger()
    try:
        # Only two strategies have written: not ready before the deadline.
        ledger.submit_intents(bar_intents(BARS[0])[:2])
        active = {a.strategy for a in ledger.allocations() if not a.benched}
    finally:
        ledger.close()
    result, _ = _sensor(world, instance, None, bar_deadline_seconds=3600)
    assert isinstance(result, dg.SkipReason)
    # Past the deadline, the bar runs with whoever submitted.
    late, _ = _sensor(world, instance, None, bar_deadline_seconds=0)
    assert [r.run_key for r in late.run_requests] == [BARS[0]]
    # Once every active strategy has an intent for two bars: one request per bar, in order.
    ledger = world.ledger()
    try:
        from allocator.execution.orders import AssetClass
        from allocator.execution.records import Intent

        for bar in BARS[:2]:
            ledger.submit_intents(
                [
                    Intent(
                        intent_id=f"{bar}-{s}-all",
                        strategy=s,
                        symbol="SPY",
                        asset_class=AssetClass.ETF,
                        qty=dg_qty(),
                        bar=parse_bar(bar),
                    )
                    for s in sorted(active)
                ]
            )
    finally:
        ledger.close()
    # Two bars are ready: one request at a time (runs never overlap), in bar order.
    result, _ = _sensor(world, instance, None, bar_deadline_seconds=3600)
    assert isinstance(result, dg.SensorResult)
    assert [r.run_key for r in result.run_requests] == [BARS[0]]
    assert [r.tags["allocator/bar"] for r in result.run_requests] == [BARS[0]]
    assert result.run_requests[0].tags["allocator/lane"] == "bar"
    assert result.cursor == BARS[0]
    # While a bar-lane run is queued or in progress, the next bar waits for it.
    running = _bar_run(instance, BARS[0], dg.DagsterRunStatus.STARTED)
    waiting, _ = _sensor(world, instance, BARS[0], bar_deadline_seconds=3600)
    assert isinstance(waiting, dg.SkipReason)
    assert running in str(waiting.skip_message)
    # The run FAILED: the failed bar is never skipped (SPEC §9). The sensor counts the failure,
    # schedules a retry and does not request the next bar, however often it is asked.
    instance.report_run_failed(instance.get_run_by_id(running))
    config = world.root / "lane.toml"
    config.write_text("[execution]\nretry_backoff_s = 3600\n", encoding="utf-8")
    for _ in range(3):
        blocked, _ = _sensor(
            world, instance, BARS[0], bar_deadline_seconds=3600, config_path=str(config)
        )
        assert not _requests(blocked), "the next bar must wait for the failed one"
        assert BARS[0] in _skip(blocked)
        assert "next retry at" in _skip(blocked)
    ledger = world.ledger()
    try:
        [status] = ledger.open_bars()
        assert (status.bar, status.state.value, status.attempts) == (BARS[0], "failed", 1)
        assert status.last_error is not None
        assert status.last_error.startswith(f"run {running} FAILURE")
    finally:
        ledger.close()
    # Abandoned by an operator (every venue confirms it holds no order of it): the lane moves on.
    assert main(["bar", "abandon", BARS[0], "--reason", "test", "--ledger", _url(world)]) == 0
    second, _ = _sensor(world, instance, BARS[0], bar_deadline_seconds=3600)
    assert [r.run_key for r in second.run_requests] == [BARS[1]]
    assert second.cursor == BARS[1]
    # The sensor sealed BARS[1] when it asked for its run: a later intent for it is late.
    ledger = world.ledger()
    try:
        sealed = ledger.bar_status(parse_bar(BARS[1]))
        assert sealed is not None
        assert sealed.sealed_by == "bar_sensor"
        late = ledger.submit_intents([_late_intent(BARS[1])])
        assert [r.reason.value for r in late.refused] == ["late"]
    finally:
        ledger.close()
    # A sealed bar whose run was never created (the daemon died in between) is asked again.
    again, _ = _sensor(world, instance, BARS[1], bar_deadline_seconds=3600)
    assert [r.run_key for r in again.run_requests] == [BARS[1]]


def _requests(result: object) -> list[str]:
    return [r.run_key for r in getattr(result, "run_requests", None) or []]


def _skip(result: object) -> str:
    if isinstance(result, dg.SkipReason):
        return str(result.skip_message)
    skip = getattr(result, "skip_reason", None)
    return "" if skip is None else str(skip.skip_message)


def _url(world: World) -> str:
    return world.env["ALLOCATOR_LEDGER_URL"]


def _late_intent(bar: str, qty: str = "-100", strategy: str = "pairs"):  # type: ignore[no-untyped-def]
    from decimal import Decimal

    from allocator.execution.orders import AssetClass
    from allocator.execution.records import Intent

    return Intent(
        intent_id=f"{bar}-{strategy}-late",
        strategy=strategy,
        symbol="SPY",
        asset_class=AssetClass.ETF,
        qty=Decimal(qty),
        bar=parse_bar(bar),
    )


def _bar_run(instance: dg.DagsterInstance, bar: str, status: dg.DagsterRunStatus) -> str:
    run = dg.DagsterRun(
        job_name="bar_job",
        run_id=str(uuid.uuid4()),
        status=status,
        tags={"allocator/bar": bar, "allocator/lane": "bar"},
    )
    instance.add_run(run)
    return run.run_id


def test_a_held_evaluation_answers_as_soon_as_the_bar_is_complete(
    world: World, instance: dg.DagsterInstance
) -> None:
    _rebalance(world, instance)
    late = threading.Timer(0.5, submit_bar, args=(world, BARS[0]))
    started = time.monotonic()
    late.start()
    try:
        result, _ = _sensor(
            world,
            instance,
            None,
            bar_deadline_seconds=3600,
            sensor_hold_s=4.0,
            sensor_poll_s=0.05,
        )
    finally:
        late.join()
    elapsed = time.monotonic() - started
    assert [r.run_key for r in result.run_requests] == [BARS[0]]
    assert 0.5 <= elapsed < 2.0
    # Nothing more arrives: the evaluation gives up after its hold (one daemon loop). (The
    # daemon has launched the requested run; without it, the sealed bar would be asked again.)
    _bar_run(instance, BARS[0], dg.DagsterRunStatus.STARTED)
    started = time.monotonic()
    idle, _ = _sensor(
        world, instance, BARS[0], bar_deadline_seconds=3600, sensor_hold_s=0.5, sensor_poll_s=0.05
    )
    assert isinstance(idle, dg.SkipReason)
    assert 0.4 <= time.monotonic() - started < 1.5


def dg_qty():  # type: ignore[no-untyped-def]
    from decimal import Decimal

    return Decimal(1)


@pytest.fixture
def env_world(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    return world


def _counts(world: World) -> tuple[int, int, int]:
    ledger = world.ledger()
    try:
        from resources.ledger import LedgerPaperState

        paper = LedgerPaperState(ledger)
        at_broker = sum(len(paper.orders(f"paper-{v}")) for v in ("alpaca", "ibkr", "ccxt"))
        return len(ledger.orders()), at_broker, len(ledger.broker_fills())
    finally:
        ledger.close()


def test_reexecution_sends_no_second_order_and_counts_no_fill_twice(
    env_world: World, instance: dg.DagsterInstance
) -> None:
    world = env_world
    _rebalance(world, instance)
    submit_bar(world, BARS[0])
    tags = {"allocator/bar": BARS[0]}
    first = dg.execute_job(dg.reconstructable(_jobs.bar_job), instance=instance, tags=tags)
    assert first.success
    before = _counts(world)
    assert before[0] > 0
    assert before[0] == before[1] == before[2]
    # Re-execute the whole run, then only the broker step, with Dagster's re-execution API.
    for steps in (None, ["submitted_orders"]):
        options = dg.ReexecutionOptions(parent_run_id=first.run_id, step_selection=steps or [])
        rerun = dg.execute_job(
            dg.reconstructable(_jobs.bar_job), instance=instance, reexecution_options=options
        )
        assert rerun.success
        run = instance.get_run_by_id(rerun.run_id)
        assert run is not None
        assert run.parent_run_id == first.run_id
        assert _counts(world) == before
        placed = [
            e.materialization.metadata["placed_by_this_run"].value
            for e in rerun.get_asset_materialization_events()
            if e.asset_key.to_user_string() == "submitted_orders"
        ]
        assert placed == [0]


def test_a_complete_bar_is_left_to_a_live_gateway_then_launched_if_it_does_not(
    world: World, instance: dg.DagsterInstance
) -> None:
    from pipelines import sensors

    _rebalance(world, instance)
    sensors.write_gateway_presence(instance)
    sensors._COMPLETE_SINCE.clear()  # when this process first saw a bar complete
    submit_bar(world, BARS[0])
    first_seen = time.monotonic()
    # The complete bar is left to the live gateway for the grace, unsealed ...
    left, _ = _sensor(world, instance, None, bar_deadline_seconds=3600)
    assert _requests(left) == []
    assert f"bar {BARS[0]} is complete; left to the gateway" in _skip(left)
    assert _bar_status(world, BARS[0]) is None
    # ... and the sensor requests it itself once the grace has passed with no run (the gateway
    # is stuck): the backstop, within the same held evaluation.
    asked, _ = _sensor(
        world,
        instance,
        None,
        bar_deadline_seconds=3600,
        sensor_hold_s=3.0,
        sensor_poll_s=0.05,
        sensor_gateway_grace_s=0.6,
    )
    assert _requests(asked) == [BARS[0]]
    assert 0.6 <= time.monotonic() - first_seen < 2.5
    status = _bar_status(world, BARS[0])
    assert status is not None
    assert status.sealed_by == "bar_sensor"


def _bar_status(world: World, bar: str):  # type: ignore[no-untyped-def]
    store = world.ledger()
    try:
        return store.bar_status(parse_bar(bar))
    finally:
        store.close()


@pytest.mark.parametrize("gone", ["cleared", "stale"])
def test_a_gateway_that_stopped_or_went_silent_gets_no_grace(
    world: World, instance: dg.DagsterInstance, gone: str
) -> None:
    from pipelines import sensors

    _rebalance(world, instance)
    sensors.write_gateway_presence(instance)
    assert sensors.gateway_present(instance)
    if gone == "cleared":  # the gateway stopped
        sensors.clear_gateway_presence(instance)
    else:  # its last renewal is older than a live launcher's
        stamp = time.time() - sensors.GATEWAY_PRESENCE_FRESH_S - 1
        sensors.write_gateway_presence(instance, at=stamp)
    assert not sensors.gateway_present(instance)
    sensors._COMPLETE_SINCE.clear()
    submit_bar(world, BARS[0])
    asked, _ = _sensor(world, instance, None, bar_deadline_seconds=3600)
    assert _requests(asked) == [BARS[0]]
