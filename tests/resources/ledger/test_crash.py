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


# The journal state each kill leaves behind (None: no order journaled yet).
STATES = {
    "sealed": None,
    "planned": None,
    "journaled": "pending_submit",
    "ack:": "filled",  # the simulated venue fills at once: the ack carries the fill
    "fill:": "filled",
    "recording": "filled",
}


@pytest.mark.parametrize("crash_at", list(STATES))
def test_killed_bar_completes_on_restart_with_one_order(ledger_url: str, crash_at: str) -> None:
    assert _run(ledger_url, crash_at) == 9
    ledger = Ledger(ledger_url)
    try:
        bar = parse_bar("2024-05-01")
        assert not ledger.bar_done(bar)
        journal = ledger.orders(bar)
        expected_state = STATES[crash_at]
        assert [o["state"] for o in journal] == ([] if expected_state is None else [expected_state])
        assert ledger.positions() == {}  # nothing of the bar is recorded yet
        # What was journaled as it arrived is kept, unsettled, for the re-run to settle.
        assert len(ledger.unsettled_fills()) == (1 if expected_state == "filled" else 0)
    finally:
        ledger.close()

    assert _run(ledger_url) == 0  # the re-run of the FAILED run settles the bar
    assert _run(ledger_url) == 0  # and a rerun of a recorded bar changes nothing
    ledger = Ledger(ledger_url)
    try:
        papers = LedgerPaperState(ledger).orders("paper-alpaca")
        assert len(papers) == 1
        assert (papers[0].side.value, papers[0].qty) == ("buy", Decimal(40))
        journal = ledger.orders(bar)
        assert [o["state"] for o in journal] == [OrderState.FILLED.value]
        assert len(ledger.broker_fills()) == 1
        assert ledger.unsettled_fills() == []
        assert ledger.positions() == {("A", "SPY"): Decimal(100), ("B", "SPY"): Decimal(-60)}
        # Internal crosses priced at the fill price 500.25; Alpaca charges no fee on ETFs.
        assert ledger.cash() == {"A": Decimal("-50025.00"), "B": Decimal("30015.00")}
    finally:
        ledger.close()
