"""Through a real ``dagster-daemon``: the bar's run worker is SIGKILLed mid-bar (right after the
venue acknowledged its first order), a late intent arrives, run monitoring fails the dead run,
the bar sensor counts the failure and, after its backoff, requests the bar again under a new
run key; that retry settles the bar from the journal and the frozen plan: one order per (bar,
symbol, side), the venue's position equals the ledger's book, the late intent is a ``late``
refusal row, and only then does the next bar run (docs/decisions/0012-live-bar-path.md)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from allocator.execution.records import parse_bar
from assets.execution import CHECKPOINT_ENV, CHECKPOINT_ONCE_ENV
from pipelines.definitions import build_definitions
from tests.pipelines.live import (
    Storage,
    daemon,
    live_env,
    prepare_home,
    runs_for_bar,
    wait_for_bar,
)
from tests.pipelines.test_bar_lane import _journal_and_venue
from tests.pipelines.test_instigators import _late_intent
from tests.pipelines.world import BARS, World, submit_bar

BAR = BARS[0]


def _wait(what: str, done, timeout_s: float, log: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.3)
    raise TimeoutError(f"{what} within {timeout_s} s; daemon log:\n{log.read_text()[-4000:]}")


@pytest.mark.slow
def test_sigkill_mid_bar_then_the_sensor_retry_settles_it(
    world: World, dagster_storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster_home"
    prepare_home(home, dagster_storage)
    config = tmp_path / "lane.toml"
    config.write_text("[execution]\nretry_backoff_s = 1\nmax_bar_retries = 3\n", encoding="utf-8")
    marker = tmp_path / "killed"
    env = live_env(home, world.env, interval_s=1, storage=dagster_storage)
    env.update(
        {
            "ALLOCATOR_CONFIG": str(config),
            CHECKPOINT_ENV: "kill@ack:",  # read by submitted_orders in the run worker
            CHECKPOINT_ONCE_ENV: str(marker),
        }
    )
    for key in ("DAGSTER_HOME", *world.env, *dagster_storage.env):
        monkeypatch.setenv(key, env[key])
    log = tmp_path / "daemon.log"
    with dg.DagsterInstance.get() as instance:
        # SqliteRunStorage or PostgresRunStorage
        assert dagster_storage.name in type(instance.run_storage).__name__.lower()
        rebalance = build_definitions(world.resources()).resolve_job_def("rebalance_job")
        assert rebalance.execute_in_process(instance=instance).success
        with daemon(env, log) as proc:
            submit_bar(world, BAR)
            _wait("the run worker killed itself", marker.exists, 120, log)
            # A late intent arrives while the bar is half done: it is refused, never traded.
            ledger = world.ledger()
            try:
                report = ledger.submit_intents([_late_intent(BAR)], source="late.csv")
                assert [r.reason.value for r in report.refused] == ["late"]
            finally:
                ledger.close()
            submit_bar(world, BARS[1])  # complete, but it must wait for the killed bar

            def settled() -> bool:
                ledger = world.ledger()
                try:
                    return bool(ledger.bar_done(parse_bar(BAR)))
                finally:
                    ledger.close()

            _wait("the bar settled by the sensor's retry", settled, 180, log)
            # The next bar did not run before the killed bar was settled; now it runs.
            second = wait_for_bar(instance, BARS[1], timeout_s=120)
            assert proc.poll() is None, log.read_text()[-3000:]
        runs = sorted(runs_for_bar(instance, BAR), key=lambda r: r.run_id)
        records = instance.get_run_records(filters=dg.RunsFilter(run_ids=[r.run_id for r in runs]))
        by_start = sorted(records, key=lambda r: r.create_timestamp)
        statuses = [r.dagster_run.status for r in by_start]
        keys = [r.dagster_run.tags.get("dagster/run_key") for r in by_start]
        assert statuses == [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS], statuses
        assert keys == [BAR, f"{BAR}#retry1"]
        killed, retried = (r.dagster_run for r in by_start)
        assert killed.tags["allocator/bar"] == retried.tags["allocator/bar"] == BAR
        [second_record] = instance.get_run_records(dg.RunsFilter(run_ids=[second.run_id]))
        retried_record = by_start[1]
        assert retried_record.end_time is not None
        assert second_record.start_time is not None
        assert retried_record.end_time <= second_record.start_time  # the lane waited
    journal, at_venue, held, book = _journal_and_venue(world, BAR)
    counts = Counter(journal)
    assert counts
    assert all(n == 1 for n in counts.values()), counts
    ledger = world.ledger()
    try:
        status = ledger.bar_status(parse_bar(BAR))
        assert status is not None
        assert status.state.value == "settled"
        assert status.attempts == 1
        assert status.last_error is not None
        assert killed.run_id in status.last_error
        assert [r.reason.value for r in ledger.refusals(parse_bar(BAR))] == ["late"]
        assert ledger.lane_halt() is None
    finally:
        ledger.close()
    # Both bars are settled now: every order sent once, the venue holds the ledger's book.
    journal_1, at_venue, held, book = _journal_and_venue(world, BARS[1])
    assert all(n == 1 for n in Counter(journal_1).values())
    assert at_venue == len(journal) + len(journal_1)
    assert held == book
