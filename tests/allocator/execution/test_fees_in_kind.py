"""Fees outside the quote currency (ccxt): a base-coin fee comes out of the positions, a
third-currency fee is recorded in that currency; both attributed like SPEC §7's fee."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocator.errors import BarIncompleteError
from allocator.execution import BrokerExecution, settle_bar
from allocator.execution.bar import _execution_of
from allocator.execution.orders import BrokerFill, FeeKind, Side, fee_kind

from .helpers import QUANTUM, budget, intent, outcome_by_id, plan

D = Decimal
BTC = "BTC/USDT"  # lot 0.00001


def test_fee_currencies_are_read_against_the_symbol() -> None:
    assert fee_kind(BTC, None) is FeeKind.QUOTE
    assert fee_kind(BTC, "USDT") is FeeKind.QUOTE
    assert fee_kind(BTC, "BTC") is FeeKind.BASE
    assert fee_kind(BTC, "BNB") is FeeKind.OTHER
    assert fee_kind("SPY", "USD") is FeeKind.OTHER  # no base/quote: a named currency is a third
    buy = BrokerFill(
        fill_id="1",
        client_order_id="c",
        symbol=BTC,
        side=Side.BUY,
        qty=D("0.01"),
        price=D(60000),
        fee=D("0.00001"),
        fee_currency="BTC",
    )
    assert buy.position_change == D("0.00999")
    sell = BrokerFill(**{**_fields(buy), "side": Side.SELL})
    assert sell.position_change == D("-0.01001")  # sold 0.01 and paid 0.00001 more


def _fields(f: BrokerFill) -> dict[str, object]:
    return {name: getattr(f, name) for name in f.__dataclass_fields__}


def test_a_base_fee_finer_than_the_quantum_is_split_exactly() -> None:
    # A +0.003, B +0.001, C -0.001: 0.001 crossed, a buy of 0.003 BTC goes out.
    p = plan(
        [
            intent("a", "A", BTC, "0.003"),
            intent("b", "B", BTC, "0.001"),
            intent("c", "C", BTC, "-0.001"),
        ],
        {BTC: 60000},
    )
    (order,) = p.orders
    assert order.qty == D("0.003")
    fee = D("0.0000000300000007")  # 3.00000007 units of 1e-8
    out = settle_bar(
        p,
        {BTC: BrokerExecution(filled_qty=D("0.003"), avg_price=D(60000), fee=D(0), base_fee=fee)},
        cash_quantum=QUANTUM,
    )
    shares = {f.strategy: f.base_fee for f in out.fills if not f.internal}
    # A and B share the 3 external lots 3:1 of their takes minus the cross; the fee goes pro
    # rata to the external shares, the part below 1e-8 to the largest share (A).
    # By hand: the buyers' 400 lots share the 100 crossed (A 75, B 25) and the 300 filled
    # (A 225, B 75); the 3 whole units go 225:75 = 2.25:0.75 -> A 2, B 0, and the unit left to
    # the larger remainder (B); the 0.00000007 of a unit to the largest share (A).
    assert shares == {"A": D("0.0000000200000007"), "B": D("0.00000001")}
    assert sum(shares.values()) == fee
    assert all(not f.base_fee for f in out.fills if f.internal)
    moved = sum(f.position_change for f in out.fills)
    assert moved == D("0.003") - fee  # the strategies move exactly as the venue's balance
    assert sum(f.cash for f in out.fills) == -D("0.003") * 60000  # no quote fee
    assert out.fee_paid == fee * 60000  # valued at the fill's price for the savings


def test_third_currency_fees_are_attributed_per_currency() -> None:
    p = plan([intent("a", "A", BTC, "0.002"), intent("b", "B", BTC, "0.001")], {BTC: 60000})
    out = settle_bar(
        p,
        {
            BTC: BrokerExecution(
                filled_qty=D("0.003"),
                avg_price=D(60000),
                fee=D("0.03"),
                other_fees=(("BNB", D("0.0003")), ("FDUSD", D("0.000003"))),
            )
        },
        cash_quantum=QUANTUM,
    )
    fills = {f.strategy: f for f in out.fills}
    assert fills["A"].other_fees == (("BNB", D("0.0002")), ("FDUSD", D("0.000002")))
    assert fills["B"].other_fees == (("BNB", D("0.0001")), ("FDUSD", D("0.000001")))
    assert (fills["A"].fee, fills["B"].fee) == (D("0.02"), D("0.01"))
    assert (fills["A"].base_fee, fills["B"].base_fee) == (0, 0)
    assert out.fee_paid == D("0.03")  # the quote fee only: BNB has no price here


@settings(max_examples=60, deadline=None)
@given(
    takes=st.lists(st.integers(-50, 50).filter(bool), min_size=1, max_size=6),
    fill_part=st.integers(0, 100),
    fee_units=st.integers(0, 10**9),
    fine=st.integers(0, 99),
)
def test_base_fee_shares_sum_to_the_fee_and_positions_to_the_venue(
    takes: list[int], fill_part: int, fee_units: int, fine: int
) -> None:
    lot = D("0.00001")
    intents = [intent(f"i{k}", f"S{k}", BTC, D("0.001") * q) for k, q in enumerate(takes)]
    p = plan(intents, {BTC: 60000})
    if not p.orders:
        return
    (order,) = p.orders
    filled = (order.qty / lot * fill_part // 100) * lot
    base_fee = D(fee_units) * QUANTUM + D(fine) * QUANTUM / 100 if filled else D(0)
    out = settle_bar(
        p,
        {
            BTC: BrokerExecution(
                filled_qty=filled,
                avg_price=D(60000) if filled else None,
                fee=D(0),
                base_fee=base_fee,
            )
        },
        cash_quantum=QUANTUM,
    )
    assert all(f.base_fee >= 0 for f in out.fills)
    assert sum((f.base_fee for f in out.fills), D(0)) == base_fee
    signed = filled if order.side is Side.BUY else -filled
    assert sum((f.position_change for f in out.fills), D(0)) == signed - base_fee


def test_dust_below_a_lot_is_held_but_not_traded_in_crypto_only() -> None:
    # A benched strategy holds 10.5 lots of BTC (half a lot left by a base-coin fee) and sells
    # 20: its exit is the 10 whole lots it can sell, the rest is an entry and refused.
    p = plan(
        [intent("a", "A", BTC, "-0.0002")],
        {BTC: 60000},
        positions={("A", BTC): "0.000105"},
        budgets={"A": budget(0, state="benched")},
    )
    assert outcome_by_id(p)["a"] == (D("-0.0001"), "benched")
    (order,) = p.orders
    assert (order.side, order.qty) == (Side.SELL, D("0.0001"))
    # Off the lot in a security is a state nothing explains: the bar fails loudly.
    with pytest.raises(ValueError, match=r"position A/SPY = 10.5 is not a multiple of the lot 1"):
        plan([intent("s", "A", "SPY", 1)], {"SPY": 500}, positions={("A", "SPY"): "10.5"})


def test_fills_missing_with_fees_in_kind_are_not_settled_by_guess() -> None:
    row = {
        "client_order_id": "c" * 32,
        "symbol": BTC,
        "filled_qty": D("0.02"),
        "avg_price": D(60000),
        "fee": D("1.2"),
    }
    one = BrokerFill(
        fill_id="t1",
        client_order_id="c" * 32,
        symbol=BTC,
        side=Side.BUY,
        qty=D("0.01"),
        price=D(60000),
        fee=D("0.00001"),
        ts=datetime(2024, 5, 1, tzinfo=UTC),
        fee_currency="BTC",
    )
    with pytest.raises(BarIncompleteError, match=r"t1 paid a fee outside the quote currency"):
        _execution_of(row, [one])
    both = _execution_of(row, [one, BrokerFill(**{**_fields(one), "fill_id": "t2"})])
    assert (both.filled_qty, both.fee, both.base_fee) == (D("0.02"), 0, D("0.00002"))
