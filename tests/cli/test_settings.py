"""The command line and the code location read one settings record: same ledger, same rules.

``tests/cli/conftest.py`` points ``ALLOCATOR_LEDGER_URL`` at a fresh SQLite file for each test
(the README's way of naming the ledger).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from allocator.execution.records import parse_bar
from cli.main import main

INTENT = "intent_id,strategy,symbol,asset_class,qty,bar\ni1,A,SPY,etf,10,2024-05-02\n"
NOW = "2024-05-02T10:00:00Z"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _stored(url: str) -> tuple[list[str], list[str]]:
    from resources.ledger import Ledger

    ledger = Ledger(url)
    try:
        intents = [i.intent_id for i in ledger.intents_for_bar(parse_bar("2024-05-02"))]
        return ledger.strategies(), intents
    finally:
        ledger.close()


def test_submits_land_in_the_ledger_the_code_location_trades_from(
    private_ledger: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    returns = _write(tmp_path / "returns.csv", "date,strategy,return\n2024-05-01,A,0.01\n")
    intents = _write(tmp_path / "intents.csv", INTENT)
    assert main(["returns", "submit", str(returns)]) == 0
    assert main(["intents", "submit", str(intents), "--now", NOW]) == 0
    assert "1 intent(s) stored" in capsys.readouterr().out
    assert _stored(private_ledger) == (["A"], ["i1"])

    from resources.dagster_resources import default_resources

    ledger = default_resources()["ledger"]
    assert ledger.resolved_url() == private_ledger
    with ledger.open() as store:
        assert [i.intent_id for i in store.intents_for_bar(parse_bar("2024-05-02"))] == ["i1"]


def test_file_then_environment_then_flag_on_the_command_line(
    private_ledger: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from_file = f"sqlite:///{tmp_path / 'file.sqlite'}"
    from_flag = f"sqlite:///{tmp_path / 'flag.sqlite'}"
    config = _write(tmp_path / "c.toml", f'[execution]\nledger_url = "{from_file}"\n')
    returns = _write(tmp_path / "returns.csv", "date,strategy,return\n2024-05-01,A,0.01\n")
    # The environment's ledger wins over the file's...
    assert main(["returns", "submit", str(returns), "--config", str(config)]) == 0
    assert _stored(private_ledger)[0] == ["A"]
    # ...the flag wins over both...
    flagged = ["returns", "submit", str(returns), "--config", str(config), "--ledger", from_flag]
    assert main(flagged) == 0
    assert _stored(from_flag)[0] == ["A"]
    assert _stored(from_file)[0] == []  # the file's ledger was never written
    # ...and without the environment, the file's ledger is used (ALLOCATOR_CONFIG names it).
    monkeypatch.delenv("ALLOCATOR_LEDGER_URL")
    monkeypatch.setenv("ALLOCATOR_CONFIG", str(config))
    assert main(["returns", "submit", str(returns)]) == 0
    assert _stored(from_file)[0] == ["A"]
    capsys.readouterr()


def test_a_bad_setting_exits_2_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    intents = _write(tmp_path / "intents.csv", INTENT)
    config = _write(tmp_path / "c.toml", "[execution]\nbar_tolerance = 1000000\n")
    assert main(["intents", "submit", str(intents), "--config", str(config), "--now", NOW]) == 2
    assert "execution.bar_tolerance: must be <= 1000 bars" in capsys.readouterr().err
    monkeypatch.setenv("ALLOCATOR_LEDGER_URL", "data/ledger.sqlite")
    assert main(["intents", "submit", str(intents), "--now", NOW]) == 2
    assert "ALLOCATOR_LEDGER_URL: must be a SQLAlchemy URL" in capsys.readouterr().err
