"""Benchmarks of ``allocator sweep`` (issue 14). Prints one JSON object per line:
``name, value, unit, baseline, ratio`` with the baseline measured in the same run.

* ``sweep_1000_s``: 1,000 configurations (10 correlation thresholds × 10 persistences × 10
  breaker ``half_at`` levels) over 6 strategies × 2,520 seeded sessions, on a local Dask
  cluster of one worker per core (already started: its start-up is given apart), against a
  loop of standalone replays (``replay`` + ``book_of`` + ``summarize`` per configuration, the
  same outputs) timed on a sample of cells and extrapolated to 1,000: ``ratio`` = loop ÷ sweep.
* ``sweep_dask_scaling``: the same sweep on a 1-worker ÷ a 2-worker local cluster.
* ``sweep_worker_peak_mb``: the largest peak resident memory of a worker after the sweep.

Usage: python benchmarks/bench_sweep.py [--quick]   (--quick: 100 configurations)
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_rules import xnys_panel

from allocator.book import book_of, summarize
from allocator.replay import replay
from allocator.research.grid import parse_grid
from allocator.research.sweep import run_sweep


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


def grid_of(k: int):  # type: ignore[no-untyped-def]
    return parse_grid(
        {
            "correlation": {
                "threshold": [round(0.40 + 0.05 * i, 2) for i in range(k)],
                "persistence": [5 + 5 * i for i in range(k)],
            },
            "breaker": {"half_at": [round(-0.05 - 0.02 * i, 2) for i in range(k)]},
        }
    )


def _warm() -> None:
    small = xnys_panel(6, "2010-01-04", periods=300)
    result = replay(small, grid_of(1).config(()))
    summarize(book_of(result, small.values), result.events)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_sweep(panel, grid, workers: int):  # type: ignore[no-untyped-def]
    """Sweep on a started local cluster of ``workers``; returns (seconds, startup, peak MB)."""
    from dask.distributed import Client, LocalCluster

    t0 = time.perf_counter()
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster)
    startup = time.perf_counter() - t0
    try:
        client.run(_warm)  # every worker loads the compiled kernels before the clock starts
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            result = run_sweep(panel, grid, Path(tmp), client=client, progress=False)
            seconds = time.perf_counter() - t0
        peaks = client.run(_peak_mb)
        return seconds, startup, max(peaks.values()), result
    finally:
        client.close()
        cluster.close()


def main(quick: bool) -> None:
    k = 5 if quick else 10
    grid = grid_of(k)
    n_cells = len(grid.cells)
    panel = xnys_panel(6, "2010-01-04", periods=2520)
    cores = os.cpu_count() or 1
    # The loop of standalone replays, on a sample of cells (warm: compiled once before).
    sample = [grid.cells[i] for i in np.linspace(0, n_cells - 1, 25).astype(int)]
    cfg0 = grid.config(sample[0])
    replay(panel, cfg0)
    t0 = time.perf_counter()
    for cell in sample:
        config = grid.config(cell)
        result = replay(panel, config)
        summarize(book_of(result, panel.values), result.events)
    per_replay = (time.perf_counter() - t0) / len(sample)
    loop = per_replay * n_cells
    seconds, startup, peak, result = timed_sweep(panel, grid, cores)
    assert len(result.table) == n_cells
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        local = run_sweep(panel, grid, Path(tmp), progress=False)
        in_process = time.perf_counter() - t0
    assert local.table.equals(result.table)  # the Dask path gives the in-process table
    emit(
        f"sweep_{n_cells}_s",
        seconds,
        "s (sweep on a started local Dask cluster; baseline: loop of standalone replays, "
        f"timed on {len(sample)} cells and extrapolated to {n_cells})",
        loop,
        loop / seconds,
        workers=cores,
        cluster_startup_s=round(startup, 2),
        in_process_s=round(in_process, 3),
        standalone_replay_s=round(per_replay, 5),
        strategies=6,
        sessions=2520,
        goal="<= 120 s and >= 10x",
        load_average_1m=round(os.getloadavg()[0], 2),
    )
    one, *_ = timed_sweep(panel, grid, 1)
    two, *_ = timed_sweep(panel, grid, 2)
    emit(
        "sweep_dask_scaling",
        one / two,
        "x (1-worker time / 2-worker time, same sweep, started clusters)",
        one,
        one / two,
        one_worker_s=round(one, 3),
        two_workers_s=round(two, 3),
        cores=cores,
        goal=">= 1.7",
        load_average_1m=round(os.getloadavg()[0], 2),
    )
    emit(
        "sweep_worker_peak_mb",
        peak,
        "MB (largest worker peak RSS after the sweep; baseline: the driver's peak)",
        _peak_mb(),
        _peak_mb() / peak,
        workers=cores,
    )


if __name__ == "__main__":
    main("--quick" in sys.argv)
