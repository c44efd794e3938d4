"""The risk stage around the ledger (docs/spec-12-risk.md), on both stores.

The kill switch trips at the bar whose equity crosses ``kill_drawdown`` and ``resume`` clears
it; an operator's halt after the plan is frozen takes effect at send time; ``allocator halt
--venue alpaca`` stops Alpaca alone, and ``allocator book --json`` shows the states and the
denials; the journal keeps who and why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from allocator.config import RiskConfig, RoutingConfig
from allocator.execution import DEFAULT_INSTRUMENTS, Intent, Reason, parse_bar, run_bar
from allocator.execution.bar import load_or_freeze_plan
from allocator.execution.orders import Venue
from allocator.execution.risk import RATE_WINDOWS_S
from allocator.states import TradingState
from cli.main import main
from resources.brokers.paper.client import PaperBroker
from resources.ledger import Ledger, LedgerPaperState

D = Decimal


def _intent(i: str, s: str, m: str, q: str | int, bar: str) -> Intent:
    return Intent(
        intent_id=i,
        strategy=s,
        symbol=m,
        asset_class=DEFAULT_INSTRUMENTS[m].asset_class,
        qty=D(str(q)),
        bar=parse_bar(bar),
    )


def _brokers(ledger: Ledger) -> dict[Venue, PaperBroker]:
    state = LedgerPaperState(ledger)
    return {v: PaperBroker(venue=v, instruments=DEFAULT_INSTRUMENTS, state=state) for v in Venue}


def _run(ledger: Ledger, bar: str, prices: Mapping[str, str | int], risk: RiskConfig | None) -> Any:
    return run_bar(
        ledger=ledger,
        brokers=_brokers(ledger),
        bar=parse_bar(bar),
        prices={k: D(str(v)) for k, v in prices.items()},
        budgets=None,
        instruments=DEFAULT_INSTRUMENTS,
        routing=RoutingConfig(),
        total_capital=D(100_000),
        account="paper",
        cash_quantum=D("0.00000001"),
        lookup_delay_s=0.0,
        risk=risk,
    )


def _outcome(run: Any) -> dict[str, tuple[Decimal, Reason | None]]:
    return {g.intent_id: (g.accepted_qty, g.reason) for g in run.outcome.gated}


def test_the_kill_switch_trips_at_the_right_bar_and_resume_clears_it(
    ledger: Ledger, ledger_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    risk = RiskConfig(kill_drawdown=D("-0.10"))
    days = ["2024-05-01", "2024-05-02", "2024-05-03", "2024-05-06", "2024-05-07"]
    # A buys 100 SPY at 500; the price falls 4% then 20%: equity 100,000 -> 98,000 -> 90,000.
    path = [500, 480, 400, 410, 405]
    ledger.submit_intents([_intent("a1", "A", "SPY", 100, days[0])], source="t")
    _run(ledger, days[0], {"SPY": path[0]}, risk)
    ledger.submit_intents([_intent("a2", "A", "SPY", 1, days[1])], source="t")
    second = _run(ledger, days[1], {"SPY": path[1]}, risk)
    assert _outcome(second)["a2"] == (1, None)
    assert ledger.trading_status().book is TradingState.ACTIVE
    ledger.submit_intents([_intent("a3", "A", "SPY", 1, days[2])], source="t")
    third = _run(ledger, days[2], {"SPY": path[2]}, risk)
    # The bar whose mark crosses -10% is the first one planned reducing.
    assert _outcome(third)["a3"] == (0, Reason.REDUCING)
    status = ledger.trading_status()
    assert status.book is TradingState.REDUCING
    change = status.changes["book"]
    assert (change.by, change.source, change.bar) == ("kill_switch", "kill_switch", days[2])
    assert "kill_drawdown -0.10" in change.reason
    marks = {m.bar: m for m in ledger.risk_marks()}
    assert marks[days[1]].drawdown > D("-0.10")
    assert marks[days[2]].drawdown <= D("-0.10")
    # Latched: the price recovers a little, entries stay refused, exits pass.
    ledger.submit_intents(
        [_intent("a4", "A", "SPY", 1, days[3]), _intent("a5", "A", "SPY", -10, days[3])],
        source="t",
    )
    fourth = _run(ledger, days[3], {"SPY": path[3]}, risk)
    assert _outcome(fourth) == {"a4": (0, Reason.REDUCING), "a5": (-10, None)}
    assert (
        main(["resume", "--reason", "losses understood", "--by", "ops", "--ledger", ledger_url])
        == 0
    )
    assert "the book: active" in capsys.readouterr().out
    ledger.submit_intents([_intent("a6", "A", "SPY", 1, days[4])], source="t")
    fifth = _run(ledger, days[4], {"SPY": path[4]}, risk)
    assert _outcome(fifth)["a6"] == (1, None)  # the resume re-based the peak: no new trip
    assert ledger.trading_status().book is TradingState.ACTIVE
    rows = ledger.state_changes()
    assert [(r.state, r.source) for r in rows] == [
        (TradingState.REDUCING, "kill_switch"),
        (TradingState.ACTIVE, "operator"),
    ]
    assert rows[1].by == "ops (allocator resume)"
    assert rows[1].reason == "losses understood"
    denials = ledger.risk_denials()
    assert {(d.bar, d.intent_id, d.reason) for d in denials} == {
        (days[2], "a3", Reason.REDUCING),
        (days[3], "a4", Reason.REDUCING),
    }


def test_a_halt_after_the_plan_is_frozen_takes_effect_at_send_time(ledger: Ledger) -> None:
    bar = parse_bar("2024-05-01")
    ledger.submit_intents(
        [_intent("a1", "A", "SPY", 10, bar.key), _intent("b1", "B", "QQQ", 5, bar.key)],
        source="t",
    )
    frozen = load_or_freeze_plan(
        ledger,
        bar,
        prices={"SPY": D(500), "QQQ": D(400)},
        budgets=None,
        instruments=DEFAULT_INSTRUMENTS,
        routing=RoutingConfig(),
        total_capital=D(100_000),
        account="paper",
    )
    assert len(frozen.orders) == 2
    ledger.set_trading_state(TradingState.HALTED, by="ops", reason="venue outage")
    run = _run(ledger, bar.key, {}, RiskConfig())
    assert run.orders == ()
    assert ledger.orders(bar) == []
    assert _outcome(run) == {"a1": (0, Reason.HALTED), "b1": (0, Reason.HALTED)}
    gate = ledger.send_gate(bar)
    assert gate is not None
    assert gate.trading_state is TradingState.HALTED
    assert "venue outage" in gate.state_detail
    sent = ledger.risk_denials(bar)
    assert {(d.stage, d.intent_id, d.reason) for d in sent} == {
        ("send", "a1", Reason.HALTED),
        ("send", "b1", Reason.HALTED),
    }
    assert ledger.bar_done(bar)


def test_halt_venue_alpaca_stops_alpaca_alone_and_book_json_shows_it(
    ledger: Ledger, ledger_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "halt",
            "--venue",
            "alpaca",
            "--reason",
            "maintenance",
            "--by",
            "ops",
            "--ledger",
            ledger_url,
        ]
    )
    assert code == 0
    capsys.readouterr()
    bar = "2024-05-01"
    ledger.submit_intents(
        [_intent("a1", "A", "SPY", 10, bar), _intent("a2", "A", "BTC/USDT", "0.5", bar)],
        source="t",
    )
    run = _run(ledger, bar, {"SPY": 500, "BTC/USDT": 60_000}, RiskConfig())
    assert [(o.symbol, o.venue) for o in run.orders] == [("BTC/USDT", Venue.CCXT)]
    assert [r["venue"] for r in ledger.orders(parse_bar(bar))] == ["ccxt"]
    assert _outcome(run)["a1"] == (0, Reason.HALTED)
    assert main(["book", "--json", "--ledger", ledger_url]) == 0
    book = json.loads(capsys.readouterr().out)
    assert book["trading_state"] == "active"
    assert book["venue_states"] == {"alpaca": "halted", "ccxt": "active", "ibkr": "active"}
    (denial,) = book["last_denials"]
    assert (denial["intent_id"], denial["reason"], denial["stage"]) == ("a1", "halted", "plan")
    assert "venue alpaca is halted" in denial["detail"]
    assert "maintenance" in denial["detail"]


def test_the_journal_refuses_a_change_without_who_or_why(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="who"):
        ledger.set_trading_state(TradingState.HALTED, by=" ", reason="x")
    with pytest.raises(ValueError, match="'nasdaq' is not a valid Venue"):
        ledger.set_trading_state(TradingState.HALTED, by="a", reason="x", venue="nasdaq")


def test_recent_orders_count_earlier_bars_within_each_window_of_bar_time(ledger: Ledger) -> None:
    # Three intraday bars a few seconds apart; the window is bar time, not the wall clock.
    keys = ["2024-05-01T14:30:00Z", "2024-05-01T14:30:30Z", "2024-05-01T14:31:20Z"]
    for n, key in enumerate(keys):
        ledger.submit_intents([_intent(f"x{n}", "A", "SPY", 1, key)], source="t")
        _run(ledger, key, {"SPY": 500}, RiskConfig())
    counts = ledger.recent_venue_orders(parse_bar("2024-05-01T14:31:25Z"), RATE_WINDOWS_S)
    assert counts == {Venue.ALPACA: (0, 2)}  # 14:30:30 and 14:31:20 are within 60 s


def test_the_price_collar_compares_with_the_previous_bars_price(ledger: Ledger) -> None:
    risk = RiskConfig(max_price_move=D("0.10"))
    ledger.submit_intents([_intent("a1", "A", "SPY", 1, "2024-05-01")], source="t")
    _run(ledger, "2024-05-01", {"SPY": 500, "QQQ": 400}, risk)
    ledger.submit_intents(
        [_intent("a2", "A", "SPY", 1, "2024-05-02"), _intent("a3", "A", "QQQ", 1, "2024-05-02")],
        source="t",
    )
    run = _run(ledger, "2024-05-02", {"SPY": 560, "QQQ": 420}, risk)  # +12% and +5%
    assert _outcome(run) == {"a2": (0, Reason.RISK_PRICE), "a3": (1, None)}
    assert ledger.previous_prices(parse_bar("2024-05-03"), ["SPY"]) == {"SPY": D(560)}


def test_a_bar_whose_orders_are_journaled_keeps_its_states(ledger: Ledger) -> None:
    bar = parse_bar("2024-05-01")
    ledger.submit_intents([_intent("a1", "A", "SPY", 10, bar.key)], source="t")
    plan = load_or_freeze_plan(
        ledger,
        bar,
        prices={"SPY": D(500)},
        budgets=None,
        instruments=DEFAULT_INSTRUMENTS,
        routing=RoutingConfig(),
        total_capital=D(100_000),
        account="paper",
    )
    modes = dict.fromkeys(Venue, "sim")
    ledger.journal_orders(bar, "paper", plan.orders, modes=modes)  # a run journaled, then died
    ledger.set_trading_state(TradingState.HALTED, by="ops", reason="too late for this bar")
    run = _run(ledger, bar.key, {}, RiskConfig())
    assert [o.symbol for o in run.orders] == ["SPY"]  # being sent: followed and settled
    assert ledger.send_gate(bar) is None
    # The halt applies from the next bar.
    ledger.submit_intents([_intent("a2", "A", "SPY", 1, "2024-05-02")], source="t")
    nxt = _run(ledger, "2024-05-02", {"SPY": 500}, RiskConfig())
    assert _outcome(nxt) == {"a2": (0, Reason.HALTED)}


def test_doctor_warns_while_a_venue_is_halted(ledger: Ledger) -> None:
    from types import SimpleNamespace

    from cli.doctor import CHECK_MODULES, Verdict
    from cli.risk import check_trading_state

    assert "cli.risk" in CHECK_MODULES
    ctx = SimpleNamespace(settings=object(), ledger_at_head=True, ledger=lambda: ledger)
    (ok,) = check_trading_state(ctx)
    assert ok.verdict is Verdict.OK
    ledger.set_trading_state(TradingState.HALTED, by="ops", reason="outage", venue="ibkr")
    (warn,) = check_trading_state(ctx)
    assert warn.verdict is Verdict.WARN
    assert "venues not active: ibkr halted" in warn.message


def test_reduce_only_puts_the_book_in_reducing_with_who_and_why(
    ledger: Ledger, ledger_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reduce-only", "--reason", "  ", "--ledger", ledger_url]) == 2
    assert ledger.state_changes() == []
    assert main(["reduce-only", "--reason", "earnings", "--by", "ops", "--ledger", ledger_url]) == 0
    assert "trading_state reducing" in capsys.readouterr().out
    (row,) = ledger.state_changes()
    assert (row.scope, row.state, row.by, row.reason) == (
        "book",
        TradingState.REDUCING,
        "ops (allocator reduce-only)",
        "earnings",
    )
