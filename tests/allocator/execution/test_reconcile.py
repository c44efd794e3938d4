"""The pure reconciliation: every kind of difference is reported, agreement is ok."""

from __future__ import annotations

from decimal import Decimal

from allocator.execution.orders import BrokerOrder, OrderState, Side
from allocator.execution.reconcile import DifferenceKind, ExpectedOrder, reconcile


def _open(cid: str, qty: str = "5", filled: str = "0") -> BrokerOrder:
    return BrokerOrder(
        client_order_id=cid,
        venue_order_id="v" + cid,
        symbol="SPY",
        side=Side.BUY,
        qty=Decimal(qty),
        filled_qty=Decimal(filled),
        avg_price=None,
        fee=Decimal(0),
        state=OrderState.SUBMITTED,
    )


def test_agreement_is_ok_and_zero_positions_are_ignored() -> None:
    report = reconcile(
        "alpaca",
        venue_positions={"SPY": Decimal("10"), "QQQ": Decimal(0)},
        venue_open_orders=[_open("a")],
        ledger_positions={"SPY": Decimal("10.0")},
        ledger_open_orders=[
            ExpectedOrder(client_order_id="a", symbol="SPY", side="buy", qty=Decimal(5))
        ],
    )
    assert report.ok
    assert not report.halts_entries
    assert "reconciled, 1 positions and 1 open orders agree" in report.summary()


def test_every_difference_is_reported_and_halts_entries() -> None:
    report = reconcile(
        "alpaca",
        venue_positions={"SPY": Decimal(10), "AAPL": Decimal(-3)},
        venue_open_orders=[_open("a"), _open("b", filled="1")],
        ledger_positions={"SPY": Decimal(7), "MSFT": Decimal(2)},
        ledger_open_orders=[
            ExpectedOrder(client_order_id="b", symbol="SPY", side="buy", qty=Decimal(5)),
            ExpectedOrder(client_order_id="c", symbol="SPY", side="sell", qty=Decimal(1)),
        ],
    )
    kinds = {(d.kind, d.key) for d in report.differences}
    assert kinds == {
        (DifferenceKind.UNEXPECTED_POSITION, "AAPL"),
        (DifferenceKind.MISSING_POSITION, "MSFT"),
        (DifferenceKind.POSITION_MISMATCH, "SPY"),
        (DifferenceKind.UNEXPECTED_OPEN_ORDER, "a"),
        (DifferenceKind.OPEN_ORDER_MISMATCH, "b"),
        (DifferenceKind.MISSING_OPEN_ORDER, "c"),
    }
    assert report.halts_entries
    assert "6 differences; new entries halted" in report.summary()
    spy = next(d for d in report.differences if d.key == "SPY")
    assert str(spy) == "position_mismatch: SPY: venue 10, ledger 7"
