"""``allocator sweep`` from the command line, and the replay's book, summary and report."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from allocator.book import SUMMARY_KEYS
from cli.main import main

SAMPLE = Path(__file__).resolve().parents[2] / "demo" / "data" / "sample_returns.csv"


def test_replay_writes_book_summary_and_report(tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert main(["replay", str(SAMPLE), "--out", str(out), "--no-pairs"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary) == list(SUMMARY_KEYS)
    events = pd.read_csv(out / "events.csv")
    assert summary["benches"] == int((events["kind"] == "bench").sum())
    assert summary["readmits"] == int((events["kind"] == "readmit").sum())
    book = pd.read_csv(out / "book.csv")
    allocations = pd.read_csv(out / "allocations.csv")
    assert len(book) == allocations["date"].nunique() - 1
    page = (out / "report.html").read_text()
    for chart in ("equity", "weights", "benches", "breaker", "correlation"):
        assert f'id="chart-{chart}"' in page
    assert "inverse vol alone (no bench, no breaker)" in page
    assert "equal weight" in page
    assert "best single (" in page
    assert "<script" in page
    assert "<script src=" not in page


def test_replay_refuses_a_cost_out_of_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(SAMPLE), "--out", str(tmp_path), "--cost", "2"]) == 2
    assert "--cost: must lie in [0, 1]" in capsys.readouterr().err


def test_sweep_in_process_with_walk_forward(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text("[correlation]\nthreshold = [0.6, 0.8]\n[breaker]\nhalf_at = [-0.10, -0.15]\n")
    out = tmp_path / "s"
    args = ["sweep", str(SAMPLE), "--grid", str(grid), "--out", str(out), "--in-process"]
    code = main([*args, "--no-progress", "--walk-forward", "train=252,test=126"])
    assert code == 0
    printed = capsys.readouterr().out
    table = pd.read_parquet(out / "sweep.parquet")
    assert list(table.columns) == ["correlation.threshold", "breaker.half_at", *SUMMARY_KEYS]
    assert len(table) == 4
    assert "sharpe (mean over the other keys): rows correlation.threshold" in printed
    assert "tuned book" in printed
    assert "Out of sample" in printed
    walk = pd.read_csv(out / "walk_forward.csv")
    assert {"train_sharpe", "test_sharpe_tuned", "test_sharpe_default"} <= set(walk.columns)
    page = (out / "sweep.html").read_text()
    assert 'id="chart-mean-0"' in page
    assert "Walk-forward" in page
    # A cell equals `allocator replay` with that configuration (here the default one).
    replayed = tmp_path / "r"
    assert main(["replay", str(SAMPLE), "--out", str(replayed), "--no-pairs", "--no-report"]) == 0
    summary = json.loads((replayed / "summary.json").read_text())
    one = tmp_path / "one.toml"
    one.write_text("[correlation]\nthreshold = [0.7]\n")
    args = ["sweep", str(SAMPLE), "--grid", str(one), "--out", str(tmp_path / "o"), "--in-process"]
    assert main([*args, "--no-progress"]) == 0
    single = pd.read_parquet(tmp_path / "o" / "sweep.parquet").iloc[0]
    assert {k: single[k].item() for k in SUMMARY_KEYS} == summary


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[correlation]\nthresold = [0.5]\n", "correlation.thresold"),
        ("[correlation]\npersistence = [1.5]\n", "correlation.persistence"),
        ("[breaker]\nhalf_at = []\n", "breaker.half_at"),
        ("[calendar]\nname = ['XNYS', 'XLON']\n", "calendar.name"),
    ],
)
def test_sweep_refuses_bad_grids_with_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str
) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(text)
    args = ["sweep", str(SAMPLE), "--grid", str(grid), "--out", str(tmp_path / "s"), "--in-process"]
    assert main(args) == 2
    assert f"allocator sweep: error: {key}:" in capsys.readouterr().err
