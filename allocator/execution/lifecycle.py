"""A bar's orders at the venues: send, follow to the deadline, cancel the rest (SPEC §9).

:func:`execute_orders` sends every net order of a bar through
:func:`~.orders.submit_idempotently` (lookup first, send at most once), then follows each one
until the venue reports it final or the bar's fill deadline passes; only at the deadline is
what is left of a market order cancelled. Every acknowledgement and every change of state or
of the cumulative fill is handed to the caller's ``on_update`` as it happens, one call at a
time, so the caller can journal it in the ledger before anything else happens.

Orders run concurrently across venues and symbols (a thread pool); each venue's order
placements pass a token bucket (:class:`RateLimit`) on top of whatever limits its adapter
keeps for its own requests.

Why a module of its own rather than a part of :mod:`.orders` or :mod:`.bar`: :mod:`.orders`
holds the records and the single-order rule of SPEC §9, and :mod:`.bar` the ledger's side of a
bar; following many orders in time (threads, a deadline, a rate limit) is neither, and is
tested with scripted brokers and no ledger at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

from allocator.errors import BrokerError
from allocator.execution.orders import (
    Broker,
    BrokerOrder,
    NetOrder,
    OrderRequest,
    OrderState,
    SubmitOutcome,
    Venue,
    submit_idempotently,
)

__all__ = ["OrderResult", "RateLimit", "execute_orders"]

# States in which a market order still works at the venue: its remainder is cancelled at the
# deadline.
_OPEN_STATES = frozenset(
    {OrderState.PENDING_SUBMIT, OrderState.SUBMITTED, OrderState.PARTIALLY_FILLED}
)


class RateLimit:
    """A token bucket: ``orders_per_second`` on average, at most ``burst`` at once.

    :meth:`acquire` reserves a token and sleeps until it is due, so concurrent callers are
    served in the order they asked, each ``1 / orders_per_second`` after the previous one once
    the burst is spent.

    Parameters
    ----------
    orders_per_second : float
        The refill rate, tokens per second, > 0.
    burst : int
        The bucket's size (and its initial content), >= 1.
    clock : callable
        Monotonic seconds (``time.monotonic`` unless a test injects one).
    sleep : callable
        Sleeps for the given seconds (``time.sleep`` unless a test injects one).
    """

    def __init__(
        self,
        orders_per_second: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if orders_per_second <= 0:
            raise ValueError(f"orders_per_second must be > 0, got {orders_per_second}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.orders_per_second = float(orders_per_second)
        self.burst = int(burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until it is available.

        Returns
        -------
        float
            The seconds this call waited (0 when a token was there).
        """
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._last)
            self._last = now
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.orders_per_second)
            self._tokens -= 1.0
            wait = -self._tokens / self.orders_per_second if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


@dataclass(frozen=True)
class OrderResult:
    """Where one net order ended when :func:`execute_orders` returned.

    Attributes
    ----------
    order : NetOrder
        The bar's order.
    outcome : SubmitOutcome
        The last thing known of it (the last outcome handed to ``on_update``).
    final : bool
        Whether the venue will not change it any more (filled, cancelled or rejected); false
        for an ``unknown`` order (not resolved by the lookups, never resent) and for one whose
        remainder could not be confirmed cancelled.
    """

    order: NetOrder
    outcome: SubmitOutcome
    final: bool


class _Limited:
    """A broker whose ``submit`` waits for a token of the venue's :class:`RateLimit`."""

    def __init__(self, broker: Broker, limit: RateLimit) -> None:
        self._broker = broker
        self._limit = limit

    @property
    def name(self) -> str:
        return self._broker.name

    def submit(self, request: OrderRequest) -> BrokerOrder:
        self._limit.acquire()
        return self._broker.submit(request)

    def lookup(self, symbol: str, client_order_id: str) -> BrokerOrder | None:
        return self._broker.lookup(symbol, client_order_id)

    def open_orders(self) -> Sequence[BrokerOrder]:
        return self._broker.open_orders()

    def positions(self) -> Mapping[str, Decimal]:
        return self._broker.positions()

    def cancel(self, symbol: str, client_order_id: str) -> None:
        self._broker.cancel(symbol, client_order_id)


def _signature(found: BrokerOrder) -> tuple[OrderState, Decimal, int]:
    return found.state, found.filled_qty, len(found.fills)


def execute_orders(
    orders: Sequence[NetOrder],
    brokers: Mapping[Venue, Broker],
    *,
    fill_timeout_s: float,
    poll_s: float = 0.05,
    lookups: int = 3,
    lookup_delay_s: float = 1.0,
    rate_limits: Mapping[Venue, RateLimit] | None = None,
    on_update: Callable[[NetOrder, SubmitOutcome], None],
    max_workers: int = 16,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[OrderResult]:
    """Send a bar's orders, follow them to the fill deadline, cancel what is left there.

    For each order: :func:`~.orders.submit_idempotently` with ``order.request()`` (lookup
    first, sent at most once); ``on_update(order, outcome)`` with the acknowledgement; then,
    while the order is not final and the bar's deadline (the call's start plus
    ``fill_timeout_s``, one deadline for every order) has not passed, sleep ``poll_s``, look it
    up, and call ``on_update`` whenever its state or its cumulative fills changed. An order
    still open at the deadline has its remainder cancelled, is looked up again (up to
    ``lookups`` times, ``lookup_delay_s`` apart, until final) and reported once more. An order
    is never cancelled before the deadline. An ``unknown`` outcome ends there, ``final`` false,
    and nothing is resent.

    Parameters
    ----------
    orders : sequence of NetOrder
        The bar's orders, at most one per (venue, symbol).
    brokers : mapping of Venue to Broker
        The broker of every venue the orders use.
    fill_timeout_s : float
        Seconds from the call's start to the bar's fill deadline, >= 0.
    poll_s : float
        Seconds between two lookups of an open order, > 0.
    lookups : int
        Lookups that resolve an ambiguous submission (and confirm a cancel), >= 1.
    lookup_delay_s : float
        Seconds between those lookups.
    rate_limits : mapping of Venue to RateLimit, optional
        A token bucket per venue that each order placement passes; none for a venue left out.
    on_update : callable
        ``on_update(order, outcome)``; the calls are serialised (never two at once), so it may
        write the ledger.
    max_workers : int
        Orders followed at once, >= 1 (1 sends them one by one).
    clock : callable
        Monotonic seconds.
    sleep : callable
        Sleeps for the given seconds.

    Returns
    -------
    list of OrderResult
        One per order, in the order of ``orders``.

    Raises
    ------
    KeyError
        An order's venue has no broker (raised before anything is sent).
    Exception
        Whatever a broker call raised other than a classified
        :class:`~allocator.errors.BrokerError`, or ``on_update`` raised: re-raised once every
        other order has finished (their updates are not lost); the first in the order of
        ``orders``, the others attached as notes.
    """
    if fill_timeout_s < 0:
        raise ValueError(f"fill_timeout_s must be >= 0, got {fill_timeout_s}")
    if poll_s <= 0:
        raise ValueError(f"poll_s must be > 0, got {poll_s}")
    if max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers}")
    missing = sorted({str(o.venue) for o in orders if o.venue not in brokers})
    if missing:
        raise KeyError(f"no broker for venue(s) {', '.join(missing)}")
    if not orders:
        return []
    limits = rate_limits or {}
    routed: dict[Venue, Broker] = {
        venue: _Limited(broker, limits[venue]) if venue in limits else broker
        for venue, broker in brokers.items()
    }
    deadline = clock() + fill_timeout_s
    update_lock = threading.Lock()

    def report(order: NetOrder, outcome: SubmitOutcome) -> None:
        with update_lock:
            on_update(order, outcome)

    def follow(order: NetOrder) -> OrderResult:
        broker = routed[order.venue]
        outcome = submit_idempotently(
            broker, order.request(), lookups=lookups, delay_s=lookup_delay_s, sleep=sleep
        )
        report(order, outcome)
        placed = outcome.placed_by_this_call
        if outcome.order is None:  # unknown (nothing resent) or rejected
            return OrderResult(order=order, outcome=outcome, final=outcome.state.is_final)
        current = outcome.order
        while not current.state.is_final:
            remaining = deadline - clock()
            if remaining <= 0:
                break
            sleep(min(poll_s, remaining))
            try:
                found = broker.lookup(order.symbol, order.client_order_id)
            except BrokerError:
                continue  # a failed poll: the next one (or the deadline's) tells
            if found is None or _signature(found) == _signature(current):
                continue
            current = found
            outcome = SubmitOutcome(
                state=found.state, order=found, placed_by_this_call=placed, detail="update"
            )
            report(order, outcome)
        if current.state.is_final:
            return OrderResult(order=order, outcome=outcome, final=True)
        if current.state not in _OPEN_STATES:  # not a state a venue reports for a live order
            return OrderResult(order=order, outcome=outcome, final=False)
        detail = "remainder cancelled at the bar's fill deadline"
        try:
            broker.cancel(order.symbol, order.client_order_id)
        except BrokerError as exc:  # e.g. it filled meanwhile: the lookups below tell
            detail = f"cancel at the bar's fill deadline failed: {exc}"
        for attempt in range(max(1, lookups)):
            if attempt:
                sleep(lookup_delay_s)
            try:
                found = broker.lookup(order.symbol, order.client_order_id)
            except BrokerError as exc:
                detail = f"{detail}; lookup {attempt + 1}: {exc}"
                continue
            if found is not None:
                current = found
                if found.state.is_final:
                    break
        outcome = SubmitOutcome(
            state=current.state, order=current, placed_by_this_call=placed, detail=detail
        )
        report(order, outcome)
        return OrderResult(order=order, outcome=outcome, final=current.state.is_final)

    with ThreadPoolExecutor(
        max_workers=min(max_workers, len(orders)), thread_name_prefix="execute-orders"
    ) as pool:
        futures = [pool.submit(follow, order) for order in orders]
    errors = [exc for exc in (f.exception() for f in futures) if exc is not None]
    if errors:
        first = errors[0]
        for other in errors[1:]:
            first.add_note(f"another order failed too: {other!r}")
        raise first
    return [f.result() for f in futures]
