"""The gateway's endpoints over real HTTP: intents (idempotent, durable, late, duplicate), the
budget of /v1/me, the event stream, and the Python client on all of them."""

from __future__ import annotations

import json
import queue
import threading
import time
from decimal import Decimal

import exchange_calendars as xcals
import httpx
import sqlalchemy as sa

from allocator.client import Event, GatewayClient, IntentIn
from allocator.execution.records import parse_bar
from allocator.rebalance import AllocationRow, EventRow
from resources.ledger import schema as t
from tests.gateway.conftest import BAR, Gateway, intent


def test_intents_are_idempotent_durable_and_answered_in_order(gw: Gateway) -> None:
    with GatewayClient(gw.base, gw.tokens["A"]) as client:
        batch = [IntentIn(f"a{i}", "SPY", "etf", Decimal(i + 1), BAR) for i in range(3)]
        first = client.submit_intents(batch)
        again = client.submit_intents(batch)  # a retry: the same answer, nothing stored twice
        assert [r.intent_id for r in first] == ["a0", "a1", "a2"]
        assert all(r.accepted and r.reason is None for r in first + again)
        stored = gw.ledger.intents_for_bar(parse_bar(BAR))
        assert sorted((i.intent_id, i.qty, i.strategy) for i in stored) == [
            ("a0", Decimal(1), "A"),
            ("a1", Decimal(2), "A"),
            ("a2", Decimal(3), "A"),
        ]
        mixed = client.submit_intents(
            [
                IntentIn("d1", "SPY", "etf", "5", BAR),
                IntentIn("d1", "SPY", "etf", "6", BAR),  # the same id, other content
                IntentIn("a0", "SPY", "etf", "9", BAR),  # stored with other content
                IntentIn("z", "SPY", "etf", "1e400", BAR),
                IntentIn("u", "SPY", "crypto", "1", BAR),
            ]
        )
        assert [(r.accepted, r.reason) for r in mixed] == [
            (True, None),
            (False, "duplicate"),
            (False, "conflict"),
            (False, "invalid"),
            (False, "invalid"),
        ]
        assert "max_intent_qty" in mixed[3].detail
        # a sealed bar takes no more: late, stored as a refusal, shown on the bar
        gw.ledger.seal_bar(parse_bar(BAR), by="test")
        (late,) = client.submit_intents([IntentIn("after", "SPY", "etf", "1", BAR)])
        assert (late.accepted, late.reason) == (False, "late")
        view = client.bar(BAR)
        assert view.status == "sealed"
        assert [r["intent_id"] for r in view.refused] == ["after"]
        assert [r["reason"] for r in view.refused] == ["late"]
        assert sorted(i["intent_id"] for i in view.intents) == ["a0", "a1", "a2", "d1"]


def test_me_gives_budget_state_next_rebalance_and_gross_exposure(gw: Gateway) -> None:
    gw.ledger.write_allocations(
        [
            AllocationRow(
                date="2030-01-02",
                strategy="A",
                capital=Decimal("1000"),
                final_weight=0.25,
                breaker_state="half",
                benched=False,
            ),
            AllocationRow(
                date="2030-01-02",
                strategy="B",
                capital=Decimal("0"),
                final_weight=0.0,
                breaker_state="normal",
                benched=True,
            ),
        ]
    )
    gw.ledger.write_events(
        [EventRow(date="2030-01-02", kind="rebalance", strategy=None, detail="")]
    )
    with gw.ledger.engine.begin() as conn:  # a position and the price it was last filled at
        conn.execute(sa.insert(t.positions).values(strategy="A", symbol="SPY", qty=Decimal(-2)))
        conn.execute(sa.insert(t.positions).values(strategy="A", symbol="QQQ", qty=Decimal(1)))
        conn.execute(
            sa.insert(t.virtual_fills).values(
                bar="2030-01-02",
                strategy="A",
                symbol="SPY",
                internal=False,
                qty=Decimal(-2),
                price=Decimal("300.5"),
                fee=Decimal(0),
                cash=Decimal("601"),
            )
        )
    with GatewayClient(gw.base, gw.tokens["A"]) as a, GatewayClient(gw.base, gw.tokens["B"]) as b:
        me = a.me()
        assert (me.capital, me.max_leverage, me.multiplier) == (Decimal(1000), 1, Decimal("0.5"))
        assert (me.breaker_state, me.benched, me.published_at) == ("half", False, "2030-01-02")
        assert me.gross_used == Decimal("601")  # |-2| × 300.5; QQQ has no price yet
        assert me.gross_free == Decimal("399")
        assert me.unpriced_symbols == ("QQQ",)
        calendar = xcals.get_calendar("XNYS", start="2029-01-01", end="2031-12-31")
        assert me.next_rebalance == str(calendar.session_offset("2030-01-02", 60).date())
        assert a.positions().positions == {"QQQ": Decimal(1), "SPY": Decimal(-2)}
        assert [f.qty for f in a.fills()] == [Decimal(-2)]
        assert a.fills(since="2030-01-02") == []
        other = b.me()
        assert (other.benched, other.capital, other.gross_used) == (True, Decimal(0), Decimal(0))
        assert b.fills() == []
        assert b.positions().positions == {}


def test_the_event_stream_carries_own_refusals_and_state_changes_only(gw: Gateway) -> None:
    events: queue.Queue[Event] = queue.Queue()
    ready = threading.Event()

    def listen() -> None:
        with GatewayClient(gw.base, gw.tokens["A"]) as client:
            ready.set()
            for event in client.events():
                events.put(event)
                if event.event == "state":
                    return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(10)
    time.sleep(1.5)  # the stream starts at "now": let it connect before anything happens
    gw.ledger.seal_bar(parse_bar(BAR), by="test")
    for who, iid in (("B", "b-late"), ("A", "a-late")):
        answer = httpx.post(gw.base + "/v1/intents", json=[intent(iid)], headers=gw.headers(who))
        assert answer.json()[0]["reason"] == "late"
    gw.ledger.write_events(
        [
            EventRow(date="2030-01-02", kind="bench", strategy="B", detail="corr with A"),
            EventRow(date="2030-01-03", kind="bench", strategy="A", detail="corr with B"),
        ]
    )
    thread.join(timeout=20)
    got = []
    while not events.empty():
        got.append(events.get())
    assert [(e.event, e.data.get("intent_id") or e.data.get("change")) for e in got] == [
        ("refusal", "a-late"),
        ("state", "benched"),
    ]


def test_last_event_id_resumes_the_stream_where_it_was(gw: Gateway) -> None:
    gw.ledger.seal_bar(parse_bar(BAR), by="test")
    for iid in ("late-1", "late-2"):
        answer = httpx.post(gw.base + "/v1/intents", json=[intent(iid)], headers=gw.headers("A"))
        assert answer.json()[0]["reason"] == "late"
    with GatewayClient(gw.base, gw.tokens["A"]) as client:
        stream = client.events(last_event_id=json.dumps(["", 0, 0]), reconnect=False)
        first = next(stream)
        stream.close()
        assert (first.event, first.data["intent_id"]) == ("refusal", "late-1")
        stream = client.events(last_event_id=first.id, reconnect=False)
        second = next(stream)
        stream.close()
        assert (second.event, second.data["intent_id"]) == ("refusal", "late-2")


def test_the_openapi_page_lists_every_endpoint_behind_the_bearer_token(gw: Gateway) -> None:
    assert httpx.get(gw.base + "/docs").status_code == 200
    spec = httpx.get(gw.base + "/openapi.json").json()
    assert set(spec["paths"]) == {
        "/v1/intents",
        "/v1/returns",
        "/v1/me",
        "/v1/positions",
        "/v1/fills",
        "/v1/bars/{bar}",
        "/v1/events",
    }
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
