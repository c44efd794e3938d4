"""The ``research`` group: a sweep on the ledger's returns, the grid as run config."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from allocator.data import build_panel, load_returns
from allocator.execution.inbox import ReturnRow
from allocator.research.grid import parse_grid
from allocator.research.sweep import run_sweep
from assets.research import research_sweep
from resources.dagster_resources import AllocatorSettings, LedgerResource

SAMPLE = Path(__file__).resolve().parents[2] / "demo" / "data" / "sample_returns.csv"
GRID = "[correlation]\nthreshold = [0.6, 0.8]\npersistence = [10, 30]\n"


@pytest.fixture
def ledger_with_returns(tmp_path: Path) -> str:
    from resources.ledger import Ledger

    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    rows = [
        ReturnRow(date=d, strategy=s, value=float(r) if r else None)
        for d, s, r in zip(frame["date"], frame["strategy"], frame["return"], strict=True)
    ]
    store = Ledger(url)
    try:
        assert store.submit_returns(rows, source="sample").accepted == len(rows)
    finally:
        store.close()
    return url


def _run(url: str, out: Path, grid: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [research_sweep],
        resources={
            "ledger": LedgerResource(url=url),
            "settings": AllocatorSettings(dashboard_path=str(out / "dashboard.html")),
        },
        run_config={"ops": {"research_sweep": {"config": {"grid": grid}}}},
        raise_on_error=False,
    )


def test_research_sweep_on_the_ledger_returns(ledger_with_returns: str, tmp_path: Path) -> None:
    result = _run(ledger_with_returns, tmp_path, GRID)
    assert result.success
    (event,) = result.get_asset_materialization_events()
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    assert meta["configurations"] == 4
    assert "correlation.threshold" in str(meta["result"])
    assert "sharpe (mean over the other keys)" in str(meta["heatmap"])
    page = Path(str(meta["path"]))
    table = pd.read_parquet(page.parent / "sweep.parquet")
    # The same table as the command line's sweep on the same returns (the file they came from).
    panel = build_panel(load_returns(SAMPLE))
    direct = run_sweep(
        panel,
        parse_grid({"correlation": {"threshold": [0.6, 0.8], "persistence": [10, 30]}}),
        tmp_path / "cli",
        progress=False,
    )
    pd.testing.assert_frame_equal(table, direct.table)
    assert meta["best_sharpe"] == table["sharpe"].max()


def test_a_bad_grid_fails_the_run_with_the_key(ledger_with_returns: str, tmp_path: Path) -> None:
    result = _run(ledger_with_returns, tmp_path, "[correlation]\nthreshold = []\n")
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "correlation.threshold: must list at least one value" in str(failure.event_specific_data)
