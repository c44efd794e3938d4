"""Bar latency through the real daemon and sensor (``make bench``): JSON lines.

For each bar: every strategy's intent is written to the ledger's inbox; the bar sensor sees the
complete bar and requests a run (the daemon evaluates it once per 5 s loop, a Dagster constant;
each evaluation re-reads the inbox every ``ALLOCATOR_BAR_SENSOR_POLL`` = 0.2 s for up to
``ALLOCATOR_BAR_SENSOR_HOLD`` = 4.8 s, see ``pipelines/sensors.py``); the instance launches it;
``submitted_orders`` gets the paper broker's acknowledgement, which the ledger stamps
(``orders.updated_at``). Bars arrive on the market's clock, not the daemon's: before each bar the
benchmark waits a random 0-5 s (fixed seed), so the bar lands at a random phase of the daemon's
loop (without it, bar N+1 arrives a fixed time after bar N's run and the sensor wait is an
artefact of that phase). Latency = acknowledgement -
last intent written, p50 over ``BENCH_BARS`` (default 10) bars, once with ``bar_job``
(in-process executor) and once with the same graph on Dagster's default multiprocess executor
(``bar_job_multiprocess``), each on its own temporary ``DAGSTER_HOME`` with the committed
``dagster.yaml``. Both go through that file's ``WarmRunLauncher`` (``pipelines/run_launcher.py``:
the daemon's first bar run starts cold, later ones in a worker that loaded the code in
advance; ``warm_starts`` counts them). The sensor wait (intent written -> run created) is
reported separately, and so is the latency after the sensor (run created -> acknowledged).
A third pass runs ``bar_job`` with Dagster's stock ``DefaultRunLauncher`` (the same
``dagster.yaml`` without ``run_launcher``), to show what the warm launcher is worth.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # the pipeline tests' world and live harness (tests.pipelines)

import dagster as dg  # noqa: E402
import yaml  # noqa: E402

from allocator.calendar import SessionCalendar  # noqa: E402
from allocator.execution.records import parse_bar  # noqa: E402
from allocator.settings import load_settings  # noqa: E402
from assets.tags import START_TAG  # noqa: E402
from pipelines.definitions import build_definitions  # noqa: E402
from tests.pipelines.live import daemon, live_env, prepare_home, wait_for_bar  # noqa: E402
from tests.pipelines.world import World, submit_bar, write_world  # noqa: E402

N_BARS = int(os.environ.get("BENCH_BARS", "10"))
BASELINE = os.environ.get("BENCH_BASELINE", "1") == "1"  # 0: skip the multiprocess baseline
DAEMON_LOOP_S = 5.0  # dagster._daemon.sensor.MIN_INTERVAL_LOOP_TIME
INTERVAL_S = 1  # the sensor's minimum_interval_seconds: every daemon loop evaluates it
LAUNCHED_BY = "allocator/launched_by"  # gateway.launch.LAUNCHED_BY_TAG


def emit(
    name: str, value: float, unit: str, baseline: float, ratio: float, **extra: object
) -> None:
    print(
        json.dumps(
            {"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio}
            | extra
        ),
        flush=True,
    )


def _bars(n: int, year: int = 2020) -> list[str]:
    """The first ``n`` XNYS sessions of ``year`` (after the world's returns end in 2019)."""
    import datetime as dt

    cal = SessionCalendar.load("XNYS", dt.date(year, 1, 2), dt.date(year, 12, 31))
    return [str(s)[:10] for s in cal.sessions][:n]


def _utc(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


# A feed submits each bar's intents (returning the instant its last intent was sent) for the
# world's life: ``ledger_feed`` is today's path (written straight into the ledger's inbox, the
# sensor launches); benchmarks/bench_gateway_latency.py passes one through the gateway.
Submit = Callable[[str], float]
Feed = Callable[[World], AbstractContextManager[Submit]]


@contextmanager
def ledger_feed(world: World) -> Iterator[Submit]:
    def submit(bar: str) -> float:
        submit_bar(world, bar)
        return time.time()  # committed: from now the sensor can see it

    yield submit


def measure(
    job_name: str,
    root: Path,
    default_launcher: bool = False,
    feed: Feed = ledger_feed,
    n_bars: int = N_BARS,
    year: int = 2020,
) -> dict[str, list[float]]:
    """Latencies of ``n_bars`` bars fed by ``feed`` through a real daemon on a fresh world."""
    world: World = write_world(root / "world")
    home = root / "home"
    prepare_home(home)
    if default_launcher:  # the committed dagster.yaml without its WarmRunLauncher
        config = yaml.safe_load((home / "dagster.yaml").read_text())
        config.pop("run_launcher")
        (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    env = live_env(home, world.env, interval_s=INTERVAL_S)
    env["ALLOCATOR_BAR_JOB"] = job_name
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    out: dict[str, list[float]] = {
        "latency": [],
        "sensor_wait": [],
        "after_sensor": [],
        "warm": [],
        "by_gateway": [],
    }
    phase = random.Random(20260101)
    try:
        with dg.DagsterInstance.get() as instance:
            rebalance = build_definitions(world.resources()).resolve_job_def("rebalance_job")
            assert rebalance.execute_in_process(instance=instance).success
            with feed(world) as submit, daemon(env, root / "daemon.log"):
                for bar in _bars(n_bars, year):
                    time.sleep(phase.uniform(0.0, DAEMON_LOOP_S))
                    written = submit(bar)
                    run = wait_for_bar(instance, bar, timeout_s=300, job_name=job_name)
                    record = instance.get_run_records(dg.RunsFilter(run_ids=[run.run_id]))[0]
                    ledger = world.ledger()
                    try:
                        acked = max(_utc(o["updated_at"]) for o in ledger.orders(parse_bar(bar)))
                    finally:
                        ledger.close()
                    created = _utc(record.create_timestamp)
                    out["latency"].append(acked - written)
                    out["sensor_wait"].append(created - written)
                    out["after_sensor"].append(acked - created)
                    out["warm"].append(float(run.tags.get(START_TAG) == "warm"))
                    out["by_gateway"].append(float(run.tags.get(LAUNCHED_BY) == "gateway"))
                    print(
                        f"{job_name} {bar}: wait {created - written:.2f} s"
                        f" + after {acked - created:.2f} s",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out


def main() -> None:
    keep = os.environ.get("BENCH_DIR")  # keep the daemon logs there (debugging)
    with tempfile.TemporaryDirectory(prefix="bench_bar_") as scratch:
        tmp = keep or scratch
        fast = measure("bar_job", Path(tmp) / "inprocess")
        slow = measure("bar_job_multiprocess", Path(tmp) / "multiprocess") if BASELINE else fast
        cold = measure("bar_job", Path(tmp) / "default_launcher", default_launcher=True)
    p50 = statistics.median(fast["latency"])
    base = statistics.median(slow["latency"])
    after = statistics.median(fast["after_sensor"])
    after_base = statistics.median(slow["after_sensor"])
    bars = len(fast["latency"])
    emit(
        "bar_latency_p50_s",
        round(p50, 3),
        "s",
        round(base, 3),
        round(base / p50, 3),
        bars=bars,
        p90_s=round(statistics.quantiles(fast["latency"], n=10)[-1], 3) if bars > 1 else None,
        warm_starts=int(sum(fast["warm"])),
        goal_s=3.0,
    )
    emit(
        "bar_latency_vs_multiprocess",
        round(base / p50, 3),
        "x",
        round(base, 3),
        round(base / p50, 3),
        goal=2.0,
    )
    emit(
        "bar_latency_after_sensor_p50_s",
        round(after, 3),
        "s",
        round(after_base, 3),
        round(after_base / after, 3),
        bars=bars,
    )
    emit(
        "bar_sensor_wait_p50_s",
        round(statistics.median(fast["sensor_wait"]), 3),
        "s",
        round(statistics.median(slow["sensor_wait"]), 3),
        1.0,
        daemon_loop_s=DAEMON_LOOP_S,
        minimum_interval_seconds=INTERVAL_S,
        inbox_poll_s=load_settings().sensor_poll_s,  # what the daemon's sensor ran with
        hold_s=load_settings().sensor_hold_s,
    )
    emit("bar_sensor_interval_s", DAEMON_LOOP_S, "s", DAEMON_LOOP_S, 1.0)
    cold_p50 = statistics.median(cold["latency"])
    emit(
        "bar_latency_default_launcher_p50_s",
        round(cold_p50, 3),
        "s",
        round(p50, 3),
        round(cold_p50 / p50, 3),
        bars=len(cold["latency"]),
        note="bar_job with Dagster's DefaultRunLauncher (a new process per run); baseline = "
        "bar_latency_p50_s with the WarmRunLauncher",
    )


if __name__ == "__main__":
    main()
