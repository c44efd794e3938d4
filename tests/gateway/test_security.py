"""The gateway's security list (issue 12), over real HTTP on 127.0.0.1: each refusal is answered
as stated and changes nothing in the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from allocator.execution.records import parse_bar
from allocator.rebalance import AllocationRow
from tests.gateway.conftest import BAR, Gateway, intent, snapshot

ENDPOINTS = [
    ("GET", "/v1/me", None),
    ("GET", "/v1/positions", None),
    ("GET", "/v1/fills", None),
    ("GET", f"/v1/bars/{BAR}", None),
    ("GET", "/v1/events", None),
    ("POST", "/v1/intents", [intent("x1")]),
    ("POST", "/v1/returns", {"returns": [{"date": "2030-01-02", "value": 0.01}]}),
]


def _call(
    gw: Gateway, method: str, path: str, body: object, headers: dict[str, str]
) -> httpx.Response:
    return httpx.request(method, gw.base + path, json=body, headers=headers, timeout=10)


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_no_wrong_or_revoked_token_is_401_and_changes_nothing(
    gw: Gateway, method: str, path: str, body: object
) -> None:
    before = snapshot(gw.ledger)
    cases = {
        "none": {},
        "wrong": {"Authorization": "Bearer " + "x" * 43},
        "revoked": gw.headers("revoked"),
        "not bearer": {"Authorization": f"Basic {gw.tokens['A']}"},
        "too long": {"Authorization": "Bearer " + "y" * 5000},
    }
    for name, headers in cases.items():
        answer = _call(gw, method, path, body, headers)
        assert answer.status_code == 401, (name, answer.text)
        assert answer.headers["www-authenticate"] == "Bearer"
        for token in gw.tokens.values():
            assert token not in answer.text
    assert snapshot(gw.ledger) == before


def test_a_token_revoked_or_rotated_while_the_gateway_runs_is_refused_at_once(
    gw: Gateway,
) -> None:
    assert httpx.get(gw.base + "/v1/me", headers=gw.headers("A")).status_code == 200
    gw.ledger.revoke_tokens("A")
    assert httpx.get(gw.base + "/v1/me", headers=gw.headers("A")).status_code == 401
    old = gw.headers("B")
    new = gw.ledger.rotate_token("B")
    assert httpx.get(gw.base + "/v1/me", headers=old).status_code == 401
    fresh = httpx.get(gw.base + "/v1/me", headers={"Authorization": f"Bearer {new}"})
    assert fresh.json()["strategy"] == "B"


def test_a_token_acts_for_its_own_strategy_only(gw: Gateway) -> None:
    b_stored = httpx.post(
        gw.base + "/v1/intents", json=[intent("b-secret", qty="7")], headers=gw.headers("B")
    )
    assert b_stored.json()[0]["accepted"] is True
    before = snapshot(gw.ledger)
    # writing as B, with A's token: 403, nothing stored
    for path, body in [
        ("/v1/intents", [intent("a1", strategy="B")]),
        ("/v1/intents", [intent("a1"), intent("a2", strategy="B")]),
        ("/v1/returns", {"returns": [{"date": "2030-01-02", "value": 0.01, "strategy": "B"}]}),
        # a correction is the operator's
        (
            "/v1/returns",
            {"returns": [{"date": "2030-01-02", "value": 0.0}], "correction": True, "reason": "x"},
        ),
    ]:
        answer = httpx.post(gw.base + path, json=body, headers=gw.headers("A"))
        assert answer.status_code == 403, answer.text
    # the operator's token is not a strategy's
    for path in ("/v1/me", "/v1/positions", "/v1/events"):
        assert httpx.get(gw.base + path, headers=gw.headers("operator")).status_code == 403
    assert (
        httpx.post(
            gw.base + "/v1/intents", json=[intent("o1")], headers=gw.headers("operator")
        ).status_code
        == 403
    )
    # reading B's: A sees none of B's intents, and B's id is a conflict that tells nothing
    seen = httpx.get(gw.base + f"/v1/bars/{BAR}", headers=gw.headers("A")).json()
    assert seen["intents"] == []
    assert seen["refused"] == []
    assert seen["fills"] == []
    clash = httpx.post(
        gw.base + "/v1/intents", json=[intent("b-secret", qty="7")], headers=gw.headers("A")
    ).json()[0]
    assert clash["accepted"] is False
    assert clash["reason"] == "conflict"
    assert "B" not in clash["detail"].split()
    assert "7" not in clash["detail"]
    assert snapshot(gw.ledger) == before


def test_a_malformed_body_is_422_naming_the_field(gw: Gateway) -> None:
    before = snapshot(gw.ledger)
    cases = [
        ("/v1/intents", [intent("q", qty=10)], ["body", 0, "qty"]),  # a number, not its text
        (
            "/v1/intents",
            [{k: v for k, v in intent("s").items() if k != "symbol"}],
            ["body", 0, "symbol"],
        ),
        ("/v1/intents", [intent("ok"), intent("e", venue="x")], ["body", 1, "venue"]),
        ("/v1/intents", {"intent_id": "x"}, ["body"]),
        (
            "/v1/returns",
            {"returns": [{"date": "2030-01-02", "value": "abc"}]},
            ["body", "returns", 0, "value"],
        ),
        ("/v1/returns", {"returns": [{"date": "2030-01-02", "value": float("inf")}]}, ["body"]),
    ]
    for path, body, loc in cases:
        if path == "/v1/returns" and body["returns"][0]["value"] == float("inf"):
            answer = httpx.post(
                gw.base + path,
                content=b'{"returns": [{"date": "2030-01-02", "value": Infinity}]}',
                headers=gw.headers("A") | {"content-type": "application/json"},
            )
        else:
            answer = httpx.post(gw.base + path, json=body, headers=gw.headers("A"))
        assert answer.status_code == 422, answer.text
        locs = [e["loc"] for e in answer.json()["detail"]]
        assert any(found[: len(loc)] == loc for found in locs), (loc, locs)
    bad_bar = httpx.get(gw.base + "/v1/bars/not-a-bar", headers=gw.headers("A"))
    assert bad_bar.status_code == 422
    assert "bar" in bad_bar.text
    assert snapshot(gw.ledger) == before


def _chunks(size: int) -> Iterator[bytes]:
    yield b"["
    for _ in range(size // 1000):
        yield b" " * 1000
    yield b"]"


def test_an_oversized_body_is_413_and_what_was_accepted_stays(gw: Gateway) -> None:
    kept = httpx.post(gw.base + "/v1/intents", json=[intent("kept")], headers=gw.headers("A"))
    assert kept.json()[0]["accepted"] is True
    before = snapshot(gw.ledger)
    declared = httpx.post(
        gw.base + "/v1/intents",
        content=b"[" + b" " * 1_100_000 + b"]",
        headers=gw.headers("A") | {"content-type": "application/json"},
    )
    chunked = httpx.post(
        gw.base + "/v1/intents",
        content=_chunks(1_100_000),
        headers=gw.headers("A") | {"content-type": "application/json"},
    )
    for answer in (declared, chunked):
        assert answer.status_code == 413, answer.text
        assert "max_body_bytes" in answer.json()["detail"]
    rows = httpx.post(
        gw.base + "/v1/intents",
        json=[intent(f"r{i}") for i in range(10_001)],
        headers=gw.headers("A"),
    )
    assert rows.status_code == 413
    assert "max_rows" in rows.json()["detail"]
    assert snapshot(gw.ledger) == before
    assert [i.intent_id for i in gw.ledger.intents_for_bar(parse_bar(BAR))] == ["kept"]


def test_back_dated_and_settled_returns_are_refused_with_their_reason(gw: Gateway) -> None:
    gw.ledger.write_allocations(
        [
            AllocationRow(
                date="2030-01-02",
                strategy="A",
                capital=Decimal("1000"),
                final_weight=0.5,
                breaker_state="normal",
                benched=False,
            )
        ]
    )
    stored = httpx.post(
        gw.base + "/v1/returns",
        json={"returns": [{"date": "2030-01-07", "value": 0.01}]},
        headers=gw.headers("A"),
    ).json()
    assert stored[0]["accepted"] is True
    before = snapshot(gw.ledger)
    answer = httpx.post(
        gw.base + "/v1/returns",
        json={
            "returns": [
                {"date": "2030-01-02", "value": 0.02},  # allocations are published to it
                {"date": "2030-01-03", "value": 0.02},  # before the last stored (01-07)
                {"date": "2030-01-07", "value": 0.05},  # a restatement, not a correction
            ]
        },
        headers=gw.headers("A"),
    ).json()
    assert [a["reason"] for a in answer] == ["settled", "backdated", "restated"]
    assert all(not a["accepted"] and a["detail"] for a in answer)
    assert snapshot(gw.ledger) == before
    # the operator corrects it, and the journal says who and why
    fixed = httpx.post(
        gw.base + "/v1/returns",
        json={
            "returns": [{"date": "2030-01-07", "value": 0.015, "strategy": "A"}],
            "correction": True,
            "reason": "bot reported gross of fees",
        },
        headers=gw.headers("operator"),
    ).json()
    assert fixed[0]["accepted"] is True
    (entry,) = gw.ledger.corrections("A")
    assert (entry["old_value"], entry["new_value"]) == (0.01, 0.015)
    assert entry["corrected_by"] == "operator:ops"
    assert entry["reason"] == "bot reported gross of fees"
    no_reason = httpx.post(
        gw.base + "/v1/returns",
        json={
            "returns": [{"date": "2030-01-07", "value": 0.0, "strategy": "A"}],
            "correction": True,
        },
        headers=gw.headers("operator"),
    )
    assert no_reason.status_code == 422
    assert "reason" in no_reason.text


SQL = "x'); DROP TABLE intents; --"
HTML = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def test_sql_and_html_like_strings_are_stored_and_shown_as_inert_text(gw: Gateway) -> None:
    for text in (SQL, HTML):
        answer = httpx.post(gw.base + "/v1/intents", json=[intent(text)], headers=gw.headers("A"))
        assert answer.json() == [
            {"intent_id": text, "accepted": True, "reason": None, "detail": "stored"}
        ]
    shown = httpx.get(gw.base + f"/v1/bars/{BAR}", headers=gw.headers("A"))
    assert shown.headers["content-type"] == "application/json"
    assert sorted(i["intent_id"] for i in shown.json()["intents"]) == sorted([SQL, HTML])
    assert sorted(i.intent_id for i in gw.ledger.intents_for_bar(parse_bar(BAR))) == sorted(
        [SQL, HTML]
    )
    # a symbol that is SQL is only an unknown symbol
    refused = httpx.post(
        gw.base + "/v1/intents",
        json=[intent("s", symbol="SPY' OR '1'='1")],
        headers=gw.headers("A"),
    ).json()[0]
    assert refused["reason"] == "unknown_symbol"
    # a strategy named like HTML gets a token like any other, and its name comes back as text
    token = gw.ledger.add_strategy(HTML)
    me = httpx.get(gw.base + "/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["strategy"] == HTML
