"""Bar latency through the strategy gateway vs the sensor-only path (``make bench``): JSON lines.

``gateway_bar_latency_p50_s`` and ``gateway_bar_latency_p99_s``: from the moment the bar's last
intent is ``POST``-ed to ``/v1/intents`` to the paper broker's acknowledgement of the bar's
orders (the ledger's ``orders.updated_at``: the journal's ack), over ``BENCH_GATEWAY_LAT_BARS``
bars (default 30). Each bar's five strategies are five bots (:class:`allocator.client.GatewayClient`
on their own keep-alive connection); four post first, the fifth's ``POST`` completes the bar and
the gateway's :class:`gateway.launch.BarLauncher` requests its run at once through the instance
(its run coordinator and the committed ``dagster.yaml``'s run launcher). The gateway is
:func:`tests.gateway.server.running_gateway` (uvicorn on 127.0.0.1, a thread of this process);
a real ``dagster-daemon`` runs beside it, its bar sensor still on as the backstop, so a bar the
gateway failed to launch is still counted (``launched_by_gateway`` says how many it did).

Baseline, in the same run and the same harness (:func:`bench_bar_latency.measure`: a fresh world
and ``DAGSTER_HOME`` with the committed ``dagster.yaml``, bars at a random 0-5 s phase of the
daemon's loop, the same seed): today's sensor-only path, intents written to the ledger's inbox
and the bar sensor launching. ``ratio`` = sensor-only ÷ gateway.

Goal (issue 12): p50 <= 1.5 s and p99 <= 3 s with the default ``dagster.yaml``.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(HERE))

from bench_bar_latency import Submit, emit, ledger_feed, measure  # noqa: E402

from allocator.client import GatewayClient, IntentIn  # noqa: E402
from allocator.settings import load_settings  # noqa: E402
from gateway.launch import BarLauncher  # noqa: E402
from tests.gateway.server import running_gateway  # noqa: E402
from tests.pipelines.world import World, bar_intents  # noqa: E402

N_BARS = int(os.environ.get("BENCH_GATEWAY_LAT_BARS", "30"))
YEAR = 2030


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


@contextmanager
def gateway_feed(world: World) -> Iterator[Submit]:
    """Each strategy of the world a bot posting its bar's intents to a running gateway."""
    settings = load_settings()  # the environment ``measure`` set: the world's ledger, DAGSTER_HOME
    ledger = world.ledger()
    try:
        names = sorted(ledger.active_strategies())
        tokens = {name: ledger.add_strategy(name) for name in names}
    finally:
        ledger.close()
    launcher = BarLauncher(settings)
    with running_gateway(settings, launcher=launcher) as base:
        if not launcher.wait_ready(180):
            raise RuntimeError(f"the gateway's bar launcher did not load: {launcher.error}")
        clients = {name: GatewayClient(base, tokens[name], retries=0) for name in names}
        for client in clients.values():
            client.me()  # the connections are open before the first bar

        def submit(bar: str) -> float:
            by_strategy: dict[str, list[IntentIn]] = {name: [] for name in names}
            for i in bar_intents(bar):
                body = IntentIn(i.intent_id, i.symbol, i.asset_class.value, i.qty, bar)
                by_strategy[i.strategy].append(body)
            *first, last = names
            for name in first:
                _post(clients[name], by_strategy[name])
            sent = time.time()
            _post(clients[last], by_strategy[last])
            return sent

        try:
            yield submit
        finally:
            for client in clients.values():
                client.close()


def _post(client: GatewayClient, intents: list[IntentIn]) -> None:
    answers = client.submit_intents(intents)
    refused = [a for a in answers if not a.accepted]
    if refused:
        raise RuntimeError(f"intents refused: {refused}")


def main() -> None:
    keep = os.environ.get("BENCH_DIR")  # keep the daemon logs there (debugging)
    with tempfile.TemporaryDirectory(prefix="bench_gw_bar_") as scratch:
        tmp = Path(keep or scratch)
        # bars of 2030: the gateway refuses a bar older than now (stale_bar); the same for both
        gw = measure("bar_job", tmp / "gateway", feed=gateway_feed, n_bars=N_BARS, year=YEAR)
        sensor = measure("bar_job", tmp / "sensor", feed=ledger_feed, n_bars=N_BARS, year=YEAR)
    p50, p99 = statistics.median(gw["latency"]), _p99(gw["latency"])
    base50, base99 = statistics.median(sensor["latency"]), _p99(sensor["latency"])
    common = {
        "bars": len(gw["latency"]),
        "launched_by_gateway": int(sum(gw["by_gateway"])),
        "warm_starts": int(sum(gw["warm"])),
        "run_created_p50_s": round(statistics.median(gw["sensor_wait"]), 3),
        "after_run_created_p50_s": round(statistics.median(gw["after_sensor"]), 3),
        "baseline_is": "sensor-only path (intents into the inbox, the bar sensor launches)",
    }
    emit(
        "gateway_bar_latency_p50_s",
        round(p50, 3),
        "s",
        round(base50, 3),
        round(base50 / p50, 3),
        goal_s=1.5,
        **common,
    )
    emit(
        "gateway_bar_latency_p99_s",
        round(p99, 3),
        "s",
        round(base99, 3),
        round(base99 / p99, 3),
        goal_s=3.0,
        **common,
    )


if __name__ == "__main__":
    main()
