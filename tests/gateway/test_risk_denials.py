"""A risk denial reaches the bot: after an operator's ``allocator halt``, the strategy's intents
of the next bar are refused ``halted`` by the risk stage, and the bot sees that reason, with
the stage's detail, in ``GET /v1/bars/{bar}`` (its own rows only) and on its event stream."""

from __future__ import annotations

import queue
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from allocator.client import Event, GatewayClient, IntentIn
from allocator.execution.records import parse_bar
from allocator.rebalance import AllocationRow
from cli.main import main
from tests.gateway.conftest import BAR, Gateway


def test_a_halted_book_refuses_the_bar_and_the_bot_sees_the_reason(
    gw: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gw.ledger.write_allocations(
        AllocationRow(
            date="2029-12-31",
            strategy=s,
            capital=Decimal(100_000),
            final_weight=0.5,
            breaker_state="normal",
            benched=False,
        )
        for s in ("A", "B")
    )
    events: queue.Queue[Event] = queue.Queue()
    ready = threading.Event()

    def listen() -> None:
        with GatewayClient(gw.base, gw.tokens["A"]) as client:
            ready.set()
            for event in client.events():
                events.put(event)
                if event.event == "bar":
                    return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(10)
    time.sleep(1.5)  # the stream starts at "now": let it connect first
    with GatewayClient(gw.base, gw.tokens["A"]) as a, GatewayClient(gw.base, gw.tokens["B"]) as b:
        assert [
            r.accepted for r in a.submit_intents([IntentIn("a-buy", "SPY", "etf", "10", BAR)])
        ] == [True]
        assert [
            r.accepted for r in b.submit_intents([IntentIn("b-buy", "SPY", "etf", "5", BAR)])
        ] == [True]
        assert main(["halt", "--reason", "drill", "--by", "ops", "--ledger", gw.url]) == 0
        prices = tmp_path / "prices.csv"
        prices.write_text("symbol,price\nSPY,500\n", encoding="utf-8")
        capsys.readouterr()
        code = main(["bar", "run", BAR, "--ledger", gw.url, "--prices", str(prices)])
        assert code == 0, capsys.readouterr()
        assert gw.ledger.orders(parse_bar(BAR)) == []  # halted: nothing was sent
        view = a.bar(BAR)
        assert [(r["intent_id"], r["reason"]) for r in view.refused] == [("a-buy", "halted")]
        assert view.refused[0]["detail"], "a risk denial carries its detail"
        assert [r["intent_id"] for r in b.bar(BAR).refused] == ["b-buy"]
    thread.join(timeout=30)
    got = []
    while not events.empty():
        got.append(events.get())
    refusals = [e.data for e in got if e.event == "refusal"]
    assert [(r["intent_id"], r["reason"]) for r in refusals] == [("a-buy", "halted")]
