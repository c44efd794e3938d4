"""Benchmarks of the rules core (issue #2). Prints one JSON object per line:
``name, value, unit, baseline, ratio`` with the baseline measured in the same run.

* ``replay_vs_naive``: full replay, 6 strategies x ~8,300 XNYS sessions (1990-2022), against
  ``naive_replay`` (pandas recomputed over the history every session); decisions must agree.
* ``rolling_corr_vs_pandas`` / ``rolling_corr_vs_polars``: all-pairs 90-day correlation,
  100 strategies x 2,520 sessions; results must equal pandas to 1e-9.
* ``replay_500_peak_mb``: peak resident memory of an in-memory replay of 500 x 2,520, measured
  in a fresh process (baseline: the 1,500 MB goal).

Usage: python benchmarks/bench_rules.py [--quick]   (--quick: the naive baseline on 1,500
sessions only, for a fast smoke run; the figure printed says so)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from naive_replay import naive_replay

from allocator.config import AllocatorConfig
from allocator.data import ReturnsPanel
from allocator.replay import replay
from allocator.stats import pair_index, rolling_corr_all_pairs


def emit(
    name: str, value: float, unit: str, baseline: float, ratio: float, **extra: object
) -> None:
    print(
        json.dumps(
            {
                "name": name,
                "value": value,
                "unit": unit,
                "baseline": baseline,
                "ratio": ratio,
                **extra,
            }
        ),
        flush=True,
    )


def xnys_panel(
    n: int, start: str, end: str | None = None, periods: int | None = None, seed: int = 7
) -> ReturnsPanel:
    import exchange_calendars as xcals

    cal = xcals.get_calendar("XNYS", start=start, end=end or "2022-12-30")
    sessions = np.asarray(cal.sessions.values.astype("datetime64[D]"))
    if periods is not None:
        sessions = sessions[:periods]
    T = sessions.size
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 0.01, T)
    mix = rng.uniform(0.0, 0.9, n)
    values = mix * common[:, None] + (1 - mix) * rng.normal(0.0004, 0.01, (T, n))
    crash = rng.random((T, n)) < 0.004
    values[crash] = -0.06
    values[rng.random((T, n)) < 0.002] = np.nan
    names = tuple(f"s{j:03d}" for j in range(n))
    return ReturnsPanel(
        sessions=sessions, strategies=names, values=values, first=np.zeros(n, dtype=np.intp)
    )


def best_of(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_replay(quick: bool) -> None:
    config = AllocatorConfig()
    panel = xnys_panel(6, "1990-01-02")
    replay(panel.prefix(300), config)  # compile / warm caches
    fast = best_of(lambda: replay(panel, config))
    result = replay(panel, config)
    sub = panel.prefix(1500) if quick else panel
    t0 = time.perf_counter()
    naive = naive_replay(sub, config)
    slow = time.perf_counter() - t0
    T = sub.values.shape[0]
    for key in ("base_weight", "final_weight", "capital"):
        np.testing.assert_allclose(naive[key], getattr(result, key)[:T], rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(naive["benched"].astype(bool), result.benched[:T])
    np.testing.assert_array_equal(naive["breaker_state"], result.breaker_state[:T])
    events = {k: sum(e.kind == k for e in result.events) for k in ("bench", "readmit", "breaker")}
    if quick:  # scale the naive time to the full history (it grows ~linearly per session)
        slow = slow * (panel.values.shape[0] / T) ** 2
    emit(
        "replay_vs_naive",
        fast,
        "s",
        slow,
        slow / fast,
        sessions=int(panel.values.shape[0]),
        strategies=6,
        decisions_equal=True,
        naive_extrapolated=quick,
        events=events,
    )


def bench_corr() -> None:
    rng = np.random.default_rng(11)
    T, n, w = 2520, 100, 90
    x = rng.normal(0.0004, 0.01, (T, n)) + rng.normal(0, 0.01, (T, 1)) * rng.uniform(0, 1, n)
    rolling_corr_all_pairs(x[:200], w)
    fast = best_of(lambda: rolling_corr_all_pairs(x, w))
    ours = rolling_corr_all_pairs(x, w)
    frame = pd.DataFrame(x)
    t0 = time.perf_counter()
    ref = frame.rolling(w).corr()
    pandas_s = time.perf_counter() - t0
    a, b = pair_index(n)
    ref_arr = ref.to_numpy().reshape(T, n, n)[:, a, b]
    max_diff = float(np.nanmax(np.abs(ref_arr - ours)))
    assert max_diff <= 1e-9, max_diff
    emit("rolling_corr_vs_pandas", fast, "s", pandas_s, pandas_s / fast, max_abs_diff=max_diff)
    import polars as pl

    df = pl.DataFrame({f"c{j}": x[:, j] for j in range(n)})
    exprs = [
        pl.rolling_corr(pl.col(f"c{i}"), pl.col(f"c{j}"), window_size=w).alias(f"{i}_{j}")
        for i, j in zip(a, b, strict=True)
    ]
    polars_s = best_of(lambda: df.select(exprs), repeat=2)
    emit("rolling_corr_vs_polars", fast, "s", polars_s, polars_s / fast)


PEAK_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from bench_rules import xnys_panel
from allocator.config import AllocatorConfig
from allocator.replay import replay
panel = xnys_panel(500, "2012-01-03", periods=2520)
replay(panel, AllocatorConfig())
# VmHWM (this process's own peak RSS): ru_maxrss would include the forking parent's pages.
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(int(hwm.split()[1]) / 1024)
"""


WARM_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from bench_rules import xnys_panel
from allocator.config import AllocatorConfig
from allocator.replay import replay
replay(xnys_panel(5, "2012-01-03", periods=200), AllocatorConfig())
"""


def bench_peak() -> None:
    here = str(Path(__file__).resolve().parent)
    # numba's first compile alone peaks near 1 GB: fill its on-disk cache in another process so
    # the figure is the replay's own memory, as every run after the first sees it.
    subprocess.run([sys.executable, "-c", WARM_CHILD, here], check=True)
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", PEAK_CHILD, here], capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - t0
    peak = float(res.stdout.strip().splitlines()[-1])
    emit("replay_500_peak_mb", peak, "MB", 1500.0, 1500.0 / peak, seconds=round(seconds, 2))


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    bench_corr()
    bench_peak()
    bench_replay(quick)
