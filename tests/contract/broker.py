"""The broker contract: one abstract test class, run against every :class:`Broker`.

A subclass provides the ``venue`` fixture, a :class:`Harness` that wraps one broker and its
local fake venue (or the paper broker) and can inject faults there. The tests talk to the
broker only through :class:`allocator.execution.orders.Broker` and :func:`submit_idempotently`, and
check the venue's side (how many orders it holds for an id) through the harness.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from allocator.errors import DuplicateOrderError, OrderRejectedError
from allocator.execution.orders import (
    AssetClass,
    Broker,
    OrderRequest,
    OrderState,
    Side,
    Venue,
    client_order_id,
    submit_idempotently,
)

__all__ = ["BrokerContract", "Harness"]


@dataclass(kw_only=True)
class Harness:
    """One broker under test and the handles on its venue.

    ``inject(kind, **options)`` queues a fault at the venue (see ``tests/fakes/_http.py``);
    ``venue_orders(cid)`` counts the venue's orders with that client order id; ``restart``
    restarts the venue keeping its state; ``new_broker`` builds a fresh client to it.
    ``dedup_after_fill`` is the venue's own rule: does it refuse an id reused after a fill?
    ``lot_case`` is ``(qty asked, qty the venue must receive)``; ``too_small`` a qty the
    venue's rules refuse before anything is sent.
    """

    broker: Broker
    venue: Venue
    symbol: str
    asset_class: AssetClass
    qty: Decimal
    reference_price: Decimal
    inject: Callable[..., None]
    venue_orders: Callable[[str], int]
    venue_qty: Callable[[str], Decimal]
    request_count: Callable[[], int]
    restart: Callable[[], None]
    new_broker: Callable[[], Broker]
    dedup_after_fill: bool
    lot_case: tuple[Decimal, Decimal]
    too_small: Decimal
    # How a bought quantity shows in positions (a spot buy's fee may be taken in the coin).
    position_delta: Callable[[Decimal], Decimal] = lambda qty: qty
    extra: dict[str, Any] = field(default_factory=dict)

    def request(
        self, tag: str, *, side: Side = Side.BUY, qty: Decimal | None = None
    ) -> OrderRequest:
        return OrderRequest(
            client_order_id=client_order_id("contract", tag, self.symbol, side),
            symbol=self.symbol,
            asset_class=self.asset_class,
            side=side,
            qty=self.qty if qty is None else qty,
            venue=self.venue,
            reference_price=self.reference_price,
        )


def _submit(h: Harness, request: OrderRequest) -> Any:
    return submit_idempotently(h.broker, request, lookups=4, delay_s=0.05)


class BrokerContract(abc.ABC):
    """Every broker passes these; subclasses only provide the ``venue`` fixture."""

    @abc.abstractmethod
    def venue(self) -> Harness:  # pragma: no cover - replaced by a fixture in subclasses
        ...

    def test_is_a_broker(self, venue: Harness) -> None:
        assert isinstance(venue.broker, Broker)
        assert venue.broker.name

    def test_unknown_id_is_not_found(self, venue: Harness) -> None:
        assert venue.broker.lookup(venue.symbol, "0" * 32) is None

    def test_submit_fills_and_lookup_returns_the_fills(self, venue: Harness) -> None:
        request = venue.request("fill")
        outcome = _submit(venue, request)
        assert outcome.state is OrderState.FILLED, outcome.detail
        assert outcome.placed_by_this_call
        found = venue.broker.lookup(venue.symbol, request.client_order_id)
        assert found is not None
        assert found.client_order_id == request.client_order_id
        assert found.side is Side.BUY
        assert found.state is OrderState.FILLED
        assert found.filled_qty == venue.qty
        assert found.avg_price is not None
        assert found.avg_price > 0
        assert sum(f.qty for f in found.fills) == venue.qty
        assert len({f.fill_id for f in found.fills}) == len(found.fills)
        again = venue.broker.lookup(venue.symbol, request.client_order_id)
        assert again is not None
        assert [f.fill_id for f in again.fills] == [f.fill_id for f in found.fills]

    def test_resubmitting_the_same_bar_after_a_fill_gives_one_order_one_position(
        self, venue: Harness
    ) -> None:
        before = venue.broker.positions().get(venue.symbol, Decimal(0))
        request = venue.request("rerun")
        first = _submit(venue, request)
        second = _submit(venue, request)
        assert first.state is OrderState.FILLED, first.detail
        assert first.placed_by_this_call
        assert second.state is OrderState.FILLED
        assert not second.placed_by_this_call
        assert second.order is not None
        assert first.order is not None
        assert second.order.venue_order_id == first.order.venue_order_id
        assert venue.venue_orders(request.client_order_id) == 1
        assert venue.broker.positions()[venue.symbol] == before + venue.position_delta(venue.qty)

    def test_venue_dedup_rule_for_a_reused_id_after_a_fill(self, venue: Harness) -> None:
        request = venue.request("venue-rule")
        assert _submit(venue, request).state is OrderState.FILLED
        if venue.dedup_after_fill:
            with pytest.raises(DuplicateOrderError):
                venue.broker.submit(request)
            assert venue.venue_orders(request.client_order_id) == 1
        else:
            # The venue itself would fill it twice: only the lookup-before-submit protects us.
            venue.broker.submit(request)
            assert venue.venue_orders(request.client_order_id) == 2

    @pytest.mark.parametrize(
        "fault",
        [
            pytest.param({"kind": "hold", "hold_s": 1.5}, id="timeout-after-acceptance"),
            pytest.param({"kind": "status", "status": 503}, id="5xx-after-acceptance"),
            pytest.param({"kind": "disconnect"}, id="disconnect-after-acceptance"),
        ],
    )
    def test_ambiguous_failure_after_acceptance_is_resolved_by_lookup(
        self, venue: Harness, fault: dict[str, Any]
    ) -> None:
        request = venue.request(f"ambiguous-{fault['kind']}")
        venue.inject(**fault)
        outcome = _submit(venue, request)
        assert outcome.state is OrderState.FILLED, outcome.detail
        assert outcome.placed_by_this_call
        assert "resolved by lookup" in outcome.detail
        assert venue.venue_orders(request.client_order_id) == 1
        rerun = _submit(venue, request)
        assert not rerun.placed_by_this_call
        assert venue.venue_orders(request.client_order_id) == 1

    def test_rate_limited_submit_never_doubles(self, venue: Harness) -> None:
        request = venue.request("rate-limited")
        venue.inject("status", status=429, when="before")
        first = _submit(venue, request)
        assert first.state in (OrderState.FILLED, OrderState.UNKNOWN), first.detail
        assert venue.venue_orders(request.client_order_id) == (first.state is OrderState.FILLED)
        second = _submit(venue, request)
        assert second.state is OrderState.FILLED, second.detail
        assert venue.venue_orders(request.client_order_id) == 1

    def test_reject_is_final_and_names_the_reason(self, venue: Harness) -> None:
        request = venue.request("reject")
        venue.inject("reject")
        with pytest.raises(OrderRejectedError, match=r"(?i)reject|insufficient|margin|balance"):
            venue.broker.submit(request)
        assert venue.venue_orders(request.client_order_id) == 0

    def test_partial_fill_is_reported_as_partial(self, venue: Harness) -> None:
        request = venue.request("partial", qty=venue.qty * 2)
        venue.inject("partial")
        outcome = _submit(venue, request)
        # A partly filled market order either keeps working (Alpaca, IB) or has its rest
        # expired at once (Binance, Bybit spot); either way the partial quantity is reported.
        assert outcome.state in (OrderState.PARTIALLY_FILLED, OrderState.CANCELLED), outcome.detail
        order = outcome.order
        assert order is not None
        assert 0 < order.filled_qty < order.qty
        found = venue.broker.lookup(venue.symbol, request.client_order_id)
        assert found is not None
        assert found.filled_qty == order.filled_qty
        assert sum(f.qty for f in found.fills) == found.filled_qty
        open_ids = {o.client_order_id for o in venue.broker.open_orders()}
        assert (request.client_order_id in open_ids) == (found.state is OrderState.PARTIALLY_FILLED)
        assert venue.broker.positions()[venue.symbol] >= venue.position_delta(found.filled_qty)

    def test_open_order_is_listed_then_cancelled(self, venue: Harness) -> None:
        request = venue.request("cancel")
        venue.inject("rest")
        outcome = _submit(venue, request)
        assert outcome.state is OrderState.SUBMITTED, outcome.detail
        listed = {o.client_order_id: o for o in venue.broker.open_orders()}
        assert request.client_order_id in listed
        assert listed[request.client_order_id].filled_qty == 0
        venue.broker.cancel(venue.symbol, request.client_order_id)
        found = venue.broker.lookup(venue.symbol, request.client_order_id)
        assert found is not None
        assert found.state is OrderState.CANCELLED
        assert request.client_order_id not in {
            o.client_order_id for o in venue.broker.open_orders()
        }

    def test_restart_with_open_orders_is_seen_by_a_new_client(self, venue: Harness) -> None:
        request = venue.request("restart")
        venue.inject("rest")
        assert _submit(venue, request).state is OrderState.SUBMITTED
        positions = dict(venue.broker.positions())
        venue.restart()
        fresh = venue.new_broker()
        assert request.client_order_id in {o.client_order_id for o in fresh.open_orders()}
        assert dict(fresh.positions()) == positions
        rerun = submit_idempotently(fresh, request, lookups=2, delay_s=0.05)
        assert rerun.state is OrderState.SUBMITTED
        assert not rerun.placed_by_this_call
        assert venue.venue_orders(request.client_order_id) == 1

    def test_lot_rule_is_applied_before_sending(self, venue: Harness) -> None:
        asked, sent = venue.lot_case
        request = venue.request("lot", qty=asked)
        outcome = _submit(venue, request)
        assert outcome.order is not None, outcome.detail
        assert outcome.order.qty == sent
        assert venue.venue_qty(request.client_order_id) == sent

    def test_below_the_venue_minimum_is_refused_before_sending(self, venue: Harness) -> None:
        request = venue.request("too-small", qty=venue.too_small)
        before = venue.request_count()
        with pytest.raises(OrderRejectedError, match=r"not sent"):
            venue.broker.submit(request)
        assert venue.venue_orders(request.client_order_id) == 0
        # at most instrument-data reads reached the venue, never an order
        assert venue.request_count() - before <= 2
