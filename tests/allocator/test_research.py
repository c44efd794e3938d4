"""Sweeps: grids checked with the key named, cells equal standalone replays, resumable, Dask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allocator.book import SUMMARY_KEYS, book_of, summarize
from allocator.errors import ConfigError
from allocator.replay import replay
from allocator.research.grid import parse_grid
from allocator.research.sweep import run_sweep
from allocator.research.walk_forward import parse_walk_forward, walk_forward
from tests.allocator.test_book import _busy_panel

BASE = {
    "sizing": {"vol_window": 20, "rebalance_every": 15},
    "correlation": {"window": 25, "threshold": 0.5, "persistence": 4},
    "breaker": {"sharpe_window": 25, "half_at": -0.05, "halt_at": -0.09},
}


@pytest.mark.parametrize(
    ("raw", "key", "words"),
    [
        ({"correlation": {"treshold": [0.5]}}, "correlation.treshold", "unknown key"),
        ({"correlashun.threshold": [0.5]}, "correlashun.threshold", "unknown section"),
        ({"correlation": {"persistence": [3, "ten"]}}, "correlation.persistence", "whole number"),
        ({"correlation": {"threshold": [0.5, 1.5]}}, "correlation.threshold", "(-1, 1)"),
        ({"sizing": {"method": ["erc", "equal"]}}, "sizing.method", "must be one of"),
        ({"breaker": {"half_at": []}}, "breaker.half_at", "empty list"),
        ({"breaker": {"half_at": -0.1}}, "breaker.half_at", "list of values"),
        ({"allocation": {"redistribute_freed_capital": [1]}}, "allocation.", "true or false"),
    ],
)
def test_bad_grids_are_refused_with_the_key_named(raw: dict, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_grid(raw, BASE)
    assert str(info.value).startswith(key), str(info.value)
    assert words in str(info.value)


def test_a_value_wrong_only_with_another_grid_value_skips_those_cells() -> None:
    grid = parse_grid({"breaker": {"half_at": [-0.05, -0.2], "halt_at": [-0.1, -0.3]}}, BASE)
    cells = [dict(c) for c in grid.cells]
    assert {"breaker.half_at": -0.2, "breaker.halt_at": -0.1} not in cells
    assert len(cells) == 3
    assert len(grid.skipped) == 1
    assert "breaker.halt_at" in grid.skipped[0][1]


def test_grid_file_error_names_the_file(tmp_path: Path) -> None:
    from allocator.research.grid import load_grid

    path = tmp_path / "grid.toml"
    path.write_text("[correlation]\nwindow = [0]\n")
    with pytest.raises(ConfigError, match=r"^correlation\.window: .*grid\.toml"):
        load_grid(path)


def _standalone(panel, grid, cell):  # type: ignore[no-untyped-def]
    config = grid.config(cell)
    result = replay(panel, config)
    book = book_of(result, panel.values, annualization=config.sizing.annualization)
    return result, book, summarize(book, result.events, config.sizing.annualization)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_sweep_cells_equal_standalone_replays_on_random_grids(seed: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(seed)
    choices = {
        "correlation.threshold": [0.3, 0.45, 0.6, 0.75],
        "correlation.persistence": [2, 4, 9],
        "correlation.window": [20, 25, 40],
        "breaker.half_at": [-0.03, -0.05, -0.08],
        "sizing.vol_window": [10, 20],
        "sizing.method": ["inverse_vol", "erc"],
        "allocation.redistribute_freed_capital": [False, True],
    }
    keys = rng.choice(list(choices), size=3, replace=False)
    raw = {
        str(k): [v.item() if hasattr(v, "item") else v for v in rng.permutation(choices[k])[:2]]
        for k in keys
    }
    grid = parse_grid(raw, BASE)
    panel = _busy_panel(seed)
    result = run_sweep(panel, grid, tmp_path / "s", progress=False, batch_size=3)
    assert list(result.table.columns) == [*grid.keys, *SUMMARY_KEYS]
    assert len(result.table) == len(grid.cells) == 8
    for i, cell in enumerate(grid.cells):
        _, book, summary = _standalone(panel, grid, cell)
        row = result.table.iloc[i]
        for key, value in cell:
            assert row[key] == value
        for m in SUMMARY_KEYS:
            assert row[m] == summary[m] or (np.isnan(row[m]) and np.isnan(summary[m])), m
        np.testing.assert_array_equal(result.books[result.ids[i]], book.returns)


def test_shared_statistics_are_computed_once_per_window_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import allocator.research.sweep as sweep

    calls: list[tuple[int, int, int, int]] = []
    real = sweep.statistics

    def counting(panel, config):  # type: ignore[no-untyped-def]
        calls.append(sweep.stats_key(config))
        return real(panel, config)

    monkeypatch.setattr(sweep, "statistics", counting)
    grid = parse_grid(
        {
            "correlation": {
                "threshold": [0.4, 0.6, 0.8],
                "persistence": [2, 5],
                "window": [20, 30],
            },
            "breaker": {"half_at": [-0.04, -0.06]},
        },
        BASE,
    )
    run_sweep(_busy_panel(5), grid, tmp_path / "s", progress=False)
    assert len(grid.cells) == 24
    assert sorted(calls) == [(20, 25, 20, 252), (20, 25, 30, 252)]  # two window sets, not 24


GRID = {
    "correlation": {"threshold": [0.4, 0.6, 0.8], "persistence": [2, 6]},
    "breaker": {"half_at": [-0.04, -0.07]},
}


def test_interrupted_then_resumed_sweep_gives_the_same_table(tmp_path: Path) -> None:
    grid = parse_grid(GRID, BASE)
    panel = _busy_panel(7)
    whole = run_sweep(panel, grid, tmp_path / "whole", progress=False, batch_size=2)

    class KilledMidRunError(Exception):
        pass

    def stop_after_two(batches: int) -> None:
        if batches == 2:
            raise KilledMidRunError

    with pytest.raises(KilledMidRunError):
        run_sweep(
            panel, grid, tmp_path / "cut", progress=False, batch_size=2, on_batch=stop_after_two
        )
    assert len(list((tmp_path / "cut" / ".sweep-cells").glob("batch-*.parquet"))) == 2
    resumed = run_sweep(panel, grid, tmp_path / "cut", progress=False, batch_size=2)
    assert resumed.ran == len(grid.cells) - 4  # the four journaled cells are not replayed
    pd.testing.assert_frame_equal(resumed.table, whole.table)
    again = run_sweep(panel, grid, tmp_path / "cut", progress=False)
    assert again.ran == 0
    pd.testing.assert_frame_equal(again.table, whole.table)


def test_a_folder_of_another_grid_is_refused(tmp_path: Path) -> None:
    panel = _busy_panel(7)
    run_sweep(panel, parse_grid(GRID, BASE), tmp_path / "s", progress=False)
    other = parse_grid({"correlation": {"threshold": [0.5]}}, BASE)
    with pytest.raises(ConfigError, match=r"^--out: .*another grid"):
        run_sweep(panel, other, tmp_path / "s", progress=False)
    with pytest.raises(ConfigError, match=r"another returns"):
        run_sweep(_busy_panel(8), parse_grid(GRID, BASE), tmp_path / "s", progress=False)


def test_dask_path_equals_in_process_path(tmp_path: Path) -> None:
    from dask.distributed import Client, LocalCluster

    grid = parse_grid({**GRID, "correlation.window": [20, 30]}, BASE)
    panel = _busy_panel(9)
    local = run_sweep(panel, grid, tmp_path / "local", progress=False)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        dask = run_sweep(
            panel, grid, tmp_path / "dask", client=client, progress=False, batch_size=5
        )
    pd.testing.assert_frame_equal(dask.table, local.table)
    for cid in local.ids:
        np.testing.assert_array_equal(dask.books[cid], local.books[cid])


def test_walk_forward_picks_on_training_and_reports_against_default(tmp_path: Path) -> None:
    grid = parse_grid(GRID, BASE)
    panel = _busy_panel(4, T=500)
    sweep = run_sweep(panel, grid, tmp_path / "s", progress=False)
    base = grid.config(())
    default = book_of(replay(panel, base), panel.values)
    wf = walk_forward(sweep, grid, default.returns, default.dates, train=200, test=100)
    # Windows: train [0,200) test [200,300); [100,300) -> [300,400); [200,400) -> [400,499).
    assert wf.windows["test_start"].tolist() == [str(default.dates[i]) for i in (200, 300, 400)]
    assert len(wf.tuned) == len(default.returns) - 200
    books = np.stack([sweep.books[c] for c in sweep.ids])
    for _, row in wf.windows.iterrows():
        lo = int(row["window"]) * 100
        chosen = [i for i, c in enumerate(grid.cells) if all(row[k] == v for k, v in c)]
        assert len(chosen) == 1
        # The chosen cell has the best training Sharpe.
        train = books[:, lo : lo + 200]
        sharpe = train.mean(axis=1) / train.std(axis=1, ddof=1)
        assert int(np.nanargmax(sharpe)) == chosen[0]
        np.testing.assert_array_equal(
            wf.tuned[lo : lo + 100], books[chosen[0], lo + 200 : lo + 300]
        )
    np.testing.assert_array_equal(wf.default, default.returns[200:])
    tuned_s, default_s = wf.summary["sharpe"].tolist()
    assert wf.beats == (tuned_s > default_s)
    assert ("does NOT beat" in wf.verdict) == (not wf.beats)


@pytest.mark.parametrize("text", ["train=756", "train=756,test=x", "test=1,train=5", "size=3"])
def test_bad_walk_forward_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--walk-forward"):
        parse_walk_forward(text)
    assert parse_walk_forward("train=756,test=252") == (756, 252)
