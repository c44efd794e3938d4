"""The risk stage's denials and the trading states as the UI and the dashboard show them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from allocator.dashboard import RiskView, risk_html
from allocator.execution.reasons import Reason
from allocator.execution.records import GatedIntent
from allocator.execution.risk import StateChange, TradingStatus
from allocator.states import TradingState
from assets.risk import risk_metadata, trading_verdict

D = Decimal
AT = datetime(2024, 5, 1, 15, 0, tzinfo=UTC)


def _halt(scope: str) -> StateChange:
    return StateChange(
        id=1,
        scope=scope,
        state=TradingState.HALTED,
        by="ops",
        reason="outage <b>",
        source="operator",
        bar=None,
        at=AT,
    )


def test_bar_plan_metadata_lists_each_denial_with_its_limit_and_value() -> None:
    denial = GatedIntent(
        intent_id="a1",
        strategy="A",
        symbol="SPY",
        requested_qty=D(30),
        accepted_qty=D(20),
        reason=Reason.RISK_NOTIONAL,
        detail="SPY: the net order 30 × 500 = 15000 would exceed max_order_notional 10000",
        limit=D(10_000),
        value=D(15_000),
    )
    status = TradingStatus(changes={"alpaca": _halt("alpaca")})
    meta = risk_metadata([denial], status)
    assert meta["trading_state"] == "active"
    assert meta["venue_states"].data["alpaca"] == "halted"
    assert meta["risk_denials"] == 1
    assert meta["risk_denials_by_reason"].data == {"risk_notional": 1}
    table = meta["risk_denial_rows"].md_str
    assert "| a1 |" in table
    assert "10000" in table
    assert "15000" in table
    passed, description, _ = trading_verdict(status)
    assert not passed
    assert "alpaca halted" in description


def test_the_dashboard_shows_the_state_and_the_denials_escaped() -> None:
    view = RiskView(
        trading_state="reducing",
        venue_states={"alpaca": "halted", "ccxt": "active"},
        detail="reducing by kill_switch: <drawdown>",
        denials=(
            {"bar": "2024-05-01", "intent_id": "a1", "reason": "reducing", "detail": "<script>"},
        ),
        counts={"reducing": 3},
    )
    page = risk_html(view)
    assert "Trading state: <span style='color:#ff7f0e'>reducing</span>" in page
    assert "&lt;script&gt;" in page
    assert "<script>" not in page
    assert "reducing 3" in page
    assert "alpaca <b style='color:#d62728'>halted</b>" in page
