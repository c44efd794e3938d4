"""``allocator broker submit|lookup|reconcile`` against the local fakes, in process."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from cli import broker as broker_cli
from cli.main import main
from resources.ledger import Ledger
from tests.fakes.fake_alpaca import FakeAlpaca
from tests.fakes.fake_binance import FakeBinance


@pytest.fixture
def alpaca_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeAlpaca]:
    fake = FakeAlpaca().start()
    monkeypatch.setenv("ALPACA_MODE", "paper")  # the venue's paper account (default: sim)
    monkeypatch.setenv("ALPACA_API_KEY", fake.key)
    monkeypatch.setenv("ALPACA_SECRET_KEY", fake.secret)
    monkeypatch.setenv("ALPACA_BASE_URL", fake.url)
    monkeypatch.setenv("ALLOCATOR_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    monkeypatch.setattr(broker_cli, "TIMEOUT_S", 0.5)
    monkeypatch.setattr(broker_cli, "LOOKUP_DELAY_S", 0.05)
    yield fake
    fake.stop()


@pytest.fixture
def binance_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBinance]:
    fake = FakeBinance().start()
    monkeypatch.setenv("CCXT_MODE", "paper")  # the venue's testnet account (default: sim)
    monkeypatch.setenv("CCXT_EXCHANGE", "binance")
    monkeypatch.setenv("CCXT_API_KEY", fake.key)
    monkeypatch.setenv("CCXT_SECRET", fake.secret)
    monkeypatch.setenv("CCXT_BASE_URL", fake.url)
    monkeypatch.setattr(broker_cli, "TIMEOUT_S", 0.5)
    monkeypatch.setattr(broker_cli, "LOOKUP_DELAY_S", 0.05)
    yield fake
    fake.stop()


CID = "0123456789abcdef0123456789abcdef"
SUBMIT = ["broker", "submit", "--venue", "alpaca", "--symbol", "SPY", "--asset-class", "etf"]
SUBMIT += ["--side", "buy", "--qty", "2", "--client-order-id", CID]
LOOKUP = ["broker", "lookup", "--venue", "alpaca", "--symbol", "SPY", "--client-order-id", CID]


def _last_json(out: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def test_submit_twice_places_one_order_and_exits_0(
    alpaca_env: FakeAlpaca, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(SUBMIT) == 0
    first = _last_json(capsys.readouterr().out)
    assert first["placed_by_this_call"] is True
    assert first["mode"] == "paper"
    assert main(SUBMIT) == 0
    second = _last_json(capsys.readouterr().out)
    assert second["placed_by_this_call"] is False
    assert second["state"] == "filled"
    assert len(alpaca_env.orders_for(CID)) == 1
    assert alpaca_env.orders_for(CID)[0].client_order_id == CID  # reaches the venue unchanged


def test_lookup_exit_codes(alpaca_env: FakeAlpaca, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(LOOKUP) == 1
    assert _last_json(capsys.readouterr().out)["found"] is False
    assert main(SUBMIT) == 0
    capsys.readouterr()
    assert main(LOOKUP) == 0
    found = _last_json(capsys.readouterr().out)
    assert found["order"]["state"] == "filled"  # type: ignore[index]
    alpaca_env.inject("status", on="any", status=500, when="before")
    assert main(LOOKUP) == 2
    assert "alpaca lookup" in capsys.readouterr().err


def test_timeout_after_acceptance_is_found_by_lookup(
    alpaca_env: FakeAlpaca, capsys: pytest.CaptureFixture[str]
) -> None:
    alpaca_env.inject("hold", hold_s=1.5)
    assert main(SUBMIT) == 0
    out = _last_json(capsys.readouterr().out)
    assert "resolved by lookup" in str(out["detail"])
    assert len(alpaca_env.orders_for(CID)) == 1


def test_unresolved_outcome_exits_3(
    alpaca_env: FakeAlpaca, capsys: pytest.CaptureFixture[str]
) -> None:
    alpaca_env.inject("disconnect")  # the order is accepted, the answer lost
    for _ in range(broker_cli.LOOKUPS):
        alpaca_env.inject("status", on="any", status=503, when="before")
    # The pre-submit lookup takes the first "any" fault: leave it one more.
    alpaca_env.inject("status", on="any", status=503, when="before")
    assert main(SUBMIT) == 3
    assert _last_json(capsys.readouterr().out)["state"] == "unknown"


def test_rejection_exits_2_and_says_why(
    alpaca_env: FakeAlpaca, capsys: pytest.CaptureFixture[str]
) -> None:
    alpaca_env.inject("reject")
    assert main(SUBMIT) == 2
    assert "insufficient buying power" in str(_last_json(capsys.readouterr().out)["detail"])


def test_missing_credentials_exit_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALPACA_MODE", "paper")
    monkeypatch.delenv("ALPACA_API_KEY", raising=False)
    assert main(LOOKUP) == 2
    assert "ALPACA_API_KEY: environment variable is not set" in capsys.readouterr().err


def test_ccxt_submit_and_lookup_in_base_units(
    binance_env: FakeBinance, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["broker", "submit", "--venue", "ccxt", "--symbol", "BTC/USDT"]
    argv += ["--asset-class", "crypto", "--side", "buy", "--qty", "0.01", "--client-order-id", CID]
    assert main(argv) == 0
    capsys.readouterr()
    lookup = ["broker", "lookup", "--venue", "ccxt", "--symbol", "BTC/USDT"]
    assert main([*lookup, "--client-order-id", CID]) == 0
    order = _last_json(capsys.readouterr().out)["order"]
    assert order["qty"] == "0.01"  # type: ignore[index]
    assert str(binance_env.orders_for(CID)[0].qty) == "0.01"


def test_reconcile_reports_a_position_the_ledger_does_not_know(
    alpaca_env: FakeAlpaca, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["broker", "reconcile", "--venue", "alpaca"]) == 0
    assert "reconciled" in capsys.readouterr().out
    assert main(SUBMIT) == 0
    capsys.readouterr()
    assert main(["broker", "reconcile", "--venue", "alpaca"]) == 1
    out = capsys.readouterr().out
    assert "unexpected_position: SPY: venue 2" in out
    assert "new entries halted" in out


def _ledger() -> Ledger:
    return Ledger(os.environ["ALLOCATOR_LEDGER_URL"])


def test_submit_journals_the_order_with_its_mode(
    alpaca_env: FakeAlpaca, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*SUBMIT, "--account", "ops", "--reference-price", "500"]) == 0
    assert main(SUBMIT) == 0  # the same id again: found, journaled once, not re-labelled
    capsys.readouterr()
    ledger = _ledger()
    try:
        (row,) = ledger.orders()
    finally:
        ledger.close()
    assert row["client_order_id"] == CID
    assert (row["bar"], row["account"], row["venue"], row["mode"]) == (
        "manual",
        "ops",
        "alpaca",
        "paper",
    )
    assert row["state"] == "filled"
    assert row["reference_price"] == Decimal(500)
    assert len(alpaca_env.orders_for(CID)) == 1


def test_reconcile_records_the_halt_and_a_clean_run_clears_it(
    alpaca_env: FakeAlpaca, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(SUBMIT) == 0
    assert main(["broker", "reconcile", "--venue", "alpaca"]) == 1
    halted = _last_json(capsys.readouterr().out)
    assert halted["halted"] is True
    ledger = _ledger()
    try:
        assert set(ledger.venue_halts()) == {"alpaca"}
        (record,) = ledger.reconciliations("alpaca")
        assert record.differences[0]["kind"] == "unexpected_position"
    finally:
        ledger.close()
    # Flatten the manual position at the venue: the next reconciliation is clean and clears.
    sell = [a if a != "buy" else "sell" for a in SUBMIT[:-1]] + ["f" * 32]
    assert main(sell) == 0
    capsys.readouterr()
    assert main(["broker", "reconcile", "--venue", "alpaca"]) == 0
    out = capsys.readouterr().out
    assert "alpaca: halt cleared" in out
    clean = _last_json(out)
    assert clean["halted"] is False
    assert clean["cleared"] == [halted["reconciliation_id"]]
    ledger = _ledger()
    try:
        assert ledger.venue_halts() == {}
    finally:
        ledger.close()


def test_ccxt_reconcile_takes_the_accounts_first_holdings_as_a_baseline_like_the_bar(
    binance_env: FakeBinance, capsys: pytest.CaptureFixture[str]
) -> None:
    """The operator's reconcile is the bar's path: coins held before the allocator (and never
    traded by it) are the recorded baseline, not a difference that halts the venue."""
    from allocator.execution.orders import Venue

    binance_env.balances.update({"ETH": Decimal(2), "BNB": Decimal(1)})
    reconcile = ["broker", "reconcile", "--venue", "ccxt"]
    assert main(reconcile) == 0
    first = _last_json(capsys.readouterr().out)
    assert (first["ok"], first["halted"]) == (True, False)
    ledger = _ledger()
    try:
        assert ledger.venue_baseline(Venue.CCXT) == {"ETH/USDT": Decimal(2)}
    finally:
        ledger.close()
    assert main(reconcile) == 0  # again: still the baseline, still clean
    capsys.readouterr()
    binance_env.balances["ETH"] = Decimal(3)  # one ETH the allocator does not know of
    assert main(reconcile) == 1
    differs = _last_json(capsys.readouterr().out)
    (difference,) = differs["differences"]  # type: ignore[misc]
    assert (difference["kind"], difference["key"]) == ("unexpected_position", "ETH/USDT")
    assert Decimal(difference["venue"]) == 1  # only what the allocator did not put there
    ledger = _ledger()
    try:
        assert set(ledger.venue_halts()) == {"ccxt"}
    finally:
        ledger.close()
