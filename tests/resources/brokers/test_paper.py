"""The built-in paper broker, tested once: the shared broker contract plus its own rules.

The paper broker runs in process and keeps its orders in the ledger
(:class:`resources.ledger.LedgerPaperState`), on SQLite and PostgreSQL. It honours the same
contract as the real adapters (being a broker, lookups, one order per id, its duplicate-id rule,
partial fills, the lot and minimum-notional rules); the tests that inject transport faults or
need an order that rests at the venue cannot apply to it and are skipped, each with its reason.
After the class, one test per rule of its own: restart over the ledger, slippage and the tick,
each venue's fee schedule, partial fills rounded down to the lot, and a missing reference
price. (This file merges the former ``test_paper_fills.py``; what the contract covers is not
repeated.)
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from allocator.errors import OrderRejectedError
from allocator.execution import DEFAULT_INSTRUMENTS
from allocator.execution.orders import (
    AssetClass,
    OrderRequest,
    OrderState,
    Side,
    Venue,
    client_order_id,
    submit_idempotently,
)
from allocator.execution.routing import venue_of
from resources.brokers.paper.client import PaperBroker, PaperBrokerConfig
from resources.ledger import Ledger, LedgerPaperState
from tests.contract.broker import BrokerContract, Harness

NO_TRANSPORT = (
    "the paper broker is in process: there is no network, server or rate limit between the "
    "caller and it, so a timeout, 5xx, disconnect or 429 after acceptance cannot happen"
)
NEVER_RESTS = (
    "a paper market order fills at once (or fills its fill_ratio share and cancels the rest, "
    "immediate-or-cancel): no order ever rests open at the paper venue"
)
NO_ACCOUNT = (
    "the paper broker keeps no cash, margin or permissions, so nothing can make it reject a "
    "valid order; its definitive refusals (lot, minimum notional, unknown symbol, no price) "
    "are covered by the lot and minimum tests"
)


class _PaperVenue:
    """The paper broker of one venue over one ledger database, and its fault switches."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ledgers: list[Ledger] = []
        self.broker = self.new_broker()

    def new_broker(self) -> PaperBroker:
        """A fresh broker over a fresh connection to the same ledger (a process restart)."""
        ledger = Ledger(self.url)
        self.ledgers.append(ledger)
        return PaperBroker(
            venue=Venue.CCXT, instruments=DEFAULT_INSTRUMENTS, state=LedgerPaperState(ledger)
        )

    def inject(self, kind: str, **options: Any) -> None:
        if kind != "partial" or options:
            raise ValueError(f"the paper venue cannot inject {kind!r} {options}")
        # The next order fills half (rounded down to the lot) and cancels the rest.
        self.broker.config = PaperBrokerConfig(fill_ratio=Decimal("0.5"))

    def count(self, cid: str) -> int:
        # The state keeps one order per client order id; a second submit is refused first.
        return int(self.broker.state.get(self.broker.name, cid) is not None)

    def qty(self, cid: str) -> Decimal:
        found = self.broker.state.get(self.broker.name, cid)
        assert found is not None
        return found.qty

    def close(self) -> None:
        for ledger in self.ledgers:
            ledger.close()


@pytest.fixture
def paper(ledger_url: str) -> Iterator[_PaperVenue]:
    venue = _PaperVenue(ledger_url)
    yield venue
    venue.close()


class TestPaperContract(BrokerContract):
    @pytest.fixture
    def venue(self, paper: _PaperVenue) -> Harness:
        return Harness(
            broker=paper.broker,
            venue=Venue.CCXT,
            symbol="BTC/USDT",
            asset_class=DEFAULT_INSTRUMENTS["BTC/USDT"].asset_class,
            qty=Decimal("0.01"),
            reference_price=Decimal(60_000),
            inject=paper.inject,
            venue_orders=paper.count,
            venue_qty=paper.qty,
            request_count=lambda: 0,
            restart=lambda: None,  # the state is in the ledger: nothing to restart
            new_broker=paper.new_broker,
            dedup_after_fill=True,  # a reused id is refused whatever the state (Alpaca's rule)
            lot_case=(Decimal("0.0123456"), Decimal("0.01234")),
            too_small=Decimal("0.00005"),  # 3 USDT at 60,000: below the 5 USDT minimum
        )

    @pytest.mark.skip(reason=NO_TRANSPORT)
    def test_ambiguous_failure_after_acceptance_is_resolved_by_lookup(self) -> None:
        """Not applicable: see the reason."""

    @pytest.mark.skip(reason=NO_TRANSPORT)
    def test_rate_limited_submit_never_doubles(self) -> None:
        """Not applicable: see the reason."""

    @pytest.mark.skip(reason=NO_ACCOUNT)
    def test_reject_is_final_and_names_the_reason(self) -> None:
        """Not applicable: see the reason."""

    @pytest.mark.skip(reason=NEVER_RESTS)
    def test_open_order_is_listed_then_cancelled(self) -> None:
        """Not applicable: see the reason."""

    @pytest.mark.skip(reason=NEVER_RESTS + "; test_restart_keeps_orders_and_positions instead")
    def test_restart_with_open_orders_is_seen_by_a_new_client(self) -> None:
        """Not applicable: see the reason."""

    def test_below_the_venue_minimum_is_refused_before_sending(self, venue: Harness) -> None:
        # The contract's wording is "not sent" (an adapter refuses before the network); the
        # paper broker has no network and names the rule instead. Same guarantee otherwise.
        request = venue.request("too-small", qty=venue.too_small)
        with pytest.raises(
            OrderRejectedError, match=r"notional 3\.0+ is below the minimum 5 for BTC/USDT"
        ):
            venue.broker.submit(request)
        assert venue.venue_orders(request.client_order_id) == 0


def test_restart_keeps_orders_and_positions(paper: _PaperVenue) -> None:
    """A crash and restart: a new broker over a new ledger connection sees every order and
    position, and a rerun of the same id is found, not placed again."""
    request = OrderRequest(
        client_order_id=client_order_id("contract", "restart", "BTC/USDT", Side.SELL),
        symbol="BTC/USDT",
        asset_class=AssetClass.CRYPTO,
        side=Side.SELL,
        qty=Decimal("0.02"),
        venue=Venue.CCXT,
        reference_price=Decimal(60_000),
    )
    first = submit_idempotently(paper.broker, request, lookups=1, delay_s=0)
    assert first.state is OrderState.FILLED
    fresh = paper.new_broker()
    assert dict(fresh.positions()) == {"BTC/USDT": Decimal("-0.02")}
    rerun = submit_idempotently(fresh, request, lookups=1, delay_s=0)
    assert rerun.state is OrderState.FILLED
    assert not rerun.placed_by_this_call
    assert first.order is not None
    assert rerun.order == first.order


def _request(cid: str, symbol: str, side: Side, qty: str, price: str) -> OrderRequest:
    inst = DEFAULT_INSTRUMENTS[symbol]
    return OrderRequest(
        client_order_id=cid,
        symbol=symbol,
        asset_class=inst.asset_class,
        side=side,
        qty=Decimal(qty),
        venue=venue_of(inst),
        reference_price=Decimal(price),
    )


def _broker(venue: Venue, **config: Decimal) -> PaperBroker:
    """A paper broker with its state in memory (as ``allocator net`` uses it)."""
    return PaperBroker(
        venue=venue, instruments=DEFAULT_INSTRUMENTS, config=PaperBrokerConfig(**config)
    )


def test_slippage_moves_against_the_order_and_rounds_to_the_tick() -> None:
    broker = _broker(Venue.ALPACA, slippage_bps=Decimal(10))
    # 100.003 × 1.001 = 100.103003 -> up to 100.11; × 0.999 = 99.902997 -> down to 99.90.
    buy = broker.submit(_request("b1", "KO", Side.BUY, "5", "100.003"))
    sell = broker.submit(_request("s1", "KO", Side.SELL, "2", "100.003"))
    assert (buy.avg_price, buy.filled_qty, buy.fee, buy.state) == (
        Decimal("100.11"),
        Decimal(5),
        Decimal(0),
        OrderState.FILLED,
    )
    assert sell.avg_price == Decimal("99.90")
    assert broker.positions() == {"KO": Decimal(3)}


@pytest.mark.parametrize(
    ("venue", "symbol", "qty", "price", "fee"),
    [
        (Venue.ALPACA, "SPY", "100", "500", "0"),
        (Venue.IBKR, "KO", "100", "60", "1.00"),  # 0.50 per-share, minimum 1.00
        (Venue.IBKR, "KO", "1000", "60", "5.00"),  # 1000 × 0.005
        (Venue.IBKR, "ES", "3", "5000", "2.55"),  # 3 × 0.85
        (Venue.IBKR, "EUR/USD", "100000", "1.1", "2.20"),  # 110000 × 0.2 bps
        (Venue.IBKR, "EUR/USD", "10000", "1.1", "2.00"),  # 0.22, minimum 2.00
        (Venue.CCXT, "BTC/USDT", "0.5", "60000", "30.00"),  # 30000 × 10 bps
    ],
)
def test_fee_schedules(venue: Venue, symbol: str, qty: str, price: str, fee: str) -> None:
    order = _broker(venue).submit(_request("c1", symbol, Side.BUY, qty, price))
    assert order.fee == Decimal(fee)


def test_partial_fill_rounds_down_to_the_lot_and_cancels_the_rest() -> None:
    broker = _broker(Venue.ALPACA, fill_ratio=Decimal("0.5"))
    order = broker.submit(_request("p1", "KO", Side.SELL, "7", "50"))
    # half of 7 lots, rounded down: 3; the rest is cancelled at once (immediate-or-cancel).
    assert (order.qty, order.filled_qty, order.state) == (
        Decimal(7),
        Decimal(3),
        OrderState.CANCELLED,
    )
    assert broker.positions() == {"KO": Decimal(-3)}
    assert broker.open_orders() == []
    assert [f.qty for f in order.fills] == [Decimal(3)]


def test_an_order_without_a_reference_price_is_rejected() -> None:
    no_price = OrderRequest(
        client_order_id="m2",
        symbol="KO",
        asset_class=AssetClass.EQUITY,
        side=Side.BUY,
        qty=Decimal(1),
        venue=Venue.ALPACA,
    )
    with pytest.raises(OrderRejectedError, match="no reference price"):
        _broker(Venue.ALPACA).submit(no_price)
