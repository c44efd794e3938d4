"""The risk stage's scenarios on one bar (docs/spec-12-risk.md): each limit in isolation.

A runaway bot hits the per-bar cap while the others trade; a stale price refuses that symbol's
entries only; ``halt --venue alpaca`` stops Alpaca alone; each cap cuts with its reason, limit
and value.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from allocator.config import AllocatorConfig, RiskConfig, RiskLimits, RoutingConfig, VenueRiskLimits
from allocator.errors import ConfigError
from allocator.execution import DEFAULT_INSTRUMENTS, BarPlan, Intent, Reason, plan_bar
from allocator.execution.orders import AssetClass, Venue
from allocator.execution.risk import RiskInputs
from allocator.states import TradingState

from .helpers import BAR, intent

D = Decimal
NOW = datetime(2024, 5, 1, 15, 0, tzinfo=UTC)


def _risk(**kwargs: object) -> RiskInputs:
    base: dict[str, object] = {"planned_at": NOW}
    base.update(kwargs)
    return RiskInputs(**base)  # type: ignore[arg-type]


def _with_risk(
    intents: list[Intent],
    prices: dict[str, int],
    risk: RiskInputs,
    positions: dict[tuple[str, str], int | str] | None = None,
) -> BarPlan:
    return plan_bar(
        intents,
        bar=BAR,
        prices={k: D(str(v)) for k, v in prices.items()},
        positions={k: D(str(v)) for k, v in (positions or {}).items()},
        budgets=None,
        instruments=DEFAULT_INSTRUMENTS,
        routing=RoutingConfig(),
        total_capital=D(100_000),
        account="paper",
        risk=risk,
    )


def test_a_bot_of_10000_intents_hits_the_per_bar_cap_and_the_others_still_trade() -> None:
    bot = [intent(f"bot-{k:05d}", "bot", "SPY", 1) for k in range(10_000)]
    others = [
        intent("a1", "A", "QQQ", 5),
        intent("b1", "B", "SPY", -3),
        intent("b2", "B", "QQQ", 2),
    ]
    risk = _risk(config=RiskConfig(max_orders_per_bar=100))
    p = _with_risk(bot + others, {"SPY": 500, "QQQ": 400}, risk)
    gated = {g.intent_id: g for g in p.gated()}
    passed = [g for g in gated.values() if g.strategy == "bot" and g.accepted_qty != 0]
    refused = [g for g in gated.values() if g.strategy == "bot" and g.reason is Reason.RISK_RATE]
    assert len(passed) == 100
    assert {g.intent_id for g in passed} == {f"bot-{k:05d}" for k in range(100)}  # gating order
    assert len(refused) == 9_900
    assert all(g.limit == 100 and g.accepted_qty == 0 for g in refused)
    assert refused[0].value is not None
    assert refused[0].value > 100
    for i in ("a1", "b1", "b2"):
        assert gated[i].reason is None
        assert gated[i].accepted_qty == gated[i].requested_qty
    orders = {o.symbol: o for o in p.orders}
    assert orders["SPY"].qty == 97  # 100 bought by the bot, 3 sold by B
    assert orders["QQQ"].qty == 7
    assert len(p.risk_denials()) == 9_900


def test_a_stale_price_refuses_that_symbols_entries_and_only_that_symbols() -> None:
    config = RiskConfig(max_price_age_s=30)
    risk = _risk(
        config=config,
        price_times={"SPY": NOW - timedelta(seconds=31), "QQQ": NOW - timedelta(seconds=2)},
    )
    intents = [
        intent("a1", "A", "SPY", 10),  # entry: refused
        intent("a2", "A", "QQQ", 10),  # entry on a fresh price: passes
        intent("b1", "B", "SPY", -8),  # B holds 5: the exit part 5 passes, the flip is refused
    ]
    p = _with_risk(intents, {"SPY": 500, "QQQ": 400}, risk, positions={("B", "SPY"): 5})
    got = {g.intent_id: g for g in p.gated()}
    assert (got["a1"].accepted_qty, got["a1"].reason) == (0, Reason.RISK_PRICE)
    assert got["a1"].limit == 30
    assert got["a1"].value == 31
    assert "31.0 s old" in got["a1"].detail
    assert (got["a2"].accepted_qty, got["a2"].reason) == (10, None)
    assert (got["b1"].accepted_qty, got["b1"].reason) == (-5, Reason.RISK_PRICE)
    assert {o.symbol: o.qty for o in p.orders} == {"SPY": 5, "QQQ": 10}
    # A price with no known time fails closed; one that moved too far is refused too.
    unknown = _with_risk([intent("c", "C", "QQQ", 1)], {"QQQ": 400}, _risk(config=config))
    assert unknown.gated()[0].reason is Reason.RISK_PRICE
    moved = _risk(config=RiskConfig(max_price_move=D("0.1")), previous_prices={"QQQ": D(300)})
    p = _with_risk([intent("c", "C", "QQQ", 1)], {"QQQ": 400}, moved)
    (g,) = p.gated()
    assert (g.reason, g.limit, g.value) == (Reason.RISK_PRICE, D("0.1"), D("0.333333"))


def test_halt_venue_alpaca_stops_alpaca_alone() -> None:
    risk = _risk(venue_states={Venue.ALPACA: TradingState.HALTED})
    intents = [
        intent("a1", "A", "SPY", 10),
        intent("a2", "A", "BTC/USDT", "0.5"),
        intent("b1", "B", "SPY", -4),  # an exit on Alpaca: halted means nothing is sent
    ]
    p = _with_risk(intents, {"SPY": 500, "BTC/USDT": 60_000}, risk, positions={("B", "SPY"): 4})
    assert [(o.symbol, o.venue) for o in p.orders] == [("BTC/USDT", Venue.CCXT)]
    got = {g.intent_id: g for g in p.gated()}
    assert got["a1"].reason is Reason.HALTED
    assert got["b1"].reason is Reason.HALTED
    assert "venue alpaca is halted" in got["a1"].detail
    assert got["a2"].reason is None


def test_reducing_lets_exits_out_but_no_symbols_net_grows() -> None:
    risk = _risk(trading_state=TradingState.REDUCING, state_detail="reducing by ops: test")
    # A long 10, B short 10: the book is flat in SPY. A's exit alone would make it short.
    positions = {("A", "SPY"): 10, ("B", "SPY"): -10, ("A", "QQQ"): 6}
    intents = [
        intent("a1", "A", "SPY", -10),
        intent("b1", "B", "SPY", 4),
        intent("a2", "A", "QQQ", -6),
        intent("c1", "C", "QQQ", 3),  # an entry: refused
    ]
    p = _with_risk(intents, {"SPY": 500, "QQQ": 400}, risk, positions=positions)
    got = {g.intent_id: g for g in p.gated()}
    assert got["c1"].accepted_qty == 0
    assert got["c1"].reason is Reason.REDUCING
    assert got["a2"].accepted_qty == -6
    assert got["a2"].reason is None
    # SPY's net may not move off 0: A's exit is cut to B's 4.
    assert got["a1"].accepted_qty == -4
    assert got["a1"].reason is Reason.REDUCING
    assert got["b1"].accepted_qty == 4
    assert {o.symbol for o in p.orders} == {"QQQ"}


def test_order_and_position_caps_cut_with_reason_limit_and_value() -> None:
    config = RiskConfig(
        max_order_notional=D(10_000),
        instruments={"QQQ": RiskLimits(max_order_qty=D(5))},
        max_symbol_position=D(15_000),
    )
    intents = [intent("a1", "A", "SPY", 30), intent("b1", "B", "QQQ", 9)]
    p = _with_risk(intents, {"SPY": 500, "QQQ": 400}, _risk(config=config))
    got = {g.intent_id: g for g in p.gated()}
    # SPY: 30 × 500 = 15,000 > 10,000 -> 20 (the position cap allows 30).
    assert (got["a1"].accepted_qty, got["a1"].reason) == (20, Reason.RISK_NOTIONAL)
    assert (got["a1"].limit, got["a1"].value) == (D(10_000), D(15_000))
    assert (got["b1"].accepted_qty, got["b1"].reason) == (5, Reason.RISK_QTY)
    # The book already holds 25 SPY: 30 × 500 = 15,000 of room -> 5 more.
    p = _with_risk(
        [intent("a1", "A", "SPY", 10)],
        {"SPY": 500},
        _risk(config=config),
        positions={("Z", "SPY"): 25},
    )
    (g,) = p.gated()
    assert (g.accepted_qty, g.reason, g.limit) == (5, Reason.RISK_POSITION, D(15_000))


def test_gross_exposure_and_the_venue_rate_limit() -> None:
    config = RiskConfig(max_gross_exposure=D("0.1"))  # 10,000 of 100,000
    intents = [intent("a1", "A", "QQQ", 20), intent("a2", "A", "SPY", 20)]
    p = _with_risk(intents, {"SPY": 500, "QQQ": 400}, _risk(config=config))
    got = {g.intent_id: g for g in p.gated()}
    # Symbol order: QQQ takes 8,000, SPY gets what is left (2,000 = 4 shares).
    assert (got["a1"].accepted_qty, got["a1"].reason) == (20, None)
    assert (got["a2"].accepted_qty, got["a2"].reason) == (4, Reason.RISK_EXPOSURE)
    rated = RiskConfig(venues={"alpaca": VenueRiskLimits(orders_per_minute=3)})
    risk = _risk(config=rated, recent_orders={Venue.ALPACA: (0, 2)})  # 2 sent this minute
    three = [intent("a", "A", "SPY", 1), intent("b", "A", "QQQ", 1), intent("c", "A", "IWM", 1)]
    p = _with_risk(three, {"SPY": 500, "QQQ": 400, "IWM": 200}, risk)
    assert [o.symbol for o in p.orders] == ["IWM"]  # one left of 3; the rest risk_rate
    refused = [g for g in p.gated() if g.reason is Reason.RISK_RATE]
    assert {g.symbol for g in refused} == {"QQQ", "SPY"}
    assert "orders_per_minute 3 with 2 sent" in refused[0].detail


def test_the_risk_config_is_validated_like_the_rest() -> None:
    config = AllocatorConfig.from_mapping(
        {
            "risk": {
                "max_order_notional": "50000.10",
                "asset_classes": {"etf": {"max_order_qty": 100}},
                "instruments": {"SPY": {"max_order_notional": 1000}},
                "venues": {"alpaca": {"orders_per_second": 5}},
                "kill_drawdown": -0.1,
            }
        }
    ).risk
    assert config.max_order_notional == D("50000.10")
    assert config.limits_for("SPY", "etf") == RiskLimits(
        max_order_notional=D(1000), max_order_qty=D(100)
    )
    assert config.limits_for("QQQ", "etf").max_order_notional == D("50000.10")
    assert config.venues["alpaca"].orders_per_minute == 200  # Alpaca's default is kept
    assert config.venues["alpaca"].orders_per_second == 5.0
    assert RiskConfig().venues["alpaca"].orders_per_minute == 200
    for raw, message in [
        ({"max_order_notional": -1}, r"^risk\.max_order_notional: must lie in \(0, "),
        ({"instruments": {"SPY": {"max_order_qty": 0}}}, r"^risk\.instruments\.SPY\.max_order_qty"),
        ({"venues": {"alpaca": {"orders_per_minute": 0}}}, r"^risk\.venues\.alpaca\.orders_per"),
        ({"venues": {"nasdaq": {}}}, r"^risk\.venues\.nasdaq: unknown venue"),
        ({"asset_classes": {"bond": {}}}, r"^risk\.asset_classes\.bond: unknown asset class"),
        ({"kill_drawdown": 0.5}, r"^risk\.kill_drawdown: must lie in \(-1, 0\)"),
        ({"max_orders_per_bar": 1.5}, r"^risk\.max_orders_per_bar: must be a whole number"),
        ({"max_price_age_s": True}, r"^risk\.max_price_age_s: must be a number"),
        ({"nope": 1}, r"^risk\.nope: unknown key"),
        ({"instruments": {"SPY": {"x": 1}}}, r"^risk\.instruments\.SPY\.x: unknown key"),
    ]:
        with pytest.raises(ConfigError, match=message):
            AllocatorConfig.from_mapping({"risk": raw})


def test_the_config_names_every_asset_class_and_venue_of_the_core() -> None:
    from allocator.config import RISK_ASSET_CLASSES, RISK_VENUES

    assert set(RISK_ASSET_CLASSES) == {a.value for a in AssetClass}
    assert set(RISK_VENUES) == {v.value for v in Venue}


def test_the_kill_switch_rules_and_the_equity_mark() -> None:
    from allocator.execution.risk import RiskMark, book_equity, kill_switch

    config = RiskConfig(kill_drawdown=D("-0.10"), kill_daily_loss=D("-0.05"))

    def mark(equity: int, peak: int, start: int) -> RiskMark:
        return RiskMark(
            bar="2024-05-02",
            session="2024-05-02",
            epoch=0,
            equity=D(equity),
            peak=D(peak),
            session_start=D(start),
        )

    assert kill_switch(mark(91_000, 100_000, 91_000), config) is None
    assert "kill_drawdown" in (kill_switch(mark(90_000, 100_000, 90_000), config) or "")
    # Down 5% since the session's start (95,000 -> 90,250), 9.75% from the peak: daily loss.
    daily = kill_switch(mark(90_250, 100_000, 95_000), config)
    assert daily is not None
    assert "kill_daily_loss" in daily
    assert kill_switch(mark(90_251, 100_000, 95_000), config) is None
    # Equity: capital + cash + positions at the bar's price, else the previous price.
    positions = {("A", "SPY"): D(10), ("B", "QQQ"): D(-2)}
    cash = {"A": D(-5_000), "B": D(800)}
    got = book_equity(D(100_000), cash, positions, {"SPY": D(510)}, {"QQQ": D(400)})
    assert got == D(100_000) - 5_000 + 800 + 5_100 - 800
    assert book_equity(D(100_000), cash, positions, {"SPY": D(510)}, {}) is None


def test_orders_per_second_paces_the_venue_sends() -> None:
    from allocator.execution.bar import _pacing
    from allocator.execution.lifecycle import RateLimit

    paced = _pacing(RiskConfig(venues={"ccxt": VenueRiskLimits(orders_per_second=4)}))
    assert set(paced) == {Venue.CCXT}  # Alpaca's default is per minute: enforced by the plan
    assert isinstance(paced[Venue.CCXT], RateLimit)
    assert (paced[Venue.CCXT].orders_per_second, paced[Venue.CCXT].burst) == (4.0, 4)
    assert _pacing(None) == {}


def test_the_alert_webhook_setting_is_an_http_url_and_never_echoed() -> None:
    from allocator.settings import load_settings

    url = "https://hooks.example.invalid/services/T000/B000/secret"
    assert load_settings(env={"ALLOCATOR_ALERT_WEBHOOK": url}).alert_webhook == url
    with pytest.raises(ConfigError, match=r"^alert_webhook: must be an http") as caught:
        load_settings(env={"ALLOCATOR_ALERT_WEBHOOK": "ftp://x/secret-token"})
    assert "secret-token" not in str(caught.value)
