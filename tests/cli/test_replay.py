"""``allocator replay``: the files of SPEC §11 and errors that name file, row and problem."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allocator.config import AllocatorConfig
from allocator.data import build_panel, load_returns
from allocator.replay import replay
from cli.main import main

SAMPLE = Path(__file__).resolve().parents[2] / "demo" / "data" / "sample_returns.csv"


@pytest.fixture(scope="module")
def sample_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("replay") / "nested" / "out"
    assert main(["replay", str(SAMPLE), "--out", str(out)]) == 0
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_allocations_file_contract(sample_out: Path) -> None:
    rows = _rows(sample_out / "allocations.csv")
    assert list(rows[0]) == [
        "date", "strategy", "vol_60d", "sharpe_90d", "mtd_return", "breaker_state",
        "multiplier", "benched", "base_weight", "final_weight", "capital",
    ]  # fmt: skip
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    strategies = sorted(set(frame["strategy"]))
    sessions = sorted({r["date"] for r in rows})
    assert len(rows) == len(sessions) * len(strategies)  # every (session, strategy)
    assert sessions[0] == "2019-01-02"
    assert "2019-01-05" not in sessions  # a Saturday return rolled into Monday
    assert {r["benched"] for r in rows} == {"true", "false"}
    assert {r["breaker_state"] for r in rows} == {"normal", "half", "halted"}
    earnings_2019 = [r for r in rows if r["strategy"] == "earnings" and r["date"] < "2020"]
    assert all(r["vol_60d"] == "" and r["capital"] == "0.0" for r in earnings_2019)
    assert all(r["breaker_state"] == "normal" and r["multiplier"] == "1.0" for r in earnings_2019)
    # Floats are written at full precision: they read back to the engine's exact values.
    config = AllocatorConfig()
    result = replay(build_panel(load_returns(SAMPLE)), config)
    last = [r for r in rows if r["date"] == sessions[-1]]
    assert [float(r["capital"]) for r in last] == result.capital[-1].tolist()
    assert [float(r["vol_60d"]) for r in last] == result.vol[-1].tolist()


def test_pairs_and_events_files(sample_out: Path) -> None:
    pairs = _rows(sample_out / "pairs.csv")
    assert list(pairs[0]) == [
        "date", "strategy_a", "strategy_b", "corr_90d", "breach_run", "calm_run", "flagged",
    ]  # fmt: skip
    assert all(p["strategy_a"] < p["strategy_b"] for p in pairs[:15])
    assert len(pairs) == 15 * len({p["date"] for p in pairs})
    flagged = [p for p in pairs if p["flagged"] == "true"]
    assert flagged
    assert all(int(p["breach_run"]) >= 30 and float(p["corr_90d"]) > 0.7 for p in flagged)
    events = _rows(sample_out / "events.csv")
    assert list(events[0]) == ["date", "kind", "strategy", "detail"]
    kinds = {e["kind"] for e in events}
    assert kinds == {"rebalance", "bench", "readmit", "breaker"}
    rebalances = [e for e in events if e["kind"] == "rebalance"]
    assert rebalances[0]["detail"] == "scheduled"
    assert all(e["strategy"] == "" for e in rebalances)
    assert {e["detail"] for e in rebalances} <= {"scheduled", "event", "scheduled+event"}
    assert any(e["detail"] == "event" for e in rebalances)
    breaker = [e["detail"] for e in events if e["kind"] == "breaker"]
    assert "normal->half" in breaker
    assert "half->halted" in breaker


def test_no_pairs_option_and_parquet_input(tmp_path: Path) -> None:
    frame = pd.read_csv(SAMPLE, dtype={"return": str}, keep_default_na=False)
    frame["return"] = pd.to_numeric(frame["return"].replace("", np.nan))
    frame["date"] = pd.to_datetime(frame["date"])
    parquet = tmp_path / "r.parquet"
    frame.to_parquet(parquet)
    out = tmp_path / "o"
    assert main(["replay", str(parquet), "--out", str(out), "--no-pairs"]) == 0
    assert not (out / "pairs.csv").exists()
    ref = tmp_path / "ref"
    assert main(["replay", str(SAMPLE), "--out", str(ref), "--no-pairs"]) == 0
    assert (out / "allocations.csv").read_text() == (ref / "allocations.csv").read_text()


def test_config_file_is_applied(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[allocation]\ntotal_capital = 98000\n")
    out = tmp_path / "o"
    assert main(["replay", str(SAMPLE), "--out", str(out), "--config", str(cfg), "--no-pairs"]) == 0
    last = _rows(out / "allocations.csv")[-6:]
    total = sum(float(r["capital"]) for r in last)
    weights = sum(float(r["final_weight"]) for r in last)
    assert total == pytest.approx(98_000 * weights)


H = "date,strategy,return\n"
BAD_INPUTS = [
    ("date,strategy\n2024-01-02,a\n", r"missing column\(s\) \['return'\]"),
    (H + "2024-01-02,a,0.1\n2024-01-03,a,abc\n", r"row 2: return 'abc' is not a number"),
    (
        H + "2024-01-02,a,0.1\n2024-01-02,a,0.2\n",
        r"row 2: duplicated \(date, strategy\) \(2024-01-02, a\): also on row 1",
    ),
    (H + "2024-01-02,a,0.1\n01/03/2024,a,0.2\n", r"row 2: date '01/03/2024' is not an ISO date"),
    (H + "2024-01-02,a,0.1\n2024-01-03,,0.2\n", r"row 2: strategy name is empty"),
    (H + "2024-01-02,a,inf\n", r"row 1: return 'inf' is not finite"),
    (H + "2024-01-02,a,-1.5\n", r"row 1: return -1.5 is <= -1"),
    (H, r"no data rows"),
]


@pytest.mark.parametrize(("text", "message"), BAD_INPUTS)
def test_bad_input_names_file_row_and_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["replay", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: " in err
    assert re.search(message, err), err
    assert not out.exists() or not any(out.iterdir())  # nothing half-written


def test_missing_file_and_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.csv: file not found" in capsys.readouterr().err
    cfg = tmp_path / "c.toml"
    cfg.write_text("[breaker]\nhalt_at = 0.3\n")
    assert main(["replay", str(SAMPLE), "--out", str(tmp_path / "o"), "--config", str(cfg)]) == 2
    assert "breaker.halt_at: must lie in (-1, 0)" in capsys.readouterr().err


def test_failed_run_keeps_previous_results(tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert main(["replay", str(SAMPLE), "--out", str(out), "--no-pairs"]) == 0
    before = (out / "allocations.csv").read_text()
    bad = tmp_path / "bad.csv"
    bad.write_text("date,strategy,return\n2024-01-02,a,x\n")
    assert main(["replay", str(bad), "--out", str(out)]) == 2
    assert (out / "allocations.csv").read_text() == before


_PROBE = """
import sys
from cli.main import main
code = main(["replay", sys.argv[1], "--out", sys.argv[2], "--no-pairs"])
heavy = ("pandas", "plotly", "exchange_calendars", "scipy.linalg", "pyarrow")
print("heavy:" + ",".join(m for m in heavy if m in sys.modules))
sys.exit(code)
"""


def test_a_csv_replay_imports_no_heavy_library_once_the_calendar_is_cached(
    tmp_path: Path,
) -> None:
    """The start-up that ``replay_cli_wall_s`` measures: no pandas, Plotly's Python package,
    exchange_calendars or scipy.linalg on the path of a CSV replay (the first run builds the
    calendar, with exchange_calendars and pandas; the second reads it from the cache)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "ALLOCATOR_CACHE_DIR": str(tmp_path / "cache")}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))

    def run() -> str:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, str(SAMPLE), str(tmp_path / "out")],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return done.stdout.splitlines()[-1].removeprefix("heavy:")

    first = run()
    assert "exchange_calendars" in first  # built once...
    assert run() == ""  # ...then nothing heavy at all
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.count("Plotly.newPlot(") == 5
