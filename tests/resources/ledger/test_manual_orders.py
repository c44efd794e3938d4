"""One operator order (:func:`allocator.execution.manual.submit_manual_order`) on both stores.

The order is journaled ``pending_submit`` before it is sent and its outcome after; the same id
again sends nothing twice; an ambiguous submit the lookups cannot resolve stays ``unknown`` in
the journal until a later run resolves it by lookup; an id journaled as another order, or a
mode other than ``paper``/``live``, is refused before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

import pytest

from allocator.errors import AmbiguousBrokerError
from allocator.execution import DEFAULT_INSTRUMENTS
from allocator.execution.manual import submit_manual_order
from allocator.execution.orders import (
    AssetClass,
    BrokerOrder,
    OrderRequest,
    OrderState,
    Side,
    SubmitOutcome,
    Venue,
)
from resources.brokers.paper.client import PaperBroker
from resources.ledger import Ledger, LedgerPaperState

D = Decimal


def _request(cid: str = "m1", side: Side = Side.BUY, qty: int = 2) -> OrderRequest:
    return OrderRequest(
        client_order_id=cid,
        symbol="SPY",
        asset_class=AssetClass.ETF,
        side=side,
        qty=D(qty),
        venue=Venue.ALPACA,
        reference_price=D(500),
    )


class _Venue:
    """The paper venue behind switchable faults, recording the journal's state of the order at
    each send. ``fault``: ``None``; ``"lost_answer"`` (the order is placed, the answer times
    out and the venue stays unreachable for the lookups); ``"down"`` (every call times out,
    nothing is placed)."""

    mode = "paper"

    def __init__(self, ledger: Ledger) -> None:
        self.inner = PaperBroker(
            venue=Venue.ALPACA, instruments=DEFAULT_INSTRUMENTS, state=LedgerPaperState(ledger)
        )
        self.name = self.inner.name
        self.ledger = ledger
        self.fault: str | None = None
        self.seen: list[str] = []

    def submit(self, request: OrderRequest) -> BrokerOrder:
        row = {o["client_order_id"]: o for o in self.ledger.orders()}[request.client_order_id]
        self.seen.append(str(row["state"]))
        if self.fault == "down":
            raise AmbiguousBrokerError("connection reset")
        placed = self.inner.submit(request)
        if self.fault == "lost_answer":
            self.fault = "down"
            raise AmbiguousBrokerError("504 after acceptance")
        return placed

    def lookup(self, symbol: str, client_order_id: str) -> BrokerOrder | None:
        if self.fault == "down":
            raise AmbiguousBrokerError("connection reset")
        return self.inner.lookup(symbol, client_order_id)

    def open_orders(self) -> Sequence[BrokerOrder]:
        return self.inner.open_orders()

    def positions(self) -> Mapping[str, Decimal]:
        return self.inner.positions()

    def cancel(self, symbol: str, client_order_id: str) -> None:
        self.inner.cancel(symbol, client_order_id)

    def placed(self) -> int:
        return len(self.inner.state.orders(self.name))


def _submit(
    ledger: Ledger, broker: _Venue, request: OrderRequest, mode: str = "paper"
) -> SubmitOutcome:
    return submit_manual_order(
        ledger, broker, request, account="ops", mode=mode, lookups=2, delay_s=0
    )


def test_manual_order_is_journaled_before_it_is_sent_and_sent_once(ledger: Ledger) -> None:
    broker = _Venue(ledger)
    first = submit_manual_order(ledger, broker, _request(), account="ops", mode="paper", delay_s=0)
    assert first.placed_by_this_call
    assert first.state is OrderState.FILLED
    assert broker.seen == ["pending_submit"]
    again = submit_manual_order(ledger, broker, _request(), account="ops", mode="paper", delay_s=0)
    assert not again.placed_by_this_call
    assert broker.seen == ["pending_submit"]
    (row,) = ledger.orders()
    assert (row["bar"], row["account"], row["mode"], row["state"]) == (
        "manual",
        "ops",
        "paper",
        "filled",
    )
    assert row["filled_qty"] == D(2)
    assert row["venue_order_id"] == "paper-alpaca-m1"
    assert row["detail"] == "found"  # the second run's outcome: found by the lookup
    with pytest.raises(ValueError, match="order m1 is journaled as buy 2 SPY"):
        submit_manual_order(ledger, broker, _request(side=Side.SELL), account="ops", mode="paper")
    assert broker.seen == ["pending_submit"]
    assert broker.placed() == 1


def test_an_ambiguous_submit_stays_unknown_and_a_rerun_resolves_it_without_resending(
    ledger: Ledger,
) -> None:
    broker = _Venue(ledger)
    broker.fault = "lost_answer"  # placed, then the answer and both lookups time out
    outcome = _submit(ledger, broker, _request())
    assert outcome.state is OrderState.UNKNOWN
    assert broker.placed() == 1  # the venue took it
    (row,) = ledger.orders()
    assert row["state"] == "unknown"
    assert "unresolved after 2 lookups: 504 after acceptance" in str(row["detail"])
    assert row["venue_order_id"] is None
    # The venue answers again: the rerun finds the order by lookup and sends nothing.
    broker.fault = None
    again = _submit(ledger, broker, _request())
    assert again.state is OrderState.FILLED
    assert not again.placed_by_this_call
    assert broker.seen == ["pending_submit"]  # one send in all
    assert broker.placed() == 1
    (row,) = ledger.orders()
    assert (row["state"], row["filled_qty"], row["venue_order_id"]) == (
        "filled",
        D(2),
        "paper-alpaca-m1",
    )


def test_an_unreachable_venue_sends_nothing_and_journals_unknown(ledger: Ledger) -> None:
    broker = _Venue(ledger)
    broker.fault = "down"
    outcome = _submit(ledger, broker, _request())
    assert outcome.state is OrderState.UNKNOWN
    assert broker.seen == []  # the pre-submit lookup failed: never sent
    (row,) = ledger.orders()
    assert row["state"] == "unknown"
    assert "pre-submit lookup failed, not sent" in str(row["detail"])
    broker.fault = None
    placed = _submit(ledger, broker, _request())
    assert placed.placed_by_this_call
    assert broker.seen == ["unknown"]  # sent once, by the run that could reach the venue
    assert broker.placed() == 1
    assert [o["state"] for o in ledger.orders()] == ["filled"]


def test_a_rejection_is_journaled_with_its_reason(ledger: Ledger) -> None:
    broker = _Venue(ledger)
    request = OrderRequest(
        client_order_id="m2",
        symbol="SPY",
        asset_class=AssetClass.ETF,
        side=Side.BUY,
        qty=D(1),
        venue=Venue.ALPACA,
        reference_price=None,  # the paper venue refuses an order without a price
    )
    outcome = _submit(ledger, broker, request)
    assert outcome.state is OrderState.REJECTED
    (row,) = ledger.orders()
    assert row["state"] == "rejected"
    assert "has no reference price" in str(row["detail"])
    assert broker.placed() == 0


def test_a_bad_mode_is_refused_before_anything_is_journaled_or_sent(ledger: Ledger) -> None:
    broker = _Venue(ledger)
    expected = r"mode must be one of \('sim', 'paper', 'live'\), got 'demo'"
    with pytest.raises(ValueError, match=expected):
        _submit(ledger, broker, _request(), mode="demo")
    assert ledger.orders() == []
    assert broker.seen == []
    # The same id in the other mode is another order: refused, not re-labelled.
    _submit(ledger, broker, _request())
    with pytest.raises(ValueError, match=r"\(paper\); this manual order wants buy 2 SPY at alpaca"):
        _submit(ledger, broker, _request(), mode="live")
    assert broker.seen == ["pending_submit"]
