"""Intent ingest through the strategy gateway vs ``allocator intents submit`` (``make bench``).

``gateway_ingest_intents_per_s`` and ``gateway_ingest_p99_ms``: 50 strategies × 200 intents
per bar, each strategy's bot a concurrent client (its own thread and keep-alive connection,
:class:`allocator.client.GatewayClient`) posting its bar's 200 intents in one
``POST /v1/intents``, for ``BENCH_GATEWAY_BARS`` bars (default 5) after one warm-up bar. The
gateway is ``allocator serve --no-launch`` in a process of its own (the bots' threads do not
share its GIL) on a fresh SQLite ledger; every accepted intent is committed before its answer.
Intents per second = intents stored ÷ wall time of the bars (the burst: all 50 bots of a bar
post at the same instant, the gateway's worst case and the throughput figure).

``gateway_ingest_p99_ms`` is the p99 per request as **open-loop** latency at the goal rate, as
wrk2 measures it: ``POST``s of 200 intents scheduled at a constant ``BENCH_GATEWAY_RATE``
(default 5,000) intents per second, i.e. one request every 40 ms, round-robin over the 50 bots
(each its own thread and connection), for ``BENCH_GATEWAY_OPEN_S`` seconds (default 10); a
request's latency counts from its *scheduled* send time, not from when it was actually sent,
so a server that falls behind is charged for the queue it causes (no coordinated omission).
The burst's p99 (every request of a bar queued behind the others: ≈ 10,000 intents ÷ the rate)
is reported beside it as ``burst_p99_ms``, and one request at a time (nothing queued: the
server's own cost per ``POST`` of 200, client included) as ``serial_p50_ms``.

Baseline, in the same run: today's only way in, ``allocator intents submit FILE`` (a CSV of
the same 200 intents per strategy), run for ``BENCH_BASELINE_FILES`` (default 10) strategies
one after the other into a fresh ledger of the same kind: intents per second and the p99 of one
command's wall time. ``ratio`` = gateway ÷ baseline for the rate, baseline ÷ gateway for p99.

Goal (issue 12): >= 5,000 intents/s and p99 <= 100 ms on the project's 2-core machine.

Usage: python benchmarks/bench_gateway.py
"""

from __future__ import annotations

import csv
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from allocator.client import GatewayClient, IntentIn  # noqa: E402
from resources.ledger import Ledger  # noqa: E402

STRATEGIES = 50
PER_BAR = 200
BARS = int(os.environ.get("BENCH_GATEWAY_BARS", "5"))
BASELINE_FILES = int(os.environ.get("BENCH_BASELINE_FILES", "10"))
RATE = float(os.environ.get("BENCH_GATEWAY_RATE", "5000"))  # intents/s of the open loop
OPEN_S = float(os.environ.get("BENCH_GATEWAY_OPEN_S", "10"))
SYMBOLS = ("SPY", "QQQ", "TLT", "IWM", "GLD")
ALLOCATOR = Path(sys.executable).parent / "allocator"


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


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def _bar(i: int) -> str:
    return f"2031-{1 + i // 28:02d}-{1 + i % 28:02d}"


def _intents(strategy: str, bar: str) -> list[IntentIn]:
    return [
        IntentIn(f"{strategy}-{bar}-{k}", SYMBOLS[k % len(SYMBOLS)], "etf", str(1 + k % 7), bar)
        for k in range(PER_BAR)
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gateway(root: Path) -> tuple[float, float, float, int]:
    url = f"sqlite:///{root / 'gateway.sqlite'}"
    ledger = Ledger(url)
    names = [f"s{i:02d}" for i in range(STRATEGIES)]
    tokens = {n: ledger.add_strategy(n) for n in names}
    ledger.close()
    port = _free_port()
    env = dict(os.environ, ALLOCATOR_LEDGER_URL=url, PYTHONWARNINGS="ignore")
    env.pop("DAGSTER_HOME", None)
    server = subprocess.Popen(
        [str(ALLOCATOR), "serve", "--no-launch", "--port", str(port)],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        clients = {n: GatewayClient(base, tokens[n], timeout_s=60, retries=0) for n in names}
        deadline = time.monotonic() + 60
        while True:
            try:
                clients[names[0]].me()
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the gateway did not start") from None
                time.sleep(0.2)
        latencies: list[float] = []
        lock = threading.Lock()
        stored = 0

        def one_bar(bar: str, record: bool) -> None:
            nonlocal stored
            start = threading.Barrier(STRATEGIES)

            def bot(name: str) -> None:
                nonlocal stored
                batch = _intents(name, bar)
                start.wait()
                t0 = time.perf_counter()
                answers = clients[name].submit_intents(batch)
                elapsed = time.perf_counter() - t0
                ok = sum(a.accepted for a in answers)
                if ok != len(batch):
                    raise RuntimeError(f"{name}: {len(batch) - ok} intents refused")
                if record:
                    with lock:
                        latencies.append(elapsed)
                        stored += ok

            threads = [threading.Thread(target=bot, args=(n,)) for n in names]
            for th in threads:
                th.start()
            for th in threads:
                th.join()

        one_bar(_bar(0), record=False)  # warm-up: connections, the server's first queries
        t0 = time.perf_counter()
        for i in range(1, BARS + 1):
            one_bar(_bar(i), record=True)
        wall = time.perf_counter() - t0
        open_loop = _open_loop(clients, names, first_bar=BARS + 1)
        serial = []  # the server's own cost: one request at a time, nothing queued
        last_bar = _bar(BARS + 2 + open_loop["open_requests"] // len(names))
        for name in names:
            t1 = time.perf_counter()
            clients[name].submit_intents(_intents(name, last_bar))
            serial.append(time.perf_counter() - t1)
        for c in clients.values():
            c.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    if len(latencies) != STRATEGIES * BARS:
        raise RuntimeError(f"{len(latencies)} of {STRATEGIES * BARS} requests answered")
    return {
        "rate": stored / wall,
        "burst_p99_ms": _p99(latencies) * 1000,
        "burst_p50_ms": statistics.median(latencies) * 1000,
        "stored": stored,
        "serial_p50_ms": statistics.median(serial) * 1000,
        **open_loop,
    }


def _open_loop(clients: dict[str, GatewayClient], names: list[str], first_bar: int) -> dict:
    """Requests of ``PER_BAR`` intents at a constant ``RATE`` intents/s, round-robin over the
    bots; each latency from the request's scheduled instant (see the module doc)."""
    interval = PER_BAR / RATE  # seconds between two scheduled requests
    count = max(len(names), round(OPEN_S / interval))
    start = time.perf_counter() + 0.5
    latencies: list[float] = [0.0] * count
    errors: list[str] = []

    def bot(index: int) -> None:
        name = names[index]
        for k in range(index, count, len(names)):  # this bot's share of the schedule
            scheduled = start + k * interval
            pause = scheduled - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            batch = _intents(name, _bar(first_bar + k // len(names)))
            answers = clients[name].submit_intents(batch)
            latencies[k] = time.perf_counter() - scheduled
            if not all(a.accepted for a in answers):
                errors.append(f"{name}: intents refused")

    threads = [threading.Thread(target=bot, args=(i,)) for i in range(len(names))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise RuntimeError(errors[0])
    wall = time.perf_counter() - start
    return {
        "open_p99_ms": _p99(latencies) * 1000,
        "open_p50_ms": statistics.median(latencies) * 1000,
        "open_requests": count,
        "open_rate": count * PER_BAR / wall,
    }


def baseline(root: Path) -> tuple[float, float]:
    url = f"sqlite:///{root / 'cli.sqlite'}"
    ledger = Ledger(url)
    names = [f"s{i:02d}" for i in range(BASELINE_FILES)]
    ledger.register_strategies(names)
    ledger.close()
    env = dict(os.environ, ALLOCATOR_LEDGER_URL=url, PYTHONWARNINGS="ignore")
    files = []
    for name in names:
        path = root / f"{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["intent_id", "strategy", "symbol", "asset_class", "qty", "bar"])
            for i in _intents(name, _bar(1)):
                writer.writerow([i.intent_id, name, i.symbol, i.asset_class, i.qty, i.bar])
        files.append(path)
    times = []
    t0 = time.perf_counter()
    for path in files:
        start = time.perf_counter()
        done = subprocess.run(
            [str(ALLOCATOR), "intents", "submit", str(path)],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"allocator intents submit {path}: {done.stderr[-500:]}")
    wall = time.perf_counter() - t0
    return BASELINE_FILES * PER_BAR / wall, _p99(times) * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        got = gateway(root)
        base_rate, base_p99 = baseline(root)
    emit(
        "gateway_ingest_intents_per_s",
        round(got["rate"], 1),
        "intents/s",
        round(base_rate, 1),
        round(got["rate"] / base_rate, 2),
        strategies=STRATEGIES,
        intents_per_bar=STRATEGIES * PER_BAR,
        bars=BARS,
        intents=got["stored"],
        arrival="burst: all 50 bots of a bar post at the same instant",
        goal=">= 5000",
    )
    p99 = got["open_p99_ms"]
    emit(
        "gateway_ingest_p99_ms",
        round(p99, 1),
        "ms (open loop: from each request's scheduled send time)",
        round(base_p99, 1),
        round(base_p99 / p99, 2),
        arrival=f"open loop at {RATE:g} intents/s: one POST of {PER_BAR} every "
        f"{1000 * PER_BAR / RATE:g} ms over the {STRATEGIES} bots (wrk2-style, no "
        "coordinated omission)",
        requests=got["open_requests"],
        achieved_intents_per_s=round(got["open_rate"], 1),
        p50_ms=round(got["open_p50_ms"], 1),
        serial_p50_ms=round(got["serial_p50_ms"], 1),
        burst_p99_ms=round(got["burst_p99_ms"], 1),
        burst_p50_ms=round(got["burst_p50_ms"], 1),
        baseline_is="one `allocator intents submit` of 200 intents, p99 wall time",
        goal="<= 100",
    )


if __name__ == "__main__":
    main()
