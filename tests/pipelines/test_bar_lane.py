"""A failed bar stops the lane (docs/decisions/0012-live-bar-path.md), proven on failure paths.

* The sensor retries a failed bar with backoff and a new ``run_key`` per attempt, halts the lane
  after ``[execution] max_bar_retries``, requests nothing while halted, and ``allocator bar
  retry`` resumes it; the retry that then really runs settles the bar and the next bar follows.
* A run that FAILED after its order was sent, with a late intent arriving in between, is
  re-executed the way the UI does (``dagster/parent_run_id``, from the failure): exactly one
  order per (bar, symbol, side), the venue's position equals the ledger's book, and the late
  intent is a ``late`` refusal row. ``allocator bar abandon`` refuses while the venue holds the
  bar's order.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from allocator.execution.records import parse_bar
from assets.execution import CHECKPOINT_ENV, CHECKPOINT_ONCE_ENV
from cli.main import main
from pipelines.definitions import build_definitions
from pipelines.sensors import bar_sensor
from tests.pipelines import _jobs
from tests.pipelines.world import BARS, World, submit_bar

BAR = BARS[0]


@pytest.fixture
def env_world(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    return world


def _config(world: World, backoff_s: float, retries: int) -> str:
    path = world.root / "lane.toml"
    path.write_text(
        f"[execution]\nretry_backoff_s = {backoff_s}\nmax_bar_retries = {retries}\n",
        encoding="utf-8",
    )
    return str(path)


def _sensor(world: World, instance: dg.DagsterInstance, cursor: str | None, config: str):  # type: ignore[no-untyped-def]
    res = world.resources(sensor_hold_s=0.0, bar_deadline_seconds=3600, config_path=config)
    ctx = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"ledger": res["ledger"], "settings": res["settings"]},
    )
    return bar_sensor(ctx)


def _requests(result: object) -> list[dg.RunRequest]:
    return list(getattr(result, "run_requests", None) or [])


def _skip(result: object) -> str:
    if isinstance(result, dg.SkipReason):
        return str(result.skip_message)
    skip = getattr(result, "skip_reason", None)
    return "" if skip is None else str(skip.skip_message)


def _lane_checks(result: object) -> list[dg.AssetCheckEvaluation]:
    return [e for e in getattr(result, "asset_events", None) or [] if e.check_name == "bar_lane_ok"]


def _failed_run(instance: dg.DagsterInstance, request: dg.RunRequest) -> str:
    """The run the daemon would have made of ``request``, ended FAILURE."""
    run = instance.create_run_for_job(
        job_def=_jobs.bar_job(), tags={**request.tags, "dagster/run_key": request.run_key or ""}
    )
    instance.report_run_failed(run)
    return run.run_id


def _rebalance(world: World, instance: dg.DagsterInstance) -> None:
    defs = build_definitions(world.resources())
    assert defs.resolve_job_def("rebalance_job").execute_in_process(instance=instance).success


def test_backoff_new_run_key_per_attempt_halt_then_retry_resumes(
    env_world: World, instance: dg.DagsterInstance
) -> None:
    world = env_world
    _rebalance(world, instance)
    submit_bar(world, BARS[0])
    submit_bar(world, BARS[1])
    backoff = 0.4
    config = _config(world, backoff, retries=2)
    first = _sensor(world, instance, None, config)
    [request] = _requests(first)
    assert request.run_key == BAR
    tags = dict(request.tags)
    keys = [request.run_key]
    for attempt in (1, 2, 3):
        failed_id = _failed_run(instance, request)
        failed_at = datetime.now(UTC)
        result = _sensor(world, instance, BAR, config)
        assert not _requests(result), f"attempt {attempt}: nothing may run yet"
        [check] = _lane_checks(result)  # the UI sees the failure at once
        assert not check.passed
        ledger = world.ledger()
        try:
            status = ledger.bar_status(parse_bar(BAR))
            halt = ledger.lane_halt()
        finally:
            ledger.close()
        assert status is not None
        assert status.attempts == attempt
        assert status.last_error is not None
        assert status.last_error.startswith(f"run {failed_id} FAILURE")
        if attempt == 3:  # two retries failed: max_bar_retries = 2
            break
        assert halt is None
        assert status.next_retry_at is not None
        delay = (status.next_retry_at - failed_at).total_seconds()
        assert backoff * 2 ** (attempt - 1) - 0.2 <= delay <= backoff * 2 ** (attempt - 1) + 0.2
        assert "next retry at" in _skip(result)
        assert not _requests(_sensor(world, instance, BAR, config))  # not due yet
        time.sleep(max(0.0, (status.next_retry_at - datetime.now(UTC)).total_seconds()) + 0.05)
        [request] = _requests(_sensor(world, instance, BAR, config))
        assert request.run_key == f"{BAR}#retry{attempt}"  # a new run key per attempt
        assert dict(request.tags) == tags  # tagged like the first
        keys.append(request.run_key)
    assert keys == [BAR, f"{BAR}#retry1", f"{BAR}#retry2"]
    assert halt is not None
    assert halt.bar == BAR
    assert BAR in halt.reason
    assert failed_id in halt.reason  # the last error names the run
    assert BAR in (check.description or "")
    assert "halted" in (check.description or "")
    # Halted: nothing is requested, the failed bar's nor the next one's, however long we wait.
    time.sleep(backoff * 8)
    for _ in range(2):
        halted = _sensor(world, instance, BAR, config)
        assert not _requests(halted)
        assert "halted" in _skip(halted)
        assert BAR in _skip(halted)
    # The operator retries: the halt is cleared, the bar is due now, with a new run key.
    url = world.env["ALLOCATOR_LEDGER_URL"]
    assert main(["bar", "retry", BARS[3], "--ledger", url]) == 2  # never sealed
    assert main(["bar", "retry", BAR, "--ledger", url, "--by", "ops"]) == 0
    [request] = _requests(_sensor(world, instance, BAR, config))
    assert request.run_key == f"{BAR}#retry3"
    # That run really runs: it settles the bar, and only then does the next bar follow.
    run = dg.execute_job(
        dg.reconstructable(_jobs.bar_job), instance=instance, tags=dict(request.tags)
    )
    assert run.success
    evaluations = [
        e.event_specific_data
        for e in run.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    lane = [e for e in evaluations if e.check_name == "bar_lane_ok"]
    assert [e.passed for e in lane] == [True]
    [following] = _requests(_sensor(world, instance, BAR, config))
    assert following.run_key == BARS[1]
    assert main(["bar", "retry", BAR, "--ledger", url]) == 2  # settled: nothing to retry


def _journal_and_venue(world: World, bar: str) -> tuple[list[tuple[str, str]], int, dict, dict]:  # type: ignore[type-arg]
    from allocator.execution import DEFAULT_INSTRUMENTS
    from resources.brokers.registry import pipeline_venues
    from resources.ledger import LedgerPaperState

    ledger = world.ledger()
    try:
        journal = [(str(o["symbol"]), str(o["side"])) for o in ledger.orders(parse_bar(bar))]
        paper = LedgerPaperState(ledger)
        at_venue = sum(len(paper.orders(f"paper-{v}")) for v in ("alpaca", "ibkr", "ccxt"))
        venues = pipeline_venues(DEFAULT_INSTRUMENTS, ledger=ledger)
        held: dict[str, Decimal] = {}
        for broker in venues.values():
            for symbol, qty in broker.positions().items():
                if qty:
                    held[symbol] = held.get(symbol, Decimal(0)) + qty
        book: dict[str, Decimal] = {}
        for (_, symbol), qty in ledger.positions().items():
            book[symbol] = book.get(symbol, Decimal(0)) + qty
        book = {s: q for s, q in book.items() if q}
    finally:
        ledger.close()
    return journal, at_venue, held, book


def test_reexecuting_a_failed_run_after_its_order_went_out_with_a_late_intent(
    env_world: World, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    world = env_world
    _rebalance(world, instance)
    submit_bar(world, BAR)
    # The first run fails right after the venue acknowledged its first order.
    monkeypatch.setenv(CHECKPOINT_ENV, "fail@ack:")
    monkeypatch.setenv(CHECKPOINT_ONCE_ENV, str(tmp_path / "fired"))
    tags = {"allocator/bar": BAR, "allocator/lane": "bar"}
    first = dg.execute_job(
        dg.reconstructable(_jobs.bar_job), instance=instance, tags=tags, raise_on_error=False
    )
    assert not first.success
    assert (tmp_path / "fired").exists()
    journal, at_venue, _, _ = _journal_and_venue(world, BAR)
    assert journal
    assert at_venue >= 1  # an order is at the venue
    # A late intent arrives for the bar (pairs now wants to sell 100 SPY): it is refused late.
    ledger = world.ledger()
    try:
        from tests.pipelines.test_instigators import _late_intent

        report = ledger.submit_intents([_late_intent(BAR)], source="late.csv")
        assert [r.reason.value for r in report.refused] == ["late"]
    finally:
        ledger.close()
    # The venue holds the bar's order: abandoning it is refused and names the order.
    url = world.env["ALLOCATOR_LEDGER_URL"]
    assert main(["bar", "abandon", BAR, "--reason", "x", "--ledger", url]) == 2
    # The sensor counts the failure with the run's own error and holds the lane on this bar.
    config = _config(world, 3600, retries=3)
    submit_bar(world, BARS[1])
    blocked = _sensor(world, instance, BAR, config)
    assert not _requests(blocked)
    ledger = world.ledger()
    try:
        status = ledger.bar_status(parse_bar(BAR))
    finally:
        ledger.close()
    assert status is not None
    assert status.last_error is not None
    assert first.run_id in status.last_error
    assert "injected failure at checkpoint ack:" in status.last_error
    # Re-execute the FAILED run from its failure, as the UI does (dagster/parent_run_id).
    options = dg.ReexecutionOptions.from_failure(first.run_id, instance)
    rerun = dg.execute_job(
        dg.reconstructable(_jobs.bar_job), instance=instance, reexecution_options=options
    )
    assert rerun.success
    record = instance.get_run_by_id(rerun.run_id)
    assert record is not None
    assert record.parent_run_id == first.run_id  # the UI's tag dagster/parent_run_id
    journal, at_venue, held, book = _journal_and_venue(world, BAR)
    counts = Counter(journal)
    assert counts
    assert all(n == 1 for n in counts.values()), counts  # one order per (bar, symbol, side)
    assert at_venue == len(journal)  # nothing sent twice
    assert held == book  # the venue's position is the ledger's book
    ledger = world.ledger()
    try:
        assert ledger.bar_done(parse_bar(BAR))
        assert [r.reason.value for r in ledger.refusals(parse_bar(BAR))] == ["late"]
        assert ledger.open_bars() == []
    finally:
        ledger.close()
    # The bar is settled: the lane moves on to the next bar.
    [following] = _requests(_sensor(world, instance, BAR, config))
    assert following.run_key == BARS[1]


def _status(world: World) -> object:
    ledger = world.ledger()
    try:
        return ledger.bar_status(parse_bar(BAR))
    finally:
        ledger.close()


def test_a_reexecution_through_the_python_api_is_an_attempt_of_its_bar(
    env_world: World, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = env_world
    _rebalance(world, instance)
    submit_bar(world, BAR)
    config = _config(world, 3600, retries=5)
    monkeypatch.setenv(CHECKPOINT_ENV, "fail@recording")  # every run of the bar fails there
    tags = {"allocator/bar": BAR, "allocator/lane": "bar"}
    first = dg.execute_job(
        dg.reconstructable(_jobs.bar_job), instance=instance, tags=tags, raise_on_error=False
    )
    assert not first.success
    _sensor(world, instance, BAR, config)
    assert _status(world).attempts == 1  # type: ignore[attr-defined]
    # Re-executed through the Python API: Dagster copies no tag of the parent's ...
    options = dg.ReexecutionOptions.from_failure(first.run_id, instance)
    rerun = dg.execute_job(
        dg.reconstructable(_jobs.bar_job),
        instance=instance,
        reexecution_options=options,
        raise_on_error=False,
    )
    assert not rerun.success
    record = instance.get_run_by_id(rerun.run_id)
    assert record is not None
    assert record.parent_run_id == first.run_id
    assert record.tags["allocator/bar"] == BAR  # ... the bar run tags itself with its bar
    result = _sensor(world, instance, BAR, config)
    status = _status(world)
    assert status.attempts == 2  # type: ignore[attr-defined]
    assert status.last_error.startswith(f"run {rerun.run_id} FAILURE")  # type: ignore[attr-defined]
    assert not _requests(result)
    # A re-execution that failed before any step (never tagged) is its parent's bar's attempt.
    orphan = instance.create_run_for_job(
        job_def=_jobs.bar_job(),
        tags={"allocator/lane": "bar"},
        parent_run_id=rerun.run_id,
        root_run_id=first.run_id,
    )
    assert "allocator/bar" not in orphan.tags
    instance.report_run_failed(orphan)
    _sensor(world, instance, BAR, config)
    status = _status(world)
    assert status.attempts == 3  # type: ignore[attr-defined]
    assert status.last_error.startswith(f"run {orphan.run_id} FAILURE")  # type: ignore[attr-defined]


def test_the_sensor_never_requests_a_bar_a_live_runner_holds(
    env_world: World, instance: dg.DagsterInstance
) -> None:
    from allocator.execution.lease import LeaseOwner
    from assets.tags import lease_label

    world = env_world
    _rebalance(world, instance)
    submit_bar(world, BAR)
    config = _config(world, 0, retries=5)
    bar = parse_bar(BAR)
    cli = LeaseOwner.this_process("allocator bar run")  # `allocator bar run BAR` runs it now
    ledger = world.ledger()
    try:
        ledger.seal_bar(bar, by="allocator bar run")
        now = datetime.now(UTC)
        assert ledger.claim_bar(bar, cli.text(), now=now, until=now + timedelta(seconds=60))
    finally:
        ledger.close()
    held = _sensor(world, instance, None, config)
    assert not _requests(held)
    assert "is being run by allocator bar run" in _skip(held)
    ledger = world.ledger()
    try:
        assert ledger.release_bar_lease(bar, cli.text())  # that run ended (and failed)
    finally:
        ledger.close()
    [request] = _requests(_sensor(world, instance, None, config))
    assert request.run_key == BAR  # sealed, never launched by the lane: requested now
    # A Dagster run of the bar that died holding the lease: its failure frees the lease.
    failed_id = _failed_run(instance, request)
    dead_run = LeaseOwner.this_process(lease_label(failed_id))
    ledger = world.ledger()
    try:
        now = datetime.now(UTC)
        assert ledger.claim_bar(bar, dead_run.text(), now=now, until=now + timedelta(seconds=60))
    finally:
        ledger.close()
    [retry] = _requests(_sensor(world, instance, BAR, config))
    assert retry.run_key == f"{BAR}#retry1"
    assert _status(world).lease_owner is None  # type: ignore[attr-defined]
