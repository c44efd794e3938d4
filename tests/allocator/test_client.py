"""The gateway client's retries (safe: intent ids make POST idempotent) and its errors."""

from __future__ import annotations

import json

import httpx
import pytest

from allocator.client import GatewayClient, GatewayError, IntentIn

ANSWER = [{"intent_id": "i1", "accepted": True, "reason": None, "detail": "stored"}]


def _client(replies: list[object], seen: list[httpx.Request], retries: int = 3) -> GatewayClient:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        assert isinstance(reply, httpx.Response)
        return reply

    return GatewayClient(
        "http://gw", "tok", retries=retries, backoff_s=0, transport=httpx.MockTransport(handle)
    )


def test_a_lost_answer_or_a_busy_gateway_is_retried_with_the_same_body() -> None:
    seen: list[httpx.Request] = []
    replies: list[object] = [
        httpx.ConnectError("refused"),
        httpx.Response(503),
        httpx.Response(429, headers={"Retry-After": "0"}, json={"detail": "rate_per_s"}),
        httpx.Response(200, json=ANSWER),
    ]
    with _client(replies, seen) as client:
        (result,) = client.submit_intents([IntentIn("i1", "SPY", "etf", "10", "2030-01-02")])
    assert result.accepted
    assert len(seen) == 4
    assert len({r.content for r in seen}) == 1  # the same intents, the same ids, each time
    assert json.loads(seen[0].content)[0]["qty"] == "10"
    assert seen[0].headers["authorization"] == "Bearer tok"


def test_a_refusal_is_raised_at_once_and_retries_stop() -> None:
    seen: list[httpx.Request] = []
    replies: list[object] = [httpx.Response(403, json={"detail": "not yours"})]
    with _client(replies, seen) as client, pytest.raises(GatewayError) as refused:
        client.me()
    assert (refused.value.status, refused.value.detail, len(seen)) == (403, "not yours", 1)
    seen.clear()
    replies = [httpx.Response(503), httpx.Response(503)]
    with _client(replies, seen, retries=1) as client, pytest.raises(GatewayError) as busy:
        client.me()
    assert (busy.value.status, len(seen)) == (503, 2)
