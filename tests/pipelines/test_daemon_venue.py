"""Through a real ``dagster-daemon`` on the Alpaca fake (``ALPACA_MODE=paper``, the real
alpaca-py adapter), on each instance storage (SQLite files, PostgreSQL): the bar's run worker is
SIGKILLed right after the venue acknowledged its first order; late intents arrive on both sides
of SPY; run monitoring fails the dead run and the bar sensor holds the lane on it (its retry
backoff is an hour, so only the operator resolves it). The FAILED run is then re-executed from
its failure the way the UI does it: the webserver's GraphQL mutation
``launchPipelineReexecution`` (``dagster/parent_run_id``), in a workspace on the same code
location, submitted through the instance's run coordinator and launched by its run launcher.
After it, read from the fake's own state: one order per (bar, symbol, side) at the venue, the
venue's position equal to the ledger's book, the strategies' virtual positions summing to it,
a ``late`` refusal row per late intent; and only then does the next bar run."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from allocator.execution.orders import AssetClass
from allocator.execution.records import Intent, parse_bar
from assets.execution import CHECKPOINT_ENV, CHECKPOINT_ONCE_ENV
from pipelines.definitions import build_definitions
from tests.fakes.fake_alpaca import FakeAlpaca
from tests.pipelines.live import (
    PROJECT,
    Storage,
    daemon,
    live_env,
    prepare_home,
    runs_for_bar,
    wait_for_bar,
)
from tests.pipelines.world import BARS, PRICES, World, bar_intents, submit_bar

BAR = BARS[0]
D = Decimal

REEXECUTE = """
mutation($reexecutionParams: ReexecutionParams) {
  launchPipelineReexecution(reexecutionParams: $reexecutionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId parentRunId rootRunId } }
    ... on PythonError { message stack }
  }
}
"""


@pytest.fixture
def alpaca() -> Iterator[FakeAlpaca]:
    fake = FakeAlpaca()
    fake.prices = {symbol: D(text) for symbol, text in PRICES.items()}
    fake.assets = {symbol: {"fractionable": False} for symbol in PRICES}
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def _wait(what: str, done: Callable[[], bool], timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.3)
    raise TimeoutError(f"{what} within {timeout_s} s; daemon log:\n{log.read_text()[-4000:]}")


def _late(bar: str) -> list[Intent]:
    """Late intents on both sides of SPY (pairs sells, flow buys)."""
    return [
        Intent(
            intent_id=f"{bar}-{strategy}-late",
            strategy=strategy,
            symbol="SPY",
            asset_class=AssetClass.ETF,
            qty=D(qty),
            bar=parse_bar(bar),
        )
        for strategy, qty in (("pairs", "-100"), ("flow", "5"))
    ]


def _reexecute_from_the_ui(instance: dg.DagsterInstance, parent_run_id: str) -> dict[str, Any]:
    """What the webserver does for "Re-execute from failure": its GraphQL mutation, in a
    workspace on the daemon's code location (``-m pipelines.definitions -a defs``)."""
    from dagster._core.remote_representation.grpc_server_registry import GrpcServerRegistry
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster._grpc.constants import GrpcServerCommand
    from dagster_graphql.test.utils import execute_dagster_graphql

    target = ModuleTarget(
        module_name="pipelines.definitions",
        attribute="defs",
        working_directory=str(PROJECT),
        location_name=None,
    )
    # The webserver's code server registry, except that it waits for its code server to exit.
    registry = GrpcServerRegistry(
        instance_ref=instance.get_ref(),
        server_command=GrpcServerCommand.API_GRPC,
        heartbeat_ttl=45,
        startup_timeout=instance.code_server_process_startup_timeout,
        wait_for_processes_on_shutdown=True,
    )
    with registry, WorkspaceProcessContext(instance, target, grpc_server_registry=registry) as ws:
        result = execute_dagster_graphql(
            ws.create_request_context(),
            REEXECUTE,
            {"reexecutionParams": {"parentRunId": parent_run_id, "strategy": "FROM_FAILURE"}},
        )
    launched: dict[str, Any] = result.data["launchPipelineReexecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run: dict[str, Any] = launched["run"]
    return run


def _bar_state(world: World, bar: str) -> Any:
    ledger = world.ledger()
    try:
        return ledger.bar_status(parse_bar(bar))
    finally:
        ledger.close()


@pytest.mark.slow
def test_sigkill_on_the_alpaca_fake_then_the_ui_reexecution_of_the_failed_run_settles_it(
    world: World,
    dagster_storage: Storage,
    alpaca: FakeAlpaca,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "dagster_home"
    prepare_home(home, dagster_storage)
    config = tmp_path / "lane.toml"
    config.write_text(
        "[execution]\nretry_backoff_s = 3600\nmax_bar_retries = 3\n", encoding="utf-8"
    )
    venue = {
        "ALPACA_MODE": "paper",
        "ALPACA_API_KEY": alpaca.key,
        "ALPACA_SECRET_KEY": alpaca.secret,
        "ALPACA_BASE_URL": alpaca.url,
        "ALLOCATOR_CONFIG": str(config),
    }
    marker = tmp_path / "killed"
    env = live_env(home, world.env, interval_s=1, storage=dagster_storage)
    env.update(venue)
    # read by submitted_orders in the daemon's run worker; the UI's re-execution runs from
    # this process, whose environment has neither (and the marker exists by then)
    env.update({CHECKPOINT_ENV: "kill@ack:", CHECKPOINT_ONCE_ENV: str(marker)})
    for key in ("DAGSTER_HOME", *world.env, *dagster_storage.env, *venue):
        monkeypatch.setenv(key, env[key])
    log = tmp_path / "daemon.log"
    with dg.DagsterInstance.get() as instance:
        assert dagster_storage.name in type(instance.run_storage).__name__.lower()
        rebalance = build_definitions(world.resources()).resolve_job_def("rebalance_job")
        assert rebalance.execute_in_process(instance=instance).success
        with daemon(env, log) as proc:
            submit_bar(world, BAR)
            _wait("the run worker killed itself", marker.exists, 120, log)
            assert alpaca.order_book(), "killed after an acknowledgement: an order is at Alpaca"
            ledger = world.ledger()
            try:
                report = ledger.submit_intents(_late(BAR), source="late.csv")
                assert [r.reason.value for r in report.refused] == ["late", "late"]
            finally:
                ledger.close()
            submit_bar(world, BARS[1])  # complete, but it must wait for the killed bar

            def failure_counted() -> bool:
                status = _bar_state(world, BAR)
                return status is not None and status.attempts == 1

            _wait("run monitoring failed the run, the sensor counted it", failure_counted, 120, log)
            [killed] = runs_for_bar(instance, BAR)
            assert killed.status == dg.DagsterRunStatus.FAILURE
            time.sleep(3)  # a few sensor ticks: the lane holds on the failed bar
            assert runs_for_bar(instance, BARS[1]) == []
            assert _bar_state(world, BAR).state.value != "settled"

            launched = _reexecute_from_the_ui(instance, killed.run_id)
            assert launched["parentRunId"] == killed.run_id
            assert launched["rootRunId"] == killed.run_id

            def reexecution_done() -> bool:
                run = instance.get_run_by_id(launched["runId"])
                return run is not None and run.is_finished

            _wait("the re-execution finished", reexecution_done, 180, log)
            rerun = instance.get_run_by_id(launched["runId"])
            assert rerun is not None
            assert rerun.status == dg.DagsterRunStatus.SUCCESS, rerun.status
            assert rerun.tags["dagster/parent_run_id"] == killed.run_id
            assert rerun.tags["allocator/bar"] == BAR
            second = wait_for_bar(instance, BARS[1], timeout_s=300)  # the lane moves on
            assert proc.poll() is None, log.read_text()[-3000:]
        records = instance.get_run_records(dg.RunsFilter(run_ids=[rerun.run_id, second.run_id]))
        ends = {r.dagster_run.run_id: r for r in records}
        assert ends[rerun.run_id].end_time is not None
        assert ends[second.run_id].start_time is not None
        assert ends[rerun.run_id].end_time <= ends[second.run_id].start_time  # the lane waited
    _check_bar(world, alpaca, BAR)
    ledger = world.ledger()
    try:
        status = ledger.bar_status(parse_bar(BAR))
        assert status is not None
        assert status.state.value == "settled"
        assert killed.run_id in (status.last_error or "")
        refused = {r.key: r.reason.value for r in ledger.refusals(parse_bar(BAR))}
        assert refused == {i.intent_id: "late" for i in _late(BAR)}
        assert ledger.lane_halt() is None
    finally:
        ledger.close()
    _check_bar(world, alpaca, BARS[1])
    # Both bars: the venue holds the ledger's book, which the strategies' positions sum to.
    ledger = world.ledger()
    try:
        positions = ledger.positions()
    finally:
        ledger.close()
    expected: dict[tuple[str, str], D] = {}
    for bar in BARS[:2]:
        for intent in bar_intents(bar):
            key = (intent.strategy, intent.symbol)
            expected[key] = expected.get(key, D(0)) + intent.qty
    assert positions == {k: q for k, q in expected.items() if q}
    book: dict[str, D] = {}
    for (_, symbol), qty in positions.items():
        book[symbol] = book.get(symbol, D(0)) + qty
    assert alpaca.holdings() == {s: q for s, q in book.items() if q}
    assert len(alpaca.order_book()) == 6  # 3 orders per bar, none sent twice


def _check_bar(world: World, alpaca: FakeAlpaca, bar: str) -> None:
    """One order per (bar, symbol, side) at the venue, each the journal's, filled once and
    every one of its executions in the ledger."""
    ledger = world.ledger()
    try:
        journal = ledger.orders(parse_bar(bar))
        fills = {f.fill_id for f in ledger.broker_fills()}
        assert ledger.bar_done(parse_bar(bar))
    finally:
        ledger.close()
    assert {o["mode"] for o in journal} == {"paper"}
    assert {o["venue"] for o in journal} == {"alpaca"}
    mine = {str(o["client_order_id"]) for o in journal}
    held = [o for o in alpaca.order_book() if o.client_order_id in mine]
    assert Counter((o.symbol, o.side) for o in held) == Counter(
        (str(o["symbol"]), str(o["side"])) for o in journal
    )
    assert all(n == 1 for n in Counter((o.symbol, o.side) for o in held).values())
    assert all(o.filled == o.qty for o in held)
    venue_fills = {f for o in held for f in o.fill_ids}
    assert venue_fills
    assert venue_fills <= fills
