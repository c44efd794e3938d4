"""End to end through a real ``dagster-daemon`` on a temporary ``DAGSTER_HOME``, once with the
committed ``dagster.yaml`` (SQLite storage) and once with the production
``dagster.postgres.yaml`` (storage on a fresh PostgreSQL database): the bar sensor launches one
run per bar for three bars, runs never overlap, the warm run launcher starts all but the first
in a worker started in advance, and re-executing one of them sends nothing twice."""

from __future__ import annotations

import itertools
from pathlib import Path

import dagster as dg
import pytest

from assets.tags import PID_TAG, START_TAG
from pipelines.definitions import build_definitions
from tests.pipelines import _jobs
from tests.pipelines.live import (
    Storage,
    daemon,
    live_env,
    prepare_home,
    runs_for_bar,
    wait_for_bar,
)
from tests.pipelines.world import BARS, World, submit_bar


@pytest.mark.slow
def test_daemon_runs_three_bars_then_a_reexecution_is_safe(
    world: World, dagster_storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster_home"
    prepare_home(home, dagster_storage)
    # every daemon loop evaluates the sensor
    env = live_env(home, world.env, interval_s=1, storage=dagster_storage)
    for key in ("DAGSTER_HOME", *world.env, *dagster_storage.env):
        monkeypatch.setenv(key, env[key])
    with dg.DagsterInstance.get() as instance:
        # SqliteRunStorage or PostgresRunStorage, empty
        assert dagster_storage.name in type(instance.run_storage).__name__.lower()
        assert not instance.get_runs(limit=1)  # clean storage
        rebalance = build_definitions(world.resources()).resolve_job_def("rebalance_job")
        assert rebalance.execute_in_process(instance=instance).success
        with daemon(env, tmp_path / "daemon.log") as proc:
            runs = []
            for bar in BARS[:3]:
                submit_bar(world, bar)
                runs.append(wait_for_bar(instance, bar, timeout_s=120))
                assert proc.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
        for bar in BARS[:3]:
            assert len(runs_for_bar(instance, bar)) == 1  # run_key = bar: one run per bar
        # dagster.yaml's WarmRunLauncher: the daemon's first bar run starts cold, later ones in
        # the spare worker it started meanwhile, each in a process of its own.
        assert [r.tags[START_TAG] for r in runs] == ["cold", "warm", "warm"]
        assert len({r.tags[PID_TAG] for r in runs}) == 3
        records = instance.get_run_records(filters=dg.RunsFilter(run_ids=[r.run_id for r in runs]))
        spans = sorted((r.start_time, r.end_time) for r in records)
        assert all(s[0] is not None and s[1] is not None for s in spans)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # no overlap

        ledger = world.ledger()
        try:
            before = (len(ledger.orders()), len(ledger.broker_fills()))
            assert all(ledger.bar_done(_bar(b)) for b in BARS[:3])
        finally:
            ledger.close()
        assert before[0] > 0
        rerun = dg.execute_job(
            dg.reconstructable(_jobs.bar_job),
            instance=instance,
            reexecution_options=dg.ReexecutionOptions(parent_run_id=runs[1].run_id),
        )
        assert rerun.success
        ledger = world.ledger()
        try:
            assert (len(ledger.orders()), len(ledger.broker_fills())) == before
        finally:
            ledger.close()


def _bar(key: str):  # type: ignore[no-untyped-def]
    from allocator.execution.records import parse_bar

    return parse_bar(key)
