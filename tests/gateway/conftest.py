"""A gateway on real HTTP over a fresh ledger (both backends), with two strategies and the
operator, and a snapshot of every ledger table to prove a refused request changed nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from allocator.settings import Settings, load_settings
from resources.ledger import Ledger
from resources.ledger import schema as t
from tests.gateway.server import running_gateway

BAR = "2030-01-02"  # in the future: never stale


@pytest.fixture(autouse=True)
def heap_freezes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record where the gateway freezes its heap (gateway/heap.py) instead of freezing this
    test process's: objects frozen here would outlive the test that made them."""
    calls: list[str] = []

    def recorder(where: str) -> Any:
        return lambda: calls.append(where) or 0

    monkeypatch.setattr("gateway.app.freeze_long_lived", recorder("app"))
    monkeypatch.setattr("gateway.launch.freeze_long_lived", recorder("launcher"))
    return calls


@dataclass
class Gateway:
    base: str
    url: str
    ledger: Ledger
    tokens: dict[str, str]  # "A", "B", "operator", "revoked"

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def snapshot(ledger: Ledger) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every ledger table (sorted): equal before and after means unchanged."""
    out = {}
    with ledger.engine.connect() as conn:
        for table in t.metadata.sorted_tables:
            rows = conn.execute(sa.select(table)).all()
            out[table.name] = sorted(tuple(map(repr, r)) for r in rows)
    return out


def gateway_settings(url: str, **gateway: Any) -> Settings:
    from allocator.config import AllocatorConfig

    settings = load_settings(env={}, ledger_url=url)
    if gateway:
        config = AllocatorConfig.from_mapping({"gateway": gateway})
        from dataclasses import replace

        settings = replace(settings, config=replace(settings.config, gateway=config.gateway))
    return settings


@pytest.fixture
def gateway_limits() -> dict[str, Any]:
    """``[gateway]`` keys for the test's server (override in a test module)."""
    return {}


@pytest.fixture
def gw(ledger_url: str, gateway_limits: dict[str, Any]) -> Iterator[Gateway]:
    ledger = Ledger(ledger_url)
    tokens = {
        "A": ledger.add_strategy("A"),
        "B": ledger.add_strategy("B"),
        "revoked": ledger.add_strategy("C"),
        "operator": ledger.issue_operator_token("ops"),
    }
    ledger.revoke_tokens("C")
    try:
        with running_gateway(gateway_settings(ledger_url, **gateway_limits)) as base:
            yield Gateway(base=base, url=ledger_url, ledger=ledger, tokens=tokens)
    finally:
        ledger.close()


def intent(intent_id: str, qty: str = "10", bar: str = BAR, **extra: Any) -> dict[str, Any]:
    return {
        "intent_id": intent_id,
        "symbol": "SPY",
        "asset_class": "etf",
        "qty": qty,
        "bar": bar,
    } | extra
