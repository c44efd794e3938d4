"""``allocator sweep``: every configuration of a grid replayed by the engine, shared work once.

Every cell (one configuration of :class:`~allocator.research.grid.Grid`) goes through
:func:`allocator.replay.decide` — the engine's own kernels — over the statistics of
:func:`allocator.replay.statistics`. Those depend on the windows only
(:func:`stats_key`), so they are computed once per window set and shared by every cell with
those windows: a sweep over thresholds, persistence or breaker levels computes the rolling
statistics once. A cell's decisions are therefore exactly those of ``allocator replay`` with
that configuration (``decide(p, c, statistics(p, c)) == replay(p, c)``, tested).

Each cell gives the metrics of ``summary.json`` (:mod:`allocator.book`) and its daily book
returns (for the walk-forward). Cells run in batches, in process or on a Dask cluster (a
``distributed.Client``; the statistics go to each worker once, as a shared future); the driver
journals every finished batch into ``DIR/.sweep-cells/`` (one Parquet file per batch, written
to a temporary name and renamed), so an interrupted sweep re-run with the same arguments only
runs the cells that are missing. ``DIR/.sweep-meta.json`` records the grid, the returns'
digest and the book settings; a re-run with other ones is refused rather than mixed in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from allocator.arrays import FloatArray
from allocator.book import SUMMARY_KEYS, book_of, summarize
from allocator.config import AllocatorConfig
from allocator.data import ReturnsPanel
from allocator.errors import ConfigError
from allocator.replay import StatsBlock, decide, statistics
from allocator.research.grid import Cell, Grid

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SweepResult",
    "cell_id",
    "evaluate_batch",
    "run_sweep",
    "stats_key",
]

_CELLS = ".sweep-cells"
_META = ".sweep-meta.json"


def stats_key(config: AllocatorConfig) -> tuple[int, int, int, int]:
    """Return what the shared statistics depend on: the three windows and annualisation."""
    return (
        config.sizing.vol_window,
        config.breaker.sharpe_window,
        config.correlation.window,
        config.sizing.annualization,
    )


def cell_id(cell: Cell) -> str:
    """Return a stable identifier of a cell (a digest of its keys and values)."""
    text = json.dumps([[k, v] for k, v in cell], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _panel_digest(panel: ReturnsPanel) -> str:
    h = hashlib.sha256()
    h.update("\n".join(panel.strategies).encode())
    h.update(np.ascontiguousarray(panel.sessions.astype("datetime64[D]")).tobytes())
    h.update(np.ascontiguousarray(panel.values).tobytes())
    return h.hexdigest()


def _with_values(base: AllocatorConfig, values: Cell) -> AllocatorConfig:
    """Return ``base`` with the cell's (coerced) values: each section rebuilt and re-checked."""
    by_section: dict[str, dict[str, Any]] = {}
    for key, value in values:
        section, _, name = key.partition(".")
        by_section.setdefault(section, {})[name] = value
    sections = {
        name: dataclasses.replace(getattr(base, name), **changes)
        for name, changes in by_section.items()
    }
    return dataclasses.replace(base, **sections)


def evaluate_batch(
    panel: ReturnsPanel,
    stats: StatsBlock,
    base: dict[str, dict[str, Any]],
    cells: Sequence[tuple[str, Cell]],
    cash_rate: float,
    cost: float,
) -> list[dict[str, Any]]:
    """Replay ``cells`` over shared ``stats``; one row per cell (id, metrics, book returns).

    Runs in the driver or in a Dask worker. ``cells`` are ``(cell_id, values)`` with the
    values as the configuration holds them (coerced by :meth:`Grid.config`); every cell must
    have the windows ``stats`` was computed with.

    Returns
    -------
    list of dict
        ``cell`` (:func:`cell_id`), the :data:`~allocator.book.SUMMARY_KEYS` metrics and
        ``book`` (the daily book returns, float64 bytes).
    """
    base_config = AllocatorConfig.from_mapping(base)
    rows = []
    for cid, values in cells:
        config = _with_values(base_config, values)
        result = decide(panel, config, stats, events=False)
        ann = config.sizing.annualization
        book = book_of(result, panel.values, cash_rate=cash_rate, cost=cost, annualization=ann)
        summary = summarize(book, result.event_counts or {}, ann)
        rows.append({"cell": cid, **summary, "book": book.returns.tobytes()})
    return rows


def _group_stats(panel: ReturnsPanel, config_map: dict[str, dict[str, Any]]) -> StatsBlock:
    return statistics(panel, AllocatorConfig.from_mapping(config_map))


@dataclass(frozen=True, slots=True)
class SweepResult:
    """The finished sweep.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per cell in grid order: a column per grid key (``section.key``), then the
        metrics of ``summary.json`` under their names.
    books : dict of str to numpy.ndarray
        Each cell's daily book returns (sessions 1..T-1), by :func:`cell_id`.
    ids : list of str
        The cells' ids in the table's row order.
    ran : int
        Cells replayed by this call (the others came from the journal).
    seconds : float
        Wall time of this call.
    """

    table: pd.DataFrame
    books: dict[str, FloatArray]
    ids: list[str]
    ran: int
    seconds: float


class _Progress:
    """A one-line progress bar on stderr: cells done / total, rate and time left."""

    def __init__(self, total: int, initial: int, *, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, initial, enabled
        self.first, self.started = initial, time.perf_counter()
        self._draw()

    def update(self, k: int) -> None:
        self.done += k
        self._draw()

    def _draw(self) -> None:
        if not self.enabled:
            return
        import sys

        width = 30
        filled = width * self.done // max(self.total, 1)
        spent = time.perf_counter() - self.started
        rate = (self.done - self.first) / spent if spent > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta = f"{left:5.0f} s left" if math.isfinite(left) else "          "
        sys.stderr.write(
            f"\rsweep [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} cells "
            f"{rate:7.1f}/s {eta}"
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            import sys

            sys.stderr.write("\n")
            sys.stderr.flush()


def _read_journal(folder: Path) -> dict[str, dict[str, Any]]:
    import pyarrow.parquet as pq

    done: dict[str, dict[str, Any]] = {}
    if not folder.is_dir():
        return done
    for path in sorted(folder.glob("batch-*.parquet")):
        for row in pq.read_table(path).to_pylist():
            done[row["cell"]] = row
    return done


def _write_batch(folder: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = hashlib.sha256("".join(r["cell"] for r in rows).encode()).hexdigest()[:16]
    fd, tmp = tempfile.mkstemp(prefix=".batch-", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        pq.write_table(pa.Table.from_pylist(rows), tmp)
        os.replace(tmp, folder / f"batch-{name}.parquet")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _check_meta(out: Path, meta: dict[str, Any]) -> None:
    path = out / _META
    if path.exists():
        before = json.loads(path.read_text(encoding="utf-8"))
        if before != meta:
            differs = sorted(k for k in meta if before.get(k) != meta[k])
            raise ConfigError(
                "--out",
                f"{out} holds a sweep with another {', '.join(differs)}: give a new --out "
                "folder or delete it",
            )
    else:
        path.write_text(json.dumps(meta, sort_keys=True), encoding="utf-8")


def _batches(cells: list[tuple[str, Cell]], size: int) -> Iterator[list[tuple[str, Cell]]]:
    for i in range(0, len(cells), size):
        yield cells[i : i + size]


def _config_value(config: AllocatorConfig, key: str) -> Any:
    section, _, name = key.partition(".")
    return getattr(getattr(config, section), name)


def _table_value(config: AllocatorConfig, key: str) -> Any:
    value = _config_value(config, key)
    return float(value) if isinstance(value, Decimal) else value


def run_sweep(
    panel: ReturnsPanel,
    grid: Grid,
    out: Path,
    *,
    client: Any | None = None,
    cash_rate: float = 0.0,
    cost: float = 0.0,
    batch_size: int | None = None,
    progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> SweepResult:
    """Replay every cell of ``grid`` over ``panel``; journal into ``out``; return the table.

    Parameters
    ----------
    panel : ReturnsPanel
        The returns on the session clock (of the base configuration's calendar;
        ``calendar.name`` cannot be swept: it changes the sessions themselves).
    grid : Grid
        The checked grid.
    out : pathlib.Path
        The sweep's folder (created): its journal lives there.
    client : distributed.Client, optional
        Run the batches on this Dask cluster; ``None`` runs them in this process.
    cash_rate, cost : float
        The book's settings (:func:`allocator.book.book_returns`).
    batch_size : int, optional
        Cells per task (default: about four tasks per worker per window set, at most 100).
    progress : bool, default True
        Show a progress bar on stderr.
    on_batch : callable, optional
        Called with the number of batches journaled so far, after each one (tests use it to
        interrupt a sweep).

    Returns
    -------
    SweepResult

    Raises
    ------
    ConfigError
        ``calendar.name`` in the grid, or ``out`` holds a sweep of another grid, returns or
        book settings.
    """
    import pandas as pd

    started = time.perf_counter()
    if "calendar.name" in grid.keys:
        raise ConfigError("calendar.name", "cannot be swept: it changes the sessions themselves")
    out.mkdir(parents=True, exist_ok=True)
    journal = out / _CELLS
    journal.mkdir(exist_ok=True)
    _check_meta(
        out,
        {
            "grid": grid.to_json(),
            "returns": _panel_digest(panel),
            "book": json.dumps({"cash_rate": cash_rate, "cost": cost}),
        },
    )
    done = _read_journal(journal)
    configs = [grid.config(cell) for cell in grid.cells]
    ids = [cell_id(cell) for cell in grid.cells]
    # What a worker replays: the id and the values as the configuration holds them.
    tasks = [
        (cid, tuple((key, _config_value(config, key)) for key in grid.keys))
        for cid, config in zip(ids, configs, strict=True)
    ]
    groups: dict[tuple[int, int, int, int], list[int]] = {}
    for i, config in enumerate(configs):
        if ids[i] not in done:
            groups.setdefault(stats_key(config), []).append(i)
    todo = sum(len(v) for v in groups.values())
    workers = 1
    if client is not None:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
    size = batch_size or max(1, min(100, math.ceil(todo / max(1, 4 * workers))))
    bar = _Progress(len(grid.cells), len(grid.cells) - todo, enabled=progress)
    written = 0

    def journal_rows(rows: list[dict[str, Any]]) -> None:
        nonlocal written
        _write_batch(journal, rows)
        for row in rows:
            done[row["cell"]] = row
        written += 1
        bar.update(len(rows))
        if on_batch is not None:
            on_batch(written)

    try:
        if client is None:
            for members in groups.values():
                stats = statistics(panel, configs[members[0]])
                for batch in _batches([tasks[i] for i in members], size):
                    journal_rows(evaluate_batch(panel, stats, grid.base, batch, cash_rate, cost))
        else:
            from dask.distributed import as_completed

            panel_f = client.scatter(panel, broadcast=True)
            futures = []
            for members in groups.values():
                first = grid.cells[members[0]]
                from allocator.research.grid import _merge

                stats_f = client.submit(
                    _group_stats, panel_f, _merge(grid.base, dict(first)), pure=False
                )
                for batch in _batches([tasks[i] for i in members], size):
                    futures.append(
                        client.submit(
                            evaluate_batch,
                            panel_f,
                            stats_f,
                            grid.base,
                            batch,
                            cash_rate,
                            cost,
                            pure=False,
                        )
                    )
            try:
                for future in as_completed(futures):  # type: ignore[no-untyped-call]
                    journal_rows(future.result())
            finally:
                client.cancel(futures)
    finally:
        bar.close()
    records = []
    books: dict[str, FloatArray] = {}
    for config, cid in zip(configs, ids, strict=True):
        row = done[cid]
        records.append(
            {
                **{key: _table_value(config, key) for key in grid.keys},
                **{m: row[m] for m in SUMMARY_KEYS},
            }
        )
        books[cid] = np.frombuffer(row["book"], dtype=np.float64)
    table = pd.DataFrame.from_records(records, columns=[*grid.keys, *SUMMARY_KEYS])
    for m in ("benches", "readmits", "breaker_trips"):
        table[m] = table[m].astype("int64")
    return SweepResult(
        table=table, books=books, ids=ids, ran=todo, seconds=time.perf_counter() - started
    )


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Write ``sweep.parquet`` atomically (a temporary name, then a rename)."""
    fd, tmp = tempfile.mkstemp(prefix=".sweep-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        table.to_parquet(tmp, index=False)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the table is an ordinary output file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
