"""``allocator rebalance`` publishes what ``rebalance_job`` publishes; ``allocator book``."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from assets.tags import SESSION_TAG
from cli.main import main
from pipelines.definitions import build_definitions
from tests.pipelines.world import BARS, LAST_DAY, World, submit_bar, write_world

EARLIER = "2019-12-30"


def _published(url: str) -> tuple[list[object], list[object]]:
    from resources.ledger import Ledger

    ledger = Ledger(url)
    try:
        return ledger.allocations(), ledger.events()
    finally:
        ledger.close()


def test_command_and_job_publish_identical_rows(
    world: World, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    defs = build_definitions(world.resources())
    job = defs.resolve_job_def("rebalance_job")
    assert job.execute_in_process(instance=instance, tags={SESSION_TAG: EARLIER}).success
    other = write_world(tmp_path / "other")
    url = other.env["ALLOCATOR_LEDGER_URL"]
    returns = other.env["ALLOCATOR_RETURNS_SOURCE"]
    assert main(["returns", "submit", returns, "--ledger", url]) == 0
    assert main(["rebalance", "--date", EARLIER, "--ledger", url]) == 0
    assert _published(url) == _published(world.env["ALLOCATOR_LEDGER_URL"])
    assert {a.date for a in _published(url)[0]} == {EARLIER}  # type: ignore[attr-defined]
    assert job.execute_in_process(instance=instance).success
    assert main(["rebalance", "--ledger", url]) == 0
    assert _published(url) == _published(world.env["ALLOCATOR_LEDGER_URL"])
    assert {a.date for a in _published(url)[0]} == {EARLIER, LAST_DAY}  # type: ignore[attr-defined]


@pytest.mark.parametrize("date", ["2019-12-28", "2020-01-10", "12/30/2019", "9" * 50])
def test_rebalance_bad_date_is_exit_2(
    date: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = write_world(tmp_path / "w")
    url = other.env["ALLOCATOR_LEDGER_URL"]
    assert main(["returns", "submit", other.env["ALLOCATOR_RETURNS_SOURCE"], "--ledger", url]) == 0
    capsys.readouterr()
    assert main(["rebalance", "--date", date, "--ledger", url]) == 2
    assert "--date" in capsys.readouterr().err
    assert _published(url)[0] == []


def test_rebalance_without_returns_is_exit_2(tmp_path: Path) -> None:
    assert main(["rebalance", "--ledger", f"sqlite:///{tmp_path / 'empty.sqlite'}"]) == 2


def test_book_json_after_a_bar(
    world: World, instance: dg.DagsterInstance, capsys: pytest.CaptureFixture[str]
) -> None:
    defs = build_definitions(world.resources())
    assert defs.resolve_job_def("rebalance_job").execute_in_process(instance=instance).success
    submit_bar(world, BARS[0])
    bar = defs.resolve_job_def("bar_job").execute_in_process(
        instance=instance, tags={"allocator/bar": BARS[0]}
    )
    assert bar.success
    capsys.readouterr()
    url = world.env["ALLOCATOR_LEDGER_URL"]
    assert main(["book", "--json", "--ledger", url]) == 0
    book = json.loads(capsys.readouterr().out)
    assert set(book) >= {"venues", "strategies", "cash"}
    assert set(book["venues"]) == {"alpaca"}
    held: dict[str, Decimal] = {}
    for positions in book["strategies"].values():
        for symbol, qty in positions.items():
            assert isinstance(qty, str)
            held[symbol] = held.get(symbol, Decimal(0)) + Decimal(qty)
    assert {s: Decimal(q) for s, q in book["venues"]["alpaca"].items()} == {
        s: q for s, q in held.items() if q != 0
    }
    assert all(isinstance(v, str) for v in book["cash"].values())
    assert main(["book", "--ledger", url]) == 0
    table = capsys.readouterr().out
    assert "alpaca" in table
    assert "SPY" in table


def test_rebalance_runs_the_jobs_checks_and_a_failing_one_publishes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command is the job: its blocking checks run, and a failed one stops the allocation
    (the returns exceed a 0.1% bound here, so ``returns_quality`` fails)."""
    other = write_world(tmp_path / "w")
    url = other.env["ALLOCATOR_LEDGER_URL"]
    for name, value in other.env.items():
        if name != "ALLOCATOR_RETURNS_SOURCE":
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["returns", "submit", other.env["ALLOCATOR_RETURNS_SOURCE"], "--ledger", url]) == 0
    monkeypatch.setenv("ALLOCATOR_MAX_ABS_RETURN", "0.001")
    capsys.readouterr()
    assert main(["rebalance", "--ledger", url]) == 2
    err = capsys.readouterr().err
    assert "check returns_quality on strategy_returns failed" in err, err
    assert "nothing published" in err, err
    assert _published(url)[0] == []
    monkeypatch.setenv("ALLOCATOR_MAX_ABS_RETURN", "0.5")
    assert main(["rebalance", "--ledger", url]) == 0
    assert {a.date for a in _published(url)[0]} == {LAST_DAY}  # type: ignore[attr-defined]
