"""Crash tests: kill the bar's process at its durable steps; the restart completes the bar
with exactly one order at the broker and one fill in the ledger."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from allocator.execution import parse_bar
from allocator.execution.orders import OrderState
from resources.ledger import Ledger, LedgerPaperState

SCRIPT = Path(__file__).with_name("bar_script.py")
ROOT = Path(__file__).resolve().parents[3]


def _run(url: str, crash_at: str = "") -> int:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(SCRIPT), url, crash_at],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode not in (0, 9):
        raise AssertionError(f"bar script failed ({done.returncode}):\n{done.stderr}")
    return done.returncode


@pytest.mark.parametrize("crash_at", ["journaled", "submitted:"])
def test_killed_bar_completes_on_restart_with_one_order(ledger_url: str, crash_at: str) -> None:
    assert _run(ledger_url, crash_at) == 9
    ledger = Ledger(ledger_url)
    try:
        bar = parse_bar("2024-05-01")
        assert not ledger.bar_done(bar)
        journal = ledger.orders(bar)
        assert len(journal) == 1
        expected_state = "pending_submit" if crash_at == "journaled" else "filled"
        assert journal[0]["state"] == expected_state
        assert ledger.positions() == {}  # nothing of the bar is recorded yet
    finally:
        ledger.close()

    assert _run(ledger_url) == 0
    assert _run(ledger_url) == 0  # and a rerun of a recorded bar changes nothing
    ledger = Ledger(ledger_url)
    try:
        papers = LedgerPaperState(ledger).orders("paper-alpaca")
        assert len(papers) == 1
        assert (papers[0].side.value, papers[0].qty) == ("buy", Decimal(40))
        journal = ledger.orders(bar)
        assert [o["state"] for o in journal] == [OrderState.FILLED.value]
        assert len(ledger.broker_fills()) == 1
        assert ledger.positions() == {("A", "SPY"): Decimal(100), ("B", "SPY"): Decimal(-60)}
        # Internal crosses priced at the fill price 500.25; Alpaca charges no fee on ETFs.
        assert ledger.cash() == {"A": Decimal("-50025.00"), "B": Decimal("30015.00")}
    finally:
        ledger.close()
