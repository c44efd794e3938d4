"""A timeout after the venue accepted the order, and a venue that cannot be reached: the bar
never sends twice; an unresolved order stops the bar until a rerun resolves it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

import pytest

from allocator.config import RoutingConfig
from allocator.errors import AmbiguousBrokerError, BarIncompleteError
from allocator.execution import DEFAULT_INSTRUMENTS, parse_bar, run_bar
from allocator.execution.orders import AssetClass, BrokerOrder, OrderRequest, Venue
from allocator.execution.records import Intent
from resources.brokers.paper.client import PaperBroker
from resources.ledger import Ledger, LedgerPaperState

D = Decimal
BAR = parse_bar("2024-05-01")


class FlakyVenue:
    """Wraps the paper broker: ``accept_then_timeout`` places the order and then raises a
    timeout; ``down`` fails every call."""

    def __init__(self, inner: PaperBroker, mode: str) -> None:
        self.inner = inner
        self.name = inner.name
        self.mode = mode
        self.submits = 0

    def submit(self, request: OrderRequest) -> BrokerOrder:
        self.submits += 1
        if self.mode == "down":
            raise AmbiguousBrokerError("connection reset")
        self.inner.submit(request)
        raise AmbiguousBrokerError("504 after acceptance")

    def lookup(self, symbol: str, client_order_id: str) -> BrokerOrder | None:
        if self.mode == "down":
            raise AmbiguousBrokerError("connection reset")
        return self.inner.lookup(symbol, client_order_id)

    def open_orders(self) -> Sequence[BrokerOrder]:
        return self.inner.open_orders()

    def positions(self) -> Mapping[str, Decimal]:
        return self.inner.positions()

    def cancel(self, symbol: str, client_order_id: str) -> None:
        self.inner.cancel(symbol, client_order_id)


def _go(ledger: Ledger, broker: object) -> object:
    return run_bar(
        ledger=ledger,
        brokers={Venue.ALPACA: broker},  # type: ignore[dict-item]
        bar=BAR,
        prices={"SPY": D(400)},
        budgets=None,
        instruments=DEFAULT_INSTRUMENTS,
        routing=RoutingConfig(),
        total_capital=D(100_000),
        account="paper",
        cash_quantum=D("0.00000001"),
        lookup_delay_s=0.0,
    )


def _setup(ledger: Ledger) -> PaperBroker:
    ledger.submit_intents(
        [
            Intent(
                intent_id="a1",
                strategy="A",
                symbol="SPY",
                asset_class=AssetClass.ETF,
                qty=D(7),
                bar=BAR,
            )
        ]
    )
    return PaperBroker(
        venue=Venue.ALPACA, instruments=DEFAULT_INSTRUMENTS, state=LedgerPaperState(ledger)
    )


def test_timeout_after_acceptance_is_resolved_by_lookup(ledger: Ledger) -> None:
    inner = _setup(ledger)
    flaky = FlakyVenue(inner, "accept_then_timeout")
    _go(ledger, flaky)
    assert flaky.submits == 1
    assert len(inner.state.orders(inner.name)) == 1
    assert ledger.positions() == {("A", "SPY"): D(7)}


def test_unreachable_venue_stops_the_bar_and_a_rerun_completes_it(ledger: Ledger) -> None:
    inner = _setup(ledger)
    with pytest.raises(BarIncompleteError, match=r"is unknown: pre-submit lookup failed"):
        _go(ledger, FlakyVenue(inner, "down"))
    assert [o["state"] for o in ledger.orders(BAR)] == ["unknown"]
    assert ledger.positions() == {}
    assert inner.state.orders(inner.name) == []
    _go(ledger, inner)
    assert [o["state"] for o in ledger.orders(BAR)] == ["filled"]
    assert ledger.positions() == {("A", "SPY"): D(7)}
