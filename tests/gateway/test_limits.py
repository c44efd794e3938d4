"""The per-strategy request rate of the gateway (``[gateway] rate_per_s``, ``burst``)."""

from __future__ import annotations

import httpx
import pytest

from allocator.client import GatewayClient, GatewayError
from allocator.execution.records import parse_bar
from tests.gateway.conftest import BAR, Gateway, intent


@pytest.fixture
def gateway_limits() -> dict[str, object]:
    return {"rate_per_s": 0.2, "burst": 2}


def test_a_fast_caller_is_429_naming_the_limit_and_loses_nothing(gw: Gateway) -> None:
    answers = [
        httpx.post(gw.base + "/v1/intents", json=[intent(f"r{i}")], headers=gw.headers("A"))
        for i in range(3)
    ]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert "rate_per_s" in answers[2].json()["detail"]
    assert int(answers[2].headers["retry-after"]) >= 1
    # the other strategy has its own bucket
    assert httpx.get(gw.base + "/v1/me", headers=gw.headers("B")).status_code == 200
    assert sorted(i.intent_id for i in gw.ledger.intents_for_bar(parse_bar(BAR))) == ["r0", "r1"]
    with GatewayClient(gw.base, gw.tokens["A"], retries=0) as client:
        with pytest.raises(GatewayError) as refused:
            client.me()
        assert refused.value.status == 429
