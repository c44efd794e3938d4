"""``allocator doctor`` against the simulated venues and the local venue fakes: every check's
verdict, exit codes, the JSON form, and no secret ever printed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from cli.doctor import Context, Finding, Verdict, finding, run_checks, skew_bounds
from cli.main import main
from resources.ledger import Ledger
from tests.fakes.fake_alpaca import FakeAlpaca
from tests.fakes.fake_binance import FakeBinance
from tests.fakes.fake_tws import FakeTws

ROOT = Path(__file__).resolve().parents[2]
VENUE_VARIABLES = (
    "ALPACA_MODE",
    "ALPACA_API_KEY",
    "ALPACA_SECRET_KEY",
    "ALPACA_BASE_URL",
    "CCXT_MODE",
    "CCXT_EXCHANGE",
    "CCXT_API_KEY",
    "CCXT_SECRET",
    "CCXT_PASSWORD",
    "CCXT_BASE_URL",
    "IB_MODE",
    "IB_HOST",
    "IB_PORT",
    "IB_CLIENT_ID",
    "DAGSTER_PG_URL",
    "ALLOCATOR_CONFIG",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, private_ledger: str) -> None:
    """Every venue in sim mode, a migrated private ledger, an instance home with dagster.yaml."""
    for name in VENUE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    Ledger(private_ledger).close()  # created at the head revision
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))


def _doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object]]:
    code = main(["doctor", "--json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out)


def _verdicts(report: dict[str, object]) -> dict[tuple[str, str], str]:
    findings = report["findings"]
    assert isinstance(findings, list)
    return {(f["check"], f["subject"]): f["verdict"] for f in findings}


def _message(report: dict[str, object], check: str, subject: str = "") -> str:
    findings = report["findings"]
    assert isinstance(findings, list)
    (found,) = [f for f in findings if (f["check"], f["subject"]) == (check, subject)]
    return str(found["message"])


@pytest.fixture
def alpaca(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAlpaca]:
    fake = FakeAlpaca(key="ak-test", secret="alpaca-secret-value-123").start()
    monkeypatch.setenv("ALPACA_MODE", "paper")
    monkeypatch.setenv("ALPACA_BASE_URL", fake.url)
    monkeypatch.setenv("ALPACA_API_KEY", fake.key)
    monkeypatch.setenv("ALPACA_SECRET_KEY", fake.secret)
    yield fake
    fake.stop()


def test_all_sim_is_healthy_and_every_check_reports(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = _doctor(capsys)
    verdicts = _verdicts(report)
    assert code == 0
    assert report["ok"] is True
    assert set(verdicts.values()) == {"ok"}, report
    for venue in ("alpaca", "ccxt", "ibkr"):
        for check in ("credentials", "venue", "clock"):
            assert (check, venue) in verdicts
    built_in = {"config", "ledger", "credentials", "venue", "clock", "bar_lane", "dagster"}
    # the built-in checks, then those added through CHECK_MODULES (e.g. the risk engine's)
    assert built_in <= {c for c, _ in verdicts}
    findings = report["findings"]
    assert isinstance(findings, list)
    order = ["config", "ledger"]
    order += [*["credentials"] * 3, *["venue"] * 3, *["clock"] * 3, "bar_lane", "dagster"]
    assert [f["check"] for f in findings][: len(order)] == order
    assert "migrated to head" in _message(report, "ledger", _message_subject(report, "ledger"))
    # the table form names every finding too, one per line, and the summary
    assert main(["doctor"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:3] == ["VERDICT", "CHECK", "SUBJECT"]
    assert "0 failed" in table


def _skew(message: str) -> float:
    found = re.search(r"venue clock ([+-][0-9.]+) s", message)
    assert found is not None, message
    return float(found.group(1))


def _message_subject(report: dict[str, object], check: str) -> str:
    findings = report["findings"]
    assert isinstance(findings, list)
    return str(next(f["subject"] for f in findings if f["check"] == check))


def test_a_bad_config_fails_and_the_rest_is_not_checked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[correlation]\nthreshold = 1.5\n")
    code, report = _doctor(capsys, "--config", str(bad))
    assert code == 1
    assert _verdicts(report)[("config", "")] == "fail"
    assert "correlation.threshold" in _message(report, "config")
    assert _verdicts(report)[("venue", "alpaca")] == "warn"  # not checked, said so


def test_a_ledger_that_does_not_exist_or_lags_the_head_fails(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "ledger.sqlite"
    code, report = _doctor(capsys, "--ledger", f"sqlite:///{missing}")
    assert code == 1
    assert "no ledger file" in _message(report, "ledger", f"sqlite:///{missing}")
    assert not missing.parent.exists()  # the doctor created nothing
    old = tmp_path / "old.sqlite"
    ledger = Ledger(f"sqlite:///{old}")
    with ledger.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0002'")
    ledger.close()
    code, report = _doctor(capsys, "--ledger", f"sqlite:///{old}")
    assert code == 1
    assert "is at revision 0002" in _message(report, "ledger", f"sqlite:///{old}")
    with Ledger(f"sqlite:///{old}", upgrade=False).engine.connect() as conn:  # not migrated
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0002"


def test_a_missing_credential_fails_by_name_and_no_secret_is_printed(
    tmp_path: Path, private_ledger: str
) -> None:
    secret = "sk-live-0123456789-never-print-me"
    env = {k: v for k, v in os.environ.items() if k not in VENUE_VARIABLES}
    env.update(
        {"ALPACA_MODE": "paper", "ALPACA_API_KEY": secret, "ALLOCATOR_LEDGER_URL": private_ledger}
    )
    for args in (["doctor"], ["doctor", "--json"]):
        done = subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1, done.stdout + done.stderr
        assert "ALPACA_SECRET_KEY not set" in done.stdout
        assert secret not in done.stdout
        assert secret not in done.stderr


def test_alpaca_reached_reconciled_and_on_time(
    capsys: pytest.CaptureFixture[str], alpaca: FakeAlpaca
) -> None:
    code, report = _doctor(capsys)
    assert code == 0, report
    assert _verdicts(report)[("venue", "alpaca")] == "ok"
    assert "reconciled" in _message(report, "venue", "alpaca")
    assert _verdicts(report)[("clock", "alpaca")] == "ok"
    assert alpaca.secret not in json.dumps(report)


def test_a_skewed_alpaca_clock_fails(
    capsys: pytest.CaptureFixture[str], alpaca: FakeAlpaca
) -> None:
    alpaca.clock_offset_s = 5.0
    code, report = _doctor(capsys)
    assert code == 1
    assert _verdicts(report)[("clock", "alpaca")] == "fail"
    message = _message(report, "clock", "alpaca")
    assert _skew(message) == pytest.approx(5.0, abs=0.2)
    assert "beyond the 1 s limit" in message
    code, report = _doctor(capsys, "--max-skew-s", "10")  # a looser limit accepts it
    assert _verdicts(report)[("clock", "alpaca")] == "ok"


def test_a_venue_that_differs_from_the_ledger_fails_and_nothing_is_recorded(
    capsys: pytest.CaptureFixture[str], alpaca: FakeAlpaca, private_ledger: str
) -> None:
    alpaca.positions["SPY"] = Decimal(7)  # bought by hand, outside the allocator
    alpaca.cost["SPY"] = Decimal(7) * alpaca.prices["SPY"]
    code, report = _doctor(capsys)
    assert code == 1
    assert "unexpected_position: SPY: venue 7, ledger 0" in _message(report, "venue", "alpaca")
    ledger = Ledger(private_ledger)
    try:
        assert ledger.reconciliations() == []  # read only: no halt recorded, none cleared
        assert ledger.venue_halts() == {}
    finally:
        ledger.close()


def test_an_unreachable_venue_fails(capsys: pytest.CaptureFixture[str], alpaca: FakeAlpaca) -> None:
    alpaca.stop()
    code, report = _doctor(capsys, "--timeout-s", "2")
    assert code == 1
    assert _verdicts(report)[("venue", "alpaca")] == "fail"
    assert "unreachable" in _message(report, "venue", "alpaca")


def test_binance_and_ib_clocks(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    binance = FakeBinance().start()
    tws = FakeTws().start()
    try:
        monkeypatch.setenv("CCXT_MODE", "paper")
        monkeypatch.setenv("CCXT_EXCHANGE", "binance")
        monkeypatch.setenv("CCXT_BASE_URL", binance.url)
        monkeypatch.setenv("CCXT_API_KEY", binance.key)
        monkeypatch.setenv("CCXT_SECRET", binance.secret)
        monkeypatch.setenv("IB_MODE", "paper")
        monkeypatch.setenv("IB_PORT", str(tws.port))
        code, report = _doctor(capsys)
        assert _verdicts(report)[("clock", "ccxt")] == "ok", report
        assert _verdicts(report)[("venue", "ccxt")] == "ok", report
        assert _verdicts(report)[("venue", "ibkr")] == "ok", report
        # IB's clock has whole seconds: within 1 s it cannot tell (warn), never a false fail
        assert _verdicts(report)[("clock", "ibkr")] in ("ok", "warn")
        binance.clock_offset_s = 2.5
        tws.clock_offset_s = -4.0
        code, report = _doctor(capsys)
        assert code == 1
        assert _verdicts(report)[("clock", "ccxt")] == "fail"
        assert _verdicts(report)[("clock", "ibkr")] == "fail"
        assert _skew(_message(report, "clock", "ccxt")) == pytest.approx(2.5, abs=0.2)
    finally:
        binance.stop()
        tws.stop()


def test_a_halted_bar_lane_fails_with_its_reason(
    capsys: pytest.CaptureFixture[str], private_ledger: str
) -> None:
    ledger = Ledger(private_ledger)
    try:
        ledger.halt_lane("bar 2020-01-02 failed 4 times: venue down")
    finally:
        ledger.close()
    code, report = _doctor(capsys)
    assert code == 1
    assert "venue down" in _message(report, "bar_lane")


def test_an_untested_dagster_fails_the_dagster_check(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster

    monkeypatch.setattr(dagster, "__version__", "1.99.0")
    code, report = _doctor(capsys)
    assert code == 1
    message = _message(report, "dagster", str(Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml"))
    assert "1.99.0" in message
    assert "run_launcher" in message


def test_a_postgres_instance_needs_its_url(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Path(os.environ["DAGSTER_HOME"])
    shutil.copyfile(ROOT / "dagster.postgres.yaml", home / "dagster.yaml")
    code, report = _doctor(capsys)
    assert code == 1
    assert "DAGSTER_PG_URL not set" in _message(report, "credentials", "dagster")
    url = "postgresql+psycopg2://u:pg-password-not-shown@db:5432/x"
    monkeypatch.setenv("DAGSTER_PG_URL", url)
    code, report = _doctor(capsys)
    assert _verdicts(report)[("credentials", "dagster")] == "ok"
    assert url not in json.dumps(report)


def test_added_checks_run_after_the_built_in_ones_and_are_scrubbed(private_ledger: str) -> None:
    secret = "s3cr3t-value-of-a-venue"

    def check_echo(ctx: Context) -> Iterable[Finding]:
        return [finding("echo", Verdict.WARN, f"venue said: bad key {secret}", "alpaca")]

    def check_broken(ctx: Context) -> Iterable[Finding]:
        raise RuntimeError(f"boom with {secret}")

    env = {"ALPACA_MODE": "paper", "ALPACA_API_KEY": secret, "ALLOCATOR_LEDGER_URL": private_ledger}
    findings = run_checks(Context(env=env), [check_echo, check_broken])
    assert [f.check for f in findings] == ["echo", "broken"]
    assert findings[0].message == "venue said: bad key ***"
    assert findings[1].verdict is Verdict.FAIL
    assert secret not in findings[1].message


def test_skew_bounds_account_for_the_round_trip_and_the_resolution() -> None:
    server = datetime.fromtimestamp(1000.0, UTC)  # whole seconds, like IB's
    lo, hi = skew_bounds(server, before=999.9, after=1000.3, resolution_s=1.0)
    assert (round(lo, 6), round(hi, 6)) == (-0.3, 1.1)
    lo, hi = skew_bounds(datetime.fromtimestamp(1005.0, UTC), 1000.0, 1000.2, 0.001)
    assert lo == pytest.approx(4.8)
    assert hi == pytest.approx(5.001)
