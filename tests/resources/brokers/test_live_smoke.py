"""Opt-in smoke tests against real **paper** accounts: ``allocator broker submit`` then
``lookup``, and a second submit of the same client order id that must not place a second order.

Skipped unless ``ALLOCATOR_LIVE_SMOKE=1`` and the venue's credentials are set:

- Alpaca paper: ``ALPACA_API_KEY``, ``ALPACA_SECRET_KEY`` (optional ``ALPACA_BASE_URL``);
  order ``ALPACA_SMOKE_SYMBOL`` [SPY] x ``ALPACA_SMOKE_QTY`` [0.01] (fractional, DAY).
- ccxt sandbox/testnet: ``CCXT_EXCHANGE``, ``CCXT_API_KEY``, ``CCXT_SECRET`` (optional
  ``CCXT_PASSWORD``, ``CCXT_BASE_URL``); order ``CCXT_SMOKE_SYMBOL`` [BTC/USDT] x
  ``CCXT_SMOKE_QTY`` [0.0001].
- IB paper TWS/Gateway: ``IB_HOST``, ``IB_PORT``, ``IB_CLIENT_ID``; order ``IB_SMOKE_SYMBOL``
  [SPY] (``IB_SMOKE_ASSET_CLASS`` [etf]) x ``IB_SMOKE_QTY`` [1].

A venue whose mode variable (``ALPACA_MODE``, ``CCXT_MODE``, ``IB_MODE``) says ``live`` is
refused: these tests place real orders and run on paper accounts only; an unset mode variable
(``sim`` by default) is set to ``paper`` for them. Each run uses a new
client order id (from the current UTC time); the orders are journaled in a private ledger. An
order still open at the end (a closed market) is cancelled; a filled one is left in the paper
account (a tiny long position). The commands run as subprocesses of the installed CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from allocator.execution.orders import Side, client_order_id
from resources.ledger import Ledger

FLAG = "ALLOCATOR_LIVE_SMOKE"


@dataclass(frozen=True)
class Smoke:
    venue: str
    credentials: tuple[str, ...]
    mode_variable: str
    symbol: tuple[str, str]  # (variable, default)
    asset_class: tuple[str, str]
    qty: tuple[str, str]

    def value(self, pair: tuple[str, str]) -> str:
        return os.environ.get(pair[0]) or pair[1]


VENUES = [
    Smoke(
        "alpaca",
        ("ALPACA_API_KEY", "ALPACA_SECRET_KEY"),
        "ALPACA_MODE",
        ("ALPACA_SMOKE_SYMBOL", "SPY"),
        ("ALPACA_SMOKE_ASSET_CLASS", "etf"),
        ("ALPACA_SMOKE_QTY", "0.01"),
    ),
    Smoke(
        "ccxt",
        ("CCXT_EXCHANGE", "CCXT_API_KEY", "CCXT_SECRET"),
        "CCXT_MODE",
        ("CCXT_SMOKE_SYMBOL", "BTC/USDT"),
        ("CCXT_SMOKE_ASSET_CLASS", "crypto"),
        ("CCXT_SMOKE_QTY", "0.0001"),
    ),
    Smoke(
        "ibkr",
        ("IB_HOST", "IB_PORT", "IB_CLIENT_ID"),
        "IB_MODE",
        ("IB_SMOKE_SYMBOL", "SPY"),
        ("IB_SMOKE_ASSET_CLASS", "etf"),
        ("IB_SMOKE_QTY", "1"),
    ),
]


def skip_reason(smoke: Smoke, env: dict[str, str]) -> str | None:
    """Why this venue's smoke test does not run here (``None``: it runs)."""
    missing = [n for n in smoke.credentials if not env.get(n)]
    if env.get(FLAG) != "1":
        missing.insert(0, FLAG)
    if missing:
        return (
            f"live smoke for {smoke.venue} is opt-in: set {FLAG}=1 and "
            f"{', '.join(smoke.credentials)} (paper account); missing: {', '.join(missing)}"
        )
    if (env.get(smoke.mode_variable) or "paper") != "paper":
        return f"{smoke.mode_variable}={env[smoke.mode_variable]}: smoke tests use paper only"
    return None


def _paper_env() -> dict[str, str]:
    """The environment with every unset mode variable at ``paper`` (the default is ``sim``)."""
    env = dict(os.environ)
    for smoke in VENUES:
        env[smoke.mode_variable] = env.get(smoke.mode_variable) or "paper"
    return env


def _cli(*args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "broker", *args],
        env=_paper_env(),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"no output (exit {done.returncode}): {done.stderr}"
    return done.returncode, json.loads(lines[-1])


@pytest.mark.parametrize("smoke", VENUES, ids=[s.venue for s in VENUES])
def test_submit_lookup_and_idempotent_resubmit(smoke: Smoke) -> None:
    reason = skip_reason(smoke, dict(os.environ))
    if reason is not None:
        pytest.skip(reason)
    symbol = smoke.value(smoke.symbol)
    bar = datetime.now(UTC).strftime("smoke-%Y%m%dT%H%M%S.%f")
    cid = client_order_id("smoke", bar, symbol, Side.BUY)
    submit = ["submit", "--venue", smoke.venue, "--symbol", symbol, "--side", "buy"]
    submit += ["--asset-class", smoke.value(smoke.asset_class), "--qty", smoke.value(smoke.qty)]
    submit += ["--client-order-id", cid, "--account", "smoke"]
    code, first = _cli(*submit)
    assert code == 0, first
    assert first["mode"] == "paper"
    assert first["order"]["client_order_id"] == cid
    assert first["placed_by_this_call"] is True

    code, found = _cli(
        "lookup", "--venue", smoke.venue, "--symbol", symbol, "--client-order-id", cid
    )
    assert code == 0, found
    assert found["found"] is True
    assert found["order"]["venue_order_id"] == first["order"]["venue_order_id"]

    code, second = _cli(*submit)
    assert code == 0, second
    assert second["placed_by_this_call"] is False
    assert second["order"]["venue_order_id"] == first["order"]["venue_order_id"]

    ledger = Ledger(os.environ["ALLOCATOR_LEDGER_URL"])
    try:
        (row,) = [o for o in ledger.orders() if o["client_order_id"] == cid]
    finally:
        ledger.close()
    assert (row["mode"], row["venue"], row["bar"]) == ("paper", smoke.venue, "manual")
    assert row["state"] == second["state"]

    if second["state"] in ("submitted", "partially_filled"):  # a closed market: tidy up
        from allocator.settings import load_settings
        from resources.brokers.registry import operator_venue

        broker = operator_venue(smoke.venue, load_settings(), env=_paper_env())
        try:
            broker.cancel(symbol, cid)
        finally:
            close = getattr(broker, "close", None)
            if callable(close):
                close()


def test_skip_reasons_name_the_variables() -> None:
    """Without the opt-in, each venue's reason names exactly what to set."""
    reasons = {s.venue: skip_reason(s, {}) for s in VENUES}
    assert reasons["alpaca"] is not None
    assert "ALLOCATOR_LIVE_SMOKE=1 and ALPACA_API_KEY, ALPACA_SECRET_KEY" in reasons["alpaca"]
    assert "CCXT_EXCHANGE, CCXT_API_KEY, CCXT_SECRET" in str(reasons["ccxt"])
    assert "IB_HOST, IB_PORT, IB_CLIENT_ID" in str(reasons["ibkr"])
    live = {FLAG: "1", "IB_HOST": "h", "IB_PORT": "7497", "IB_CLIENT_ID": "1", "IB_MODE": "live"}
    assert skip_reason(VENUES[2], live) == "IB_MODE=live: smoke tests use paper only"
    assert skip_reason(VENUES[2], {**live, "IB_MODE": "paper"}) is None


def test_the_smoke_test_itself_against_the_alpaca_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    """The opt-in path, run offline: the same test body against the local Alpaca fake."""
    from tests.fakes.fake_alpaca import FakeAlpaca

    fake = FakeAlpaca().start()
    try:
        monkeypatch.setenv(FLAG, "1")
        monkeypatch.setenv("ALPACA_API_KEY", fake.key)
        monkeypatch.setenv("ALPACA_SECRET_KEY", fake.secret)
        monkeypatch.setenv("ALPACA_BASE_URL", fake.url)
        monkeypatch.setenv("ALPACA_SMOKE_QTY", "2")
        test_submit_lookup_and_idempotent_resubmit(VENUES[0])
        assert len(fake.orders) == 1
    finally:
        fake.stop()
