"""Two bots through the gateway, end to end, over real HTTP and a real Dagster instance: they
submit a complete bar; the gateway launches its run at once (no daemon runs, so no sensor can);
both bots see their fills on the event stream; a late intent is refused ``late``."""

from __future__ import annotations

import csv
import queue
import threading
import time
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from allocator.client import Event, GatewayClient, IntentIn
from allocator.execution.orders import AssetClass
from allocator.execution.records import Bar, Intent, parse_bar
from allocator.settings import load_settings
from gateway.launch import LAUNCHED_BY_TAG, BarLauncher, complete_bar, request_bar_run
from pipelines.definitions import build_definitions
from pipelines.sensors import gateway_present
from resources.ledger import Ledger
from tests.gateway.server import running_gateway
from tests.pipelines.live import live_env, prepare_home, runs_for_bar, wait_for_bar
from tests.pipelines.world import World, write_world

BAR = "2030-01-02"
BOTS = {"flow": ("SPY", "10"), "carry": ("QQQ", "3")}  # two uncorrelated sleeves of the sample


def _keep_only(returns: Path, names: set[str]) -> None:
    with returns.open(encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["strategy"] in names]
    with returns.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["date", "strategy", "return"])
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.slow
def test_two_bots_complete_a_bar_that_runs_at_once_and_see_their_fills(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, heap_freezes: list[str]
) -> None:
    world = write_world(tmp_path / "world")
    _keep_only(Path(world.env["ALLOCATOR_RETURNS_SOURCE"]), set(BOTS))
    home = tmp_path / "dagster_home"
    prepare_home(home)
    env = live_env(home, world.env)
    env["ALLOCATOR_SENSORS_RUNNING"] = "0"
    for key in ("DAGSTER_HOME", "ALLOCATOR_SENSORS_RUNNING", "PYTHONWARNINGS", *world.env):
        monkeypatch.setenv(key, env[key])
    settings = load_settings()
    with dg.DagsterInstance.get() as instance:
        rebalance = build_definitions(world.resources()).resolve_job_def("rebalance_job")
        assert rebalance.execute_in_process(instance=instance).success
        ledger = world.ledger()
        try:
            assert ledger.active_strategies() == set(BOTS)
            tokens = {name: ledger.add_strategy(name) for name in BOTS}
        finally:
            ledger.close()
        launcher = BarLauncher(settings)
        with running_gateway(settings, launcher=launcher) as base:
            assert launcher.wait_ready(120), launcher.error
            # the long-lived heap is frozen once started, again once Dagster has loaded
            assert heap_freezes == ["app", "launcher"]
            # its presence, for which a daemon's bar sensor would leave complete bars to it
            deadline = time.monotonic() + 10
            while not gateway_present(instance) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert gateway_present(instance)
            seen: dict[str, queue.Queue[Event]] = {name: queue.Queue() for name in BOTS}
            listening = threading.Barrier(len(BOTS) + 1)

            def bot(name: str) -> None:
                with GatewayClient(base, tokens[name]) as client:
                    listening.wait()
                    for event in client.events():
                        seen[name].put(event)
                        if event.event == "bar":
                            return

            threads = [threading.Thread(target=bot, args=(n,), daemon=True) for n in BOTS]
            for thread in threads:
                thread.start()
            listening.wait()
            time.sleep(1.0)  # the streams connect (they start at "now")
            posted = {}
            for name, (symbol, qty) in BOTS.items():
                with GatewayClient(base, tokens[name]) as client:
                    (answer,) = client.submit_intents(
                        [IntentIn(f"{name}-{BAR}", symbol, "etf", qty, BAR)]
                    )
                    posted[name] = time.monotonic()
                    assert answer.accepted, answer
            # the run starts without any sensor: no daemon runs in this test
            deadline = time.monotonic() + 30
            while not runs_for_bar(instance, BAR) and time.monotonic() < deadline:
                time.sleep(0.05)
            created = time.monotonic()
            (run,) = runs_for_bar(instance, BAR)
            assert run.tags[LAUNCHED_BY_TAG] == "gateway"
            assert run.tags["dagster/run_key"] == BAR
            assert created - max(posted.values()) < 10
            finished = wait_for_bar(instance, BAR, timeout_s=120)
            assert finished.run_id == run.run_id
            for thread in threads:
                thread.join(timeout=30)
            for name, (symbol, qty) in BOTS.items():
                events = []
                while not seen[name].empty():
                    events.append(seen[name].get())
                fills = [e.data for e in events if e.event == "fill"]
                assert [(f["bar"], f["symbol"], f["qty"]) for f in fills] == [(BAR, symbol, qty)]
                assert events[-1].event == "bar"
                assert events[-1].data == {"bar": BAR, "status": "settled", "fills": 1}
            with GatewayClient(base, tokens["flow"]) as client:
                (late,) = client.submit_intents([IntentIn("flow-late", "SPY", "etf", "1", BAR)])
                assert (late.accepted, late.reason) == (False, "late")
                assert client.bar(BAR).status == "settled"
                assert [f.symbol for f in client.fills()] == ["SPY"]
            assert len(runs_for_bar(instance, BAR)) == 1
            assert [launch.bar for launch in launcher.launches] == [BAR]
            _the_sensor_first_means_no_gateway_run(world, instance, launcher)
        assert not gateway_present(instance)  # stopped: the sensor launches every bar again


class _SensorSealsFirst:
    """A ledger whose seal is won by the sensor in between (the race the module doc of
    gateway/launch.py describes)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def __getattr__(self, name: str) -> object:
        return getattr(self._ledger, name)

    def seal_bar(self, bar: Bar, *, by: str) -> object:
        self._ledger.seal_bar(bar, by="bar_sensor")
        return self._ledger.seal_bar(bar, by=by)


def _the_sensor_first_means_no_gateway_run(
    world: World, instance: dg.DagsterInstance, launcher: BarLauncher
) -> None:
    later = "2030-01-03"
    ledger = world.ledger()
    try:
        ledger.submit_intents(
            [
                Intent(
                    intent_id=f"{name}-{later}",
                    strategy=name,
                    symbol=symbol,
                    asset_class=AssetClass.ETF,
                    qty=Decimal(qty),
                    bar=parse_bar(later),
                )
                for name, (symbol, qty) in BOTS.items()
            ]
        )
        assert complete_bar(ledger) == later
        raced = request_bar_run(instance, launcher.workspace, _SensorSealsFirst(ledger), later)
        assert raced is None
        assert runs_for_bar(instance, later) == []  # the created run was deleted unsubmitted
        # the bar is now the sensor's: sealed by it, the gateway launches nothing
        assert request_bar_run(instance, launcher.workspace, ledger, later) is None
        assert runs_for_bar(instance, later) == []
        status = ledger.bar_status(parse_bar(later))
        assert status is not None
        assert status.sealed_by == "bar_sensor"
    finally:
        ledger.close()
