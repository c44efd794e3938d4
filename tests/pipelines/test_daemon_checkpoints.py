"""Through one real ``dagster-daemon`` (SQLite instance storage, the sim venue): consecutive bars,
the run worker of each SIGKILLed at another checkpoint of ``run_bar`` (``sealed`` and
``planned`` in ``bar_plan``; ``journaled``, the first ``ack:``, the first ``fill:``,
``recording`` and ``recorded`` in ``submitted_orders``), then one at a seeded random instant
(the test kills the worker, by the PID its run is tagged with, once the run is STARTED). Between
each kill and the sensor's retry, late intents arrive on both sides of SPY, and the next bar is
submitted complete. After each bar: one order per (bar, symbol, side) at the venue, the venue's
positions equal to the ledger's book, the strategies' virtual positions summing to it (each the
sum of the quantities its bars' frozen plans accepted, none from a late intent), a ``late``
refusal row per late intent, and the next bar's run started only after the killed bar settled
(docs/decisions/0012-live-bar-path.md). Run monitoring is polled every second here (5 s in the
committed ``dagster.yaml``) to keep the file's wall time down.

The kills use the test-only ``ALLOCATOR_BAR_CHECKPOINT`` hook of :mod:`assets.execution`, one
``BAR=kill@NAME`` entry per bar, each firing once (``ALLOCATOR_BAR_CHECKPOINT_ONCE``)."""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import dagster as dg
import psutil
import pytest

from allocator.execution.records import parse_bar
from assets.execution import (
    CHECKPOINT_ENV,
    CHECKPOINT_ONCE_ENV,
    _checkpoint_hook,
    _stored_plan,
)
from assets.tags import PID_TAG
from pipelines.definitions import build_definitions
from tests.pipelines.live import SQLITE, daemon, live_env, prepare_home, runs_for_bar
from tests.pipelines.test_daemon_venue import _late
from tests.pipelines.world import World, bar_intents, submit_bar

D = Decimal
CHECKPOINTS = ("sealed", "planned", "journaled", "ack:", "fill:", "recording", "recorded")
BARS = (  # one bar per checkpoint, one killed at a random instant, one clean
    "2020-01-02",
    "2020-01-03",
    "2020-01-06",
    "2020-01-07",
    "2020-01-08",
    "2020-01-09",
    "2020-01-10",
    "2020-01-13",
    "2020-01-14",
)
KILLED = dict(zip(BARS, CHECKPOINTS, strict=False))
RANDOM_BAR = BARS[len(CHECKPOINTS)]
SEED = 20260112


def _wait(what: str, done: Callable[[], bool], timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} within {timeout_s} s; daemon log:\n{log.read_text()[-4000:]}")


def _settled(world: World, bar: str) -> bool:
    ledger = world.ledger()
    try:
        return bool(ledger.bar_done(parse_bar(bar)))
    finally:
        ledger.close()


def _records(instance: dg.DagsterInstance, bar: str) -> list[dg.RunRecord]:
    ids = [r.run_id for r in runs_for_bar(instance, bar)]
    records = instance.get_run_records(filters=dg.RunsFilter(run_ids=ids)) if ids else []
    return sorted(records, key=lambda r: r.create_timestamp)


def _submit_late(world: World, instance: dg.DagsterInstance, bar: str) -> None:
    """Late intents on both sides of SPY, while the killed run is the bar's only run."""
    assert len(runs_for_bar(instance, bar)) == 1, f"bar {bar}: retried before the late intents"
    ledger = world.ledger()
    try:
        report = ledger.submit_intents(_late(bar), source="late.csv")
        assert [r.reason.value for r in report.refused] == ["late", "late"]
    finally:
        ledger.close()


def _kill_at_random_instant(instance: dg.DagsterInstance, bar: str, window_s: float) -> int:
    """SIGKILL the bar's run worker a seeded random delay in ``[0, window_s)`` after its run is
    STARTED (its worker, named by the run's PID tag, reported the start); return the PID.

    Not earlier: a worker killed while its run is still STARTING is failed by run monitoring
    only after ``start_timeout_seconds`` (Dagster's default, 180 s), not by the launcher's
    worker health check, which Dagster calls for STARTED runs only."""
    delay = random.Random(SEED).uniform(0.0, window_s)
    deadline = time.monotonic() + 120
    while True:
        runs = runs_for_bar(instance, bar)
        if runs and runs[0].status is dg.DagsterRunStatus.STARTED and PID_TAG in runs[0].tags:
            break
        assert time.monotonic() < deadline, f"bar {bar}: no run worker within 120 s"
        time.sleep(0.02)
    [run] = runs
    time.sleep(delay)
    current = instance.get_run_by_id(run.run_id)
    assert current is not None
    assert not current.is_finished, (
        f"bar {bar}: the run ended before the kill at +{delay:.3f} s (window {window_s:.3f} s)"
    )
    pid = int(run.tags[PID_TAG])
    os.kill(pid, signal.SIGKILL)
    return pid


def _check_bar(world: World, bar: str, through: int) -> None:
    """At a quiet point (the next bar's worker dead, its retry not due; or every bar settled):
    the venue holds each of ``bar``'s orders once, as journaled; the strategies' positions are
    the sum of what the frozen plans of ``BARS[:through]`` accepted (and of the next bar's,
    once it is settled);
    the venue's positions are the ledger's book plus the fills of the next bar's orders that
    its killed worker sent but did not record; every late intent of ``bar`` is refused."""
    from allocator.execution import DEFAULT_INSTRUMENTS
    from resources.brokers.registry import pipeline_venues
    from resources.ledger import LedgerPaperState

    after = BARS[through] if through < len(BARS) else None
    ledger = world.ledger()
    try:
        journal = ledger.orders(parse_bar(bar))
        next_journal = ledger.orders(parse_bar(after)) if after else []
        next_done = bool(after and ledger.bar_done(parse_bar(after)))
        paper = LedgerPaperState(ledger)
        at_venue = [o for v in ("alpaca", "ibkr", "ccxt") for o in paper.orders(f"paper-{v}")]
        held: dict[str, D] = {}
        for broker in pipeline_venues(DEFAULT_INSTRUMENTS, ledger=ledger).values():
            for symbol, qty in broker.positions().items():
                if qty:
                    held[symbol] = held.get(symbol, D(0)) + qty
        positions = ledger.positions()
        refused = {r.key: r.reason.value for r in ledger.refusals(parse_bar(bar))}
    finally:
        ledger.close()
    mine = {str(o["client_order_id"]) for o in journal}
    ours = Counter((o.symbol, str(o.side)) for o in at_venue if o.client_order_id in mine)
    assert ours, bar
    assert ours == Counter((str(o["symbol"]), str(o["side"])) for o in journal), bar
    assert set(ours.values()) == {1}, (bar, ours)  # one order per (bar, symbol, side)
    filled = {str(o["client_order_id"]): D(str(o["filled_qty"])) for o in journal}
    assert {o.client_order_id: o.filled_qty for o in at_venue if o.client_order_id in mine} == (
        filled
    ), bar
    expected: dict[tuple[str, str], D] = {}
    late = {i.intent_id for b in BARS for i in _late(b)}
    ledger = world.ledger()
    try:  # each bar's frozen plan, as accepted (the budgets cut some of the later bars)
        for earlier in BARS[: through + 1 if next_done else through]:
            gated = _stored_plan(parse_bar(earlier), ledger, world.resources()["settings"]).gated()
            assert {g.intent_id for g in gated} == {i.intent_id for i in bar_intents(earlier)}
            assert not late & {g.intent_id for g in gated}  # sealed inbox: no late intent
            for g in gated:
                key = (g.strategy, g.symbol)
                expected[key] = expected.get(key, D(0)) + g.accepted_qty
    finally:
        ledger.close()
    assert positions == {k: q for k, q in expected.items() if q}, bar
    book: dict[str, D] = {}
    for (_, symbol), qty in positions.items():
        book[symbol] = book.get(symbol, D(0)) + qty
    if not next_done:  # sent by the next bar's killed worker, recorded by its retry
        pending = {str(o["client_order_id"]) for o in next_journal}
        for o in at_venue:
            if o.client_order_id in pending:
                book[o.symbol] = book.get(o.symbol, D(0)) + o.side.sign * o.filled_qty
    assert held == {s: q for s, q in book.items() if q}, bar
    late_ones = {} if bar == BARS[-1] else {i.intent_id: "late" for i in _late(bar)}
    assert refused == late_ones, bar  # the last bar, never killed, had no late intent


def _worker_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _killed(
    instance: dg.DagsterInstance, bar: str, marker: Path, window_s: float, log: Path
) -> None:
    """Wait until ``bar``'s first run worker is dead: killed by the hook at its checkpoint, or
    (the random bar) by this test at a seeded instant within ``window_s``."""
    if bar in KILLED:
        fired = Path(f"{marker}.{bar}")
        _wait(f"bar {bar}: the worker killed at {KILLED[bar]}", fired.exists, 120, log)
        text = fired.read_text(encoding="utf-8")
        assert text.startswith(f"kill@{KILLED[bar]}"), text
        pid = int(text.split("pid ")[1])
    else:
        pid = _kill_at_random_instant(instance, bar, window_s)
    _wait(f"bar {bar}: worker {pid} gone", lambda: _worker_gone(pid), 30, log)


def test_the_checkpoint_hook_is_scoped_per_bar_and_inert_when_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CHECKPOINT_ENV, raising=False)
    inert = _checkpoint_hook(parse_bar("2020-01-02"))
    inert("sealed")  # nothing happens
    monkeypatch.setenv(CHECKPOINT_ENV, "2020-01-02=fail@journaled; 2020-01-03=fail@sealed")
    monkeypatch.setenv(CHECKPOINT_ONCE_ENV, str(tmp_path / "once"))
    _checkpoint_hook(parse_bar("2020-01-06"))("journaled")  # another bar: not scoped to it
    hook = _checkpoint_hook(parse_bar("2020-01-02"))
    hook("sealed")
    with pytest.raises(RuntimeError, match="checkpoint journaled"):
        hook("journaled")
    hook("journaled")  # once: its marker exists now
    assert (tmp_path / "once.2020-01-02").exists()
    with pytest.raises(RuntimeError, match="checkpoint sealed"):
        _checkpoint_hook(parse_bar("2020-01-03"))("sealed")
    monkeypatch.setenv(CHECKPOINT_ENV, "2020-01-02=kill")
    with pytest.raises(dg.Failure, match="2020-01-02=kill"):
        _checkpoint_hook(parse_bar("2020-01-02"))


@pytest.mark.slow
def test_one_daemon_kills_a_bar_at_every_checkpoint_and_at_a_random_instant(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster_home"
    prepare_home(home, SQLITE)
    instance_yaml = home / "dagster.yaml"  # the committed file, run monitoring polled each 1 s
    text = instance_yaml.read_text(encoding="utf-8")
    assert text.count("poll_interval_seconds: 5") == 1
    instance_yaml.write_text(text.replace("poll_interval_seconds: 5", "poll_interval_seconds: 1"))
    config = tmp_path / "lane.toml"
    config.write_text("[execution]\nretry_backoff_s = 1\nmax_bar_retries = 3\n", encoding="utf-8")
    marker = tmp_path / "killed"
    env = live_env(home, world.env, interval_s=1, storage=SQLITE)
    env.update(
        {
            "ALLOCATOR_CONFIG": str(config),
            # read by bar_plan and submitted_orders in the run worker: bar k dies at checkpoint k
            CHECKPOINT_ENV: ";".join(f"{bar}=kill@{name}" for bar, name in KILLED.items()),
            CHECKPOINT_ONCE_ENV: str(marker),
        }
    )
    for key in ("DAGSTER_HOME", *world.env):
        monkeypatch.setenv(key, env[key])
    log = tmp_path / "daemon.log"
    with dg.DagsterInstance.get() as instance:
        rebalance = build_definitions(world.resources()).resolve_job_def("rebalance_job")
        assert rebalance.execute_in_process(instance=instance).success
        with daemon(env, log) as proc:
            submit_bar(world, BARS[0])
            _killed(instance, BARS[0], marker, 0.0, log)
            for k, bar in enumerate(BARS[:-1]):
                # bar's worker is dead, its retry not due yet: late intents, the next bar
                _submit_late(world, instance, bar)
                submit_bar(world, BARS[k + 1])  # complete, but it must wait for the killed bar
                _wait(f"bar {bar} settled", lambda b=bar: _settled(world, b), 120, log)  # type: ignore[misc]
                if BARS[k + 1] == BARS[-1]:
                    continue  # the last bar runs through: checked once it settled
                window = (
                    0.5
                    * min(  # the random instant: within the shortest retry so far
                        (
                            r.end_time - r.start_time
                            for b in KILLED
                            for r in _records(instance, b)[1:]
                            if r.start_time and r.end_time
                        ),
                        default=0.0,
                    )
                )
                _killed(instance, BARS[k + 1], marker, window, log)
                _check_bar(world, bar, through=k + 1)
            _wait(f"bar {BARS[-1]} settled", lambda: _settled(world, BARS[-1]), 120, log)
            _wait_finished(instance, log)
            for bar in BARS[-2:]:
                _check_bar(world, bar, through=len(BARS))
            assert proc.poll() is None, log.read_text()[-3000:]
        _check_runs(world, instance)


def _wait_finished(instance: dg.DagsterInstance, log: Path) -> None:
    """Every bar's runs have ended (the last bar's, settled already, may still be writing)."""

    def ended() -> bool:
        return all(r.dagster_run.is_finished for b in BARS for r in _records(instance, b))

    _wait("every run ended", ended, 60, log)


def _check_runs(world: World, instance: dg.DagsterInstance) -> None:
    """Each killed bar: its killed run FAILED, then one retry under ``BAR#retry1`` settled it
    (but the bar killed at ``recorded``, settled by the killed run itself: no retry); the next
    bar's first run started only after that."""
    ledger = world.ledger()
    try:
        for k, bar in enumerate(BARS[:-1]):
            records = _records(instance, bar)
            statuses = [r.dagster_run.status for r in records]
            keys = [r.dagster_run.tags.get("dagster/run_key") for r in records]
            status = ledger.bar_status(parse_bar(bar))
            assert status is not None
            assert status.state.value == "settled", (bar, status)
            if KILLED.get(bar) == "recorded":
                assert statuses == [dg.DagsterRunStatus.FAILURE], (bar, statuses)
                assert keys == [bar]
                assert status.attempts == 0
            else:
                expected = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS]
                assert statuses == expected, (bar, statuses)
                assert keys == [bar, f"{bar}#retry1"], (bar, keys)
                assert status.attempts == 1, (bar, status)
                assert records[0].dagster_run.run_id in (status.last_error or "")
                assert records[0].end_time is not None
                assert records[1].start_time is not None
                assert records[0].end_time <= records[1].start_time  # retried once it failed
            settled_by = records[-1].end_time
            [first_next, *_] = _records(instance, BARS[k + 1])
            assert settled_by is not None
            assert first_next.start_time is not None
            assert settled_by <= first_next.start_time, (bar, "the next bar ran too early")
        last = _records(instance, BARS[-1])
        assert [r.dagster_run.status for r in last] == [dg.DagsterRunStatus.SUCCESS]
        assert ledger.lane_halt() is None
    finally:
        ledger.close()
