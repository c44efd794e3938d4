"""``allocator sweep RETURNS --grid GRID.toml --out DIR``: every configuration of a grid.

Runs on a local Dask cluster (one worker process per core) by default, on an existing one with
``--scheduler tcp://host:port``, or in this process with ``--in-process``. Writes
``sweep.parquet`` and ``sweep.html`` (and ``walk_forward.csv`` with ``--walk-forward``); the
journal of finished cells under ``DIR`` makes a re-run after an interruption do only the rest.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from pathlib import Path
from typing import Any

from allocator.errors import ConfigError

__all__ = ["register", "run"]


def _base_mapping(config: str | None) -> dict[str, Any]:
    path = config or os.environ.get("ALLOCATOR_CONFIG", "").strip()
    if not path:
        return {}
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(path, f"cannot read the config file: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, f"not valid TOML: {exc}") from exc


def _client(args: argparse.Namespace) -> tuple[Any, Any]:
    """Return ``(client, cluster)``: ``(None, None)`` in process."""
    if args.in_process:
        return None, None
    from dask.distributed import Client, LocalCluster

    if args.scheduler:
        return Client(args.scheduler), None  # type: ignore[no-untyped-call]
    workers = args.workers or os.cpu_count() or 1
    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    return Client(cluster), cluster  # type: ignore[no-untyped-call]


def run(args: argparse.Namespace) -> int:
    """Run the sweep the parsed arguments describe; print its heatmap and walk-forward."""
    import pandas as pd

    from allocator.book import book_of
    from allocator.config import AllocatorConfig
    from allocator.data import build_panel, load_returns
    from allocator.replay import decide, statistics
    from allocator.research.grid import load_grid
    from allocator.research.page import sweep_page, text_heatmap
    from allocator.research.sweep import run_sweep, write_table
    from allocator.research.walk_forward import parse_walk_forward, walk_forward

    for name, value, lo, hi in (
        ("--cash-rate", args.cash_rate, -1.0, 1.0),
        ("--cost", args.cost, 0.0, 1.0),
    ):
        if not lo <= value <= hi:
            raise ConfigError(name, f"must lie in [{lo:g}, {hi:g}], got {value!r}")
    windows = parse_walk_forward(args.walk_forward) if args.walk_forward else None
    base_map = _base_mapping(args.config)
    grid = load_grid(args.grid, base_map)
    base = AllocatorConfig.from_mapping(base_map)
    panel = build_panel(load_returns(args.returns), base.calendar.name)
    out = Path(args.out)
    client, cluster = _client(args)
    try:
        result = run_sweep(
            panel,
            grid,
            out,
            client=client,
            cash_rate=args.cash_rate,
            cost=args.cost,
            progress=not args.no_progress,
        )
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    table = result.table
    write_table(table, out / "sweep.parquet")
    skipped = f", {len(grid.skipped)} combinations refused by the config" if grid.skipped else ""
    print(
        f"sweep: {len(table)} configurations ({result.ran} replayed now{skipped}) in "
        f"{result.seconds:.1f} s; files in {out}"
    )
    swept = [k for k in grid.keys if table[k].nunique() >= 2]
    if len(swept) >= 2:
        print(text_heatmap(table, swept[1], swept[0]))
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print("best 5 by Sharpe:")
        best = table.sort_values("sharpe", ascending=False, na_position="last").head(5)
        print(best.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    walk = None
    if windows is not None:
        train, test = windows
        default = decide(panel, base, statistics(panel, base))
        ann = base.sizing.annualization
        default_book = book_of(
            default, panel.values, cash_rate=args.cash_rate, cost=args.cost, annualization=ann
        )
        walk = walk_forward(
            result,
            grid,
            default_book.returns,
            default_book.dates,
            train=train,
            test=test,
            objective=args.objective,
            annualization=ann,
        )
        walk.windows.to_csv(out / "walk_forward.csv", index=False)
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            print(f"walk-forward train={train} test={test} objective={args.objective}:")
            print(walk.windows.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
            print(walk.summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(walk.verdict)
    (out / "sweep.html").write_text(sweep_page(table, grid, walk), encoding="utf-8")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "sweep",
        help="replay every configuration of a grid (Dask), optionally walk-forward",
        description="Replay RETURNS under every configuration of GRID (a TOML list of values "
        "per section.key) and write sweep.parquet and sweep.html into DIR.",
    )
    p.add_argument("returns", metavar="RETURNS", help="CSV or Parquet: date,strategy,return")
    p.add_argument("--grid", required=True, metavar="GRID.toml", help="values per config key")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--config", metavar="FILE", help="base TOML config (default ALLOCATOR_CONFIG)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="an existing Dask cluster")
    where.add_argument(
        "--in-process", action="store_true", help="run in this process, without Dask"
    )
    p.add_argument(
        "--workers", type=int, default=0, metavar="N", help="local cluster workers (default: cores)"
    )
    p.add_argument("--cash-rate", type=float, default=0.0, metavar="RATE", help="as for replay")
    p.add_argument("--cost", type=float, default=0.0, metavar="C", help="as for replay")
    p.add_argument(
        "--walk-forward",
        metavar="train=N,test=M",
        help="pick the best configuration on each training window, test it on the next",
    )
    p.add_argument(
        "--objective",
        default="sharpe",
        choices=("sharpe", "cagr", "max_drawdown", "vol"),
        help="what the walk-forward maximises (vol: minimises)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)
