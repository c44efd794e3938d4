"""Hand-worked bars: every expected number below is computed by hand in the comments."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from allocator.execution import (
    BrokerExecution,
    Reason,
    attribute,
    build_book,
    net_takes,
    settle_bar,
)
from allocator.execution.orders import Side, Venue, client_order_id

from .helpers import BAR, QUANTUM, budget, intent, outcome_by_id, plan

D = Decimal


def test_seed_example_one_buy_40_both_filled_one_fee() -> None:
    # Long 100 SPY and short 60 SPY in one bar: 60 cross internally, one buy of 40 goes out.
    p = plan([intent("a1", "A", "SPY", 100), intent("b1", "B", "SPY", -60)], {"SPY": "500"})
    assert len(p.orders) == 1
    order = p.orders[0]
    assert (order.symbol, order.side, order.qty, order.venue) == (
        "SPY",
        Side.BUY,
        D(40),
        Venue.ALPACA,
    )
    assert order.client_order_id == client_order_id("paper", "2024-05-01", "SPY", "buy", 0)
    out = settle_bar(
        p,
        {"SPY": BrokerExecution(filled_qty=D(40), avg_price=D("500.02"), fee=D("1.00"))},
        cash_quantum=QUANTUM,
    )
    fills = {(f.strategy, f.internal): f for f in out.fills}
    assert set(fills) == {("A", True), ("A", False), ("B", True)}
    assert fills[("A", True)].qty == 60
    assert fills[("A", False)].qty == 40
    assert fills[("B", True)].qty == -60
    assert fills[("A", False)].fee == D("1.00")
    assert fills[("B", True)].fee == 0
    # Internal crosses at the broker's price when it filled: A pays 100 × 500.02 + 1.00.
    cash = {s: sum(f.cash for f in out.fills if f.strategy == s) for s in "AB"}
    assert cash == {"A": D("-50003.00"), "B": D("30001.20")}
    assert all(g.reason is None for g in out.gated)


def test_exits_pass_for_a_benched_strategy_entries_do_not() -> None:
    # Holds +50 SPY, benched: a sell of 80 is 50 of exit (passes) and 30 of entry (refused).
    p = plan(
        [intent("i1", "A", "SPY", -80), intent("i2", "A", "KO", 10)],
        {"SPY": 100, "KO": 50},
        positions={("A", "SPY"): 50},
        budgets={"A": budget(1_000_000, state="benched")},
    )
    assert outcome_by_id(p) == {"i1": (D(-50), "benched"), "i2": (D(0), "benched")}


def test_halted_and_missing_strategies() -> None:
    p = plan(
        [intent("h1", "H", "SPY", 1), intent("m1", "M", "SPY", 1)],
        {"SPY": 100},
        budgets={"H": budget(10_000, state="halted")},
    )
    # H is halted; M has no published capital, so capital 0: a budget cut.
    assert outcome_by_id(p) == {"h1": (D(0), "halted"), "m1": (D(0), "budget")}


def test_budget_cut_to_lots_and_exit_frees_budget() -> None:
    # Capital 1000. Start +3 SPY at 300 = 900 gross.
    # i1 KO +4 at 50: room 100 -> 2 lots (cut, budget).  gross 1000
    # i2 SPY -3: exit, passes whole.                      gross 100
    # i3 KO +10 at 50: room 900 -> 18 lots >= 10, whole.  gross 600
    # i4 SPY +5 at 300: room 400 -> 1 lot (cut).          gross 900
    p = plan(
        [
            intent("i1", "A", "KO", 4),
            intent("i2", "A", "SPY", -3),
            intent("i3", "A", "KO", 10),
            intent("i4", "A", "SPY", 5),
        ],
        {"SPY": 300, "KO": 50},
        positions={("A", "SPY"): 3},
        budgets={"A": budget(1000)},
    )
    assert outcome_by_id(p) == {
        "i1": (D(2), "budget"),
        "i2": (D(-3), None),
        "i3": (D(10), None),
        "i4": (D(1), "budget"),
    }


def test_flip_beyond_flat_is_an_exit_then_a_capped_entry() -> None:
    # +2 at 100, capital 300, leverage 1: -6 = exit 2 (passes) then entry -4 capped at 3 lots.
    p = plan(
        [intent("f1", "A", "SPY", -6)],
        {"SPY": 100},
        positions={("A", "SPY"): 2},
        budgets={"A": budget(300)},
    )
    assert outcome_by_id(p) == {"f1": (D(-5), "budget")}


def test_leverage_multiplies_the_budget() -> None:
    # 1000 × 2 = 2000 of gross at 100 a share: 20 of the 25 pass.
    p = plan([intent("l1", "A", "SPY", 25)], {"SPY": 100}, budgets={"A": budget(1000, 2)})
    assert outcome_by_id(p) == {"l1": (D(20), "budget")}


def test_no_price_blocks_entries_not_exits() -> None:
    # A holds KO, which has no price this bar: its gross cannot be valued.
    p = plan(
        [intent("n1", "A", "SPY", 1), intent("n2", "A", "PEP", -2), intent("n3", "B", "PEP", 3)],
        {"SPY": 100, "KO": 60} | {},
        positions={("A", "PEP"): 5, ("A", "KO"): 1},
        budgets=None,
    )
    got = outcome_by_id(p)
    # PEP has no price: the whole symbol is not traded (its exits cannot be sent or crossed).
    assert got["n1"] == (D(0), "no_price")
    assert got["n3"] == (D(0), "no_price")
    assert got["n2"] == (D(0), "no_price")


def test_exit_in_priced_symbol_passes_while_another_is_unpriced() -> None:
    p = plan(
        [intent("e1", "A", "SPY", -4), intent("e2", "A", "KO", 1)],
        {"SPY": 100},
        positions={("A", "SPY"): 4, ("A", "PEP"): 1},
        budgets=None,
    )
    assert outcome_by_id(p) == {"e1": (D(-4), None), "e2": (D(0), "no_price")}


def test_largest_remainder_split_of_cross_fill_and_fee() -> None:
    # Buyers A, B, C +7 each (B=21), seller D -10 (S=10): X=10, N=11, broker fills all 11.
    # X: 10×7/21 = 3.33 each -> 3,3,3 + 1 left -> tie -> A (name order): A4 B3 C3.
    # F: 11×7/21 = 3.67 each -> 3,3,3 + 2 left; A is at its cap (7-4=3) -> B4 C4.
    # Fee 1.00 = 1e8 quanta pro rata 3:4:4 of 11 -> 27272727.27, 36363636.36 ×2
    #   -> floors sum 99999999, 1 left -> largest remainder .36 tie B/C -> B.
    p = plan(
        [
            intent("a", "A", "SPY", 7),
            intent("b", "B", "SPY", 7),
            intent("c", "C", "SPY", 7),
            intent("d", "D", "SPY", -10),
        ],
        {"SPY": 10},
    )
    out = settle_bar(
        p,
        {"SPY": BrokerExecution(filled_qty=D(11), avg_price=D("10.5"), fee=D("1.00"))},
        cash_quantum=QUANTUM,
    )
    got = {(f.strategy, f.internal): (f.qty, f.fee) for f in out.fills}
    assert got == {
        ("A", True): (D(4), D(0)),
        ("A", False): (D(3), D("0.27272727")),
        ("B", True): (D(3), D(0)),
        ("B", False): (D(4), D("0.36363637")),
        ("C", True): (D(3), D(0)),
        ("C", False): (D(4), D("0.36363636")),
        ("D", True): (D(-10), D(0)),
    }
    assert sum(f.cash for f in out.fills) == -D(11) * D("10.5") - D("1.00")


def test_partial_fill_leaves_the_rest_unfilled() -> None:
    # A +10, B +10, nobody sells; the broker fills 5 of 20: 2.5 each -> 2,2 + 1 -> A.
    p = plan([intent("a", "A", "KO", 10), intent("b", "B", "KO", 10)], {"KO": 60})
    out = settle_bar(
        p,
        {"KO": BrokerExecution(filled_qty=D(5), avg_price=D("60.01"), fee=D(0))},
        cash_quantum=QUANTUM,
    )
    assert {f.strategy: f.qty for f in out.fills} == {"A": D(3), "B": D(2)}
    assert sum(f.cash for f in out.fills) == -D(5) * D("60.01")


def test_zero_net_bar_sends_nothing_and_cash_sums_to_zero() -> None:
    p = plan([intent("a", "A", "KO", 5), intent("b", "B", "KO", -5)], {"KO": "61.25"})
    assert p.orders == ()
    out = settle_bar(p, {}, cash_quantum=QUANTUM)
    assert {(f.strategy, f.qty, f.price, f.internal) for f in out.fills} == {
        ("A", D(5), D("61.25"), True),
        ("B", D(-5), D("61.25"), True),
    }
    assert sum(f.cash for f in out.fills) == 0


def test_below_min_notional_crosses_and_refuses_the_rest() -> None:
    # BTC lot 0.00001, min notional 5. A buys 10 lots, B sells 8: net 2 lots × 60000 × 1e-5 =
    # 1.2 < 5, not sent. 8 lots cross; A's unsent 2 lots are refused min_notional.
    p = plan(
        [intent("a", "A", "BTC/USDT", "0.00010"), intent("b", "B", "BTC/USDT", "-0.00008")],
        {"BTC/USDT": 60000},
    )
    assert p.orders == ()
    assert outcome_by_id(p) == {"a": (D("0.00008"), "min_notional"), "b": (D("-0.00008"), None)}
    out = settle_bar(p, {}, cash_quantum=QUANTUM)
    assert {f.strategy: f.qty for f in out.fills} == {"A": D("0.00008"), "B": D("-0.00008")}


def test_proxy_routing_below_the_threshold() -> None:
    # Total capital 20,000 < 25,000: ES 1 × 50 × 5000 / 500 = 500 SPY; NQ 2 × 20 × 18000 / 450
    # = 1600 QQQ; CL has no proxy: refused routing; EUR/USD no proxy either.
    p = plan(
        [
            intent("es", "A", "ES", 1),
            intent("nq", "A", "NQ", -2),
            intent("cl", "A", "CL", 1),
            intent("fx", "A", "EUR/USD", 1000),
        ],
        {"ES": 5000, "SPY": 500, "NQ": 18000, "QQQ": 450, "CL": 80, "EUR/USD": "1.08"},
        total_capital=20_000,
    )
    got = {g.intent_id: g for g in p.gated()}
    assert (got["es"].symbol, got["es"].accepted_qty, got["es"].routed_from) == ("SPY", 500, "ES")
    assert (got["nq"].symbol, got["nq"].accepted_qty) == ("QQQ", -1600)
    assert got["cl"].reason is Reason.ROUTING
    assert got["fx"].reason is Reason.ROUTING
    assert {(o.symbol, o.side, o.qty, o.venue) for o in p.orders} == {
        ("SPY", Side.BUY, D(500), Venue.ALPACA),
        ("QQQ", Side.SELL, D(1600), Venue.ALPACA),
    }


def test_above_the_threshold_futures_go_to_interactive_brokers() -> None:
    p = plan([intent("es", "A", "ES", 1)], {"ES": 5000}, total_capital=25_000)
    assert [(o.symbol, o.venue) for o in p.orders] == [("ES", Venue.IBKR)]


def test_unknown_symbol_and_invalid_quantities() -> None:
    p = plan(
        [
            intent("u", "A", "NOPE", 1),
            intent("z", "A", "SPY", "0.5"),
            intent("w", "A", "EUR/USD", 1500),
        ],
        {"SPY": 100, "EUR/USD": "1.1"},
    )
    assert outcome_by_id(p) == {
        "u": (D(0), "unknown_symbol"),
        "z": (D(0), "invalid"),
        "w": (D(0), "invalid"),
    }


def test_same_inputs_give_the_same_plan_and_ids() -> None:
    intents = [intent(f"i{k}", f"S{k % 3}", "SPY", (k % 5) - 2 or 1) for k in range(12)]
    first = plan(intents, {"SPY": 100})
    second = plan(list(reversed(intents)), {"SPY": 100})
    assert first.orders == second.orders
    assert first.gated() == second.gated()
    assert BAR.key == "2024-05-01"


def test_attribute_refuses_an_overfill() -> None:
    import polars as pl

    book = build_book(
        pl.DataFrame({"intent_id": ["a"], "strategy": ["A"], "symbol": ["KO"], "lots": [3]}),
        lot_size={"KO": D(1)},
        prices={"KO": D(1)},
    )
    netting = net_takes(book, np.array([3], dtype=np.int64))
    with pytest.raises(ValueError, match=r"KO: filled 4 lots outside 0..3"):
        attribute(book, netting, np.array([4], dtype=np.int64), np.array([0], dtype=np.int64))
