"""execute_orders against scripted brokers: follow to the deadline, cancel only there."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal

import pytest

from allocator.errors import AmbiguousBrokerError, OrderRejectedError
from allocator.execution.lifecycle import OrderResult, RateLimit, execute_orders
from allocator.execution.orders import (
    AssetClass,
    BrokerOrder,
    NetOrder,
    OrderRequest,
    OrderState,
    Side,
    SubmitOutcome,
    Venue,
    client_order_id,
)


def net_order(symbol: str, qty: str = "10", venue: Venue = Venue.ALPACA) -> NetOrder:
    return NetOrder(
        symbol=symbol,
        asset_class=AssetClass.EQUITY,
        venue=venue,
        side=Side.BUY,
        qty=Decimal(qty),
        reference_price=Decimal(100),
        client_order_id=client_order_id("paper", "2024-05-01", symbol, Side.BUY),
        buy_qty=Decimal(qty),
        sell_qty=Decimal(0),
    )


class ScriptedBroker:
    """A venue whose orders follow a script of (seconds after submit, filled qty, state).

    ``submit_delay_s`` makes every submit take that long (real sleep); ``submit_error`` raises
    on submit; ``lookup_unknown`` makes every lookup after an ambiguous submit answer None.
    """

    def __init__(
        self,
        script: Sequence[tuple[float, str, OrderState]] = ((0.0, "0", OrderState.SUBMITTED),),
        *,
        submit_delay_s: float = 0.0,
        submit_error: Exception | None = None,
        name: str = "scripted",
    ) -> None:
        self.script = list(script)
        self.submit_delay_s = submit_delay_s
        self.submit_error = submit_error
        self._name = name
        self.lock = threading.Lock()
        self.placed: dict[str, tuple[OrderRequest, float]] = {}
        self.cancelled: dict[str, float] = {}
        self.submits: list[tuple[str, float]] = []
        self.cancel_calls: list[str] = []

    @property
    def name(self) -> str:
        return self._name

    def _view(self, cid: str) -> BrokerOrder | None:
        with self.lock:
            if cid not in self.placed:
                return None
            request, at = self.placed[cid]
            cancelled_at = self.cancelled.get(cid)
        elapsed = time.monotonic() - at
        filled, state = Decimal(0), OrderState.SUBMITTED
        for after, qty, st in self.script:
            if cancelled_at is not None and at + after > cancelled_at:
                break
            if elapsed >= after:
                filled, state = Decimal(qty), st
        if cancelled_at is not None and not state.is_final:
            state = OrderState.CANCELLED
        return BrokerOrder(
            client_order_id=cid,
            venue_order_id=f"v-{cid[:6]}",
            symbol=request.symbol,
            side=request.side,
            qty=request.qty,
            filled_qty=filled,
            avg_price=Decimal(100) if filled else None,
            fee=Decimal(0),
            state=state,
        )

    def submit(self, request: OrderRequest) -> BrokerOrder:
        with self.lock:
            self.submits.append((request.client_order_id, time.monotonic()))
        if self.submit_delay_s:
            time.sleep(self.submit_delay_s)
        if self.submit_error is not None:
            if isinstance(self.submit_error, AmbiguousBrokerError):
                raise self.submit_error  # never placed: lookups find nothing
            raise self.submit_error
        with self.lock:
            self.placed[request.client_order_id] = (request, time.monotonic())
        view = self._view(request.client_order_id)
        assert view is not None
        return view

    def lookup(self, symbol: str, client_order_id: str) -> BrokerOrder | None:
        return self._view(client_order_id)

    def open_orders(self) -> Sequence[BrokerOrder]:
        return []

    def positions(self) -> Mapping[str, Decimal]:
        return {}

    def cancel(self, symbol: str, client_order_id: str) -> None:
        with self.lock:
            self.cancel_calls.append(client_order_id)
            self.cancelled[client_order_id] = time.monotonic()


class Recorder:
    """on_update that records calls and checks they never overlap."""

    def __init__(self, hold_s: float = 0.0) -> None:
        self.calls: list[tuple[str, OrderState, Decimal]] = []
        self.active = 0
        self.max_active = 0
        self.hold_s = hold_s
        self._guard = threading.Lock()

    def __call__(self, order: NetOrder, outcome: SubmitOutcome) -> None:
        with self._guard:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        if self.hold_s:
            time.sleep(self.hold_s)
        filled = outcome.order.filled_qty if outcome.order is not None else Decimal(0)
        self.calls.append((order.symbol, outcome.state, filled))
        with self._guard:
            self.active -= 1

    def states(self, symbol: str) -> list[OrderState]:
        return [state for sym, state, _ in self.calls if sym == symbol]


def run(
    orders: Sequence[NetOrder], broker: ScriptedBroker, recorder: Recorder, **kw: object
) -> list[OrderResult]:
    options: dict[str, object] = {"fill_timeout_s": 0.5, "poll_s": 0.01, "lookup_delay_s": 0.0}
    options.update(kw)
    return execute_orders(
        orders,
        {o.venue: broker for o in orders} or {Venue.ALPACA: broker},
        on_update=recorder,
        **options,  # type: ignore[arg-type]
    )


def test_accepted_then_filled_later_is_not_cancelled() -> None:
    broker = ScriptedBroker([(0.0, "0", OrderState.SUBMITTED), (0.1, "10", OrderState.FILLED)])
    recorder = Recorder()
    (result,) = run([net_order("SPY")], broker, recorder, fill_timeout_s=2.0)
    assert result.final is True
    assert result.outcome.state is OrderState.FILLED
    assert result.outcome.order is not None
    assert result.outcome.order.filled_qty == 10
    assert broker.cancel_calls == []
    assert recorder.states("SPY") == [OrderState.SUBMITTED, OrderState.FILLED]


def test_returns_as_soon_as_filled_not_at_the_deadline() -> None:
    broker = ScriptedBroker([(0.0, "0", OrderState.SUBMITTED), (0.05, "10", OrderState.FILLED)])
    start = time.monotonic()
    run([net_order("SPY")], broker, Recorder(), fill_timeout_s=5.0)
    assert time.monotonic() - start < 1.0


def test_partial_at_the_deadline_cancels_the_remainder_and_reports_the_partial() -> None:
    broker = ScriptedBroker(
        [
            (0.0, "0", OrderState.SUBMITTED),
            (0.05, "4", OrderState.PARTIALLY_FILLED),
            (5.0, "10", OrderState.FILLED),
        ]
    )
    recorder = Recorder()
    start = time.monotonic()
    (result,) = run([net_order("SPY")], broker, recorder, fill_timeout_s=0.3)
    cid = net_order("SPY").client_order_id
    assert broker.cancel_calls == [cid]
    assert broker.cancelled[cid] - start >= 0.3 - 0.02  # never before the deadline
    assert result.final is True
    assert result.outcome.state is OrderState.CANCELLED
    assert result.outcome.order is not None
    assert result.outcome.order.filled_qty == 4
    assert "deadline" in result.outcome.detail
    assert recorder.calls == [
        ("SPY", OrderState.SUBMITTED, Decimal(0)),
        ("SPY", OrderState.PARTIALLY_FILLED, Decimal(4)),
        ("SPY", OrderState.CANCELLED, Decimal(4)),
    ]


def test_nothing_filled_at_the_deadline_is_cancelled_once() -> None:
    broker = ScriptedBroker([(0.0, "0", OrderState.SUBMITTED)])
    (result,) = run([net_order("SPY")], broker, Recorder(), fill_timeout_s=0.1)
    assert len(broker.cancel_calls) == 1
    assert result.outcome.state is OrderState.CANCELLED
    assert result.final


def test_unknown_ends_not_final_and_is_never_resent() -> None:
    broker = ScriptedBroker(submit_error=AmbiguousBrokerError("read timeout"))
    recorder = Recorder()
    (result,) = run([net_order("SPY")], broker, recorder, lookups=3)
    assert result.final is False
    assert result.outcome.state is OrderState.UNKNOWN
    assert len(broker.submits) == 1
    assert broker.cancel_calls == []
    assert recorder.states("SPY") == [OrderState.UNKNOWN]


def test_rejected_is_final_and_reported() -> None:
    broker = ScriptedBroker(submit_error=OrderRejectedError("insufficient buying power"))
    recorder = Recorder()
    (result,) = run([net_order("SPY")], broker, recorder)
    assert result.final is True
    assert result.outcome.state is OrderState.REJECTED
    assert recorder.states("SPY") == [OrderState.REJECTED]


def test_an_order_the_venue_already_holds_is_not_sent_again() -> None:
    broker = ScriptedBroker([(0.0, "10", OrderState.FILLED)])
    order = net_order("SPY")
    run([order], broker, Recorder())
    (result,) = run([order], broker, Recorder())
    assert len(broker.submits) == 1
    assert result.outcome.placed_by_this_call is False
    assert result.final


def test_orders_overlap() -> None:
    n = 20
    broker = ScriptedBroker([(0.0, "10", OrderState.FILLED)], submit_delay_s=0.05)
    orders = [net_order(f"S{i}") for i in range(n)]
    start = time.monotonic()
    results = run(orders, broker, Recorder(), max_workers=16)
    elapsed = time.monotonic() - start
    assert all(r.final for r in results)
    assert elapsed < 0.05 * n / 2.5, elapsed  # ~50 ms, far from n × 50 ms = 1 s
    start = time.monotonic()
    run([net_order(f"T{i}") for i in range(4)], broker, Recorder(), max_workers=1)
    assert time.monotonic() - start >= 4 * 0.05


def test_results_keep_the_orders_order() -> None:
    broker = ScriptedBroker([(0.0, "10", OrderState.FILLED)])
    orders = [net_order(f"S{i}") for i in range(8)]
    results = run(orders, broker, Recorder())
    assert [r.order for r in results] == orders


def test_on_update_calls_never_overlap() -> None:
    broker = ScriptedBroker([(0.0, "0", OrderState.SUBMITTED), (0.02, "10", OrderState.FILLED)])
    recorder = Recorder(hold_s=0.005)
    run([net_order(f"S{i}") for i in range(10)], broker, recorder, fill_timeout_s=3.0)
    assert recorder.max_active == 1
    assert len(recorder.calls) == 20


def test_rate_limit_is_respected_per_venue() -> None:
    alpaca = ScriptedBroker([(0.0, "10", OrderState.FILLED)])
    ccxt = ScriptedBroker([(0.0, "10", OrderState.FILLED)])
    orders = [net_order(f"A{i}") for i in range(6)] + [
        net_order(f"C{i}", venue=Venue.CCXT) for i in range(6)
    ]
    limit = RateLimit(orders_per_second=20, burst=2)
    start = time.monotonic()
    execute_orders(
        orders,
        {Venue.ALPACA: alpaca, Venue.CCXT: ccxt},
        fill_timeout_s=1.0,
        poll_s=0.01,
        rate_limits={Venue.ALPACA: limit},
        on_update=Recorder(),
    )
    times = sorted(t - start for _, t in alpaca.submits)
    # burst of 2 at once, then one every 50 ms: the 6th no sooner than 4 × 50 ms
    assert times[-1] >= 4 * 0.05 - 0.01, times
    for k, t in enumerate(times):
        assert t + 0.01 >= max(0, k - 1) * 0.05, times
    # the venue without a limit is not slowed
    assert max(t - start for _, t in ccxt.submits) < 0.15


def test_rate_limit_with_an_injected_clock() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limit = RateLimit(orders_per_second=10, burst=3, clock=lambda: now[0], sleep=sleep)
    waits = [limit.acquire() for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(0.1)
    assert waits[4] == pytest.approx(0.1)
    now[0] += 10.0  # refills up to the burst, no more
    assert [limit.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limit.acquire() == pytest.approx(0.1)


def test_an_unclassified_error_propagates_after_the_others_finished() -> None:
    good = ScriptedBroker([(0.0, "0", OrderState.SUBMITTED), (0.1, "10", OrderState.FILLED)])
    bad = ScriptedBroker(submit_error=RuntimeError("bug in the adapter"))
    recorder = Recorder()
    with pytest.raises(RuntimeError, match="bug in the adapter"):
        execute_orders(
            [net_order("BAD", venue=Venue.CCXT), net_order("SPY")],
            {Venue.ALPACA: good, Venue.CCXT: bad},
            fill_timeout_s=2.0,
            poll_s=0.01,
            on_update=recorder,
        )
    assert recorder.states("SPY") == [OrderState.SUBMITTED, OrderState.FILLED]


def test_a_failed_poll_is_retried_not_fatal() -> None:
    broker = ScriptedBroker([(0.0, "0", OrderState.SUBMITTED), (0.05, "10", OrderState.FILLED)])
    real_lookup = broker.lookup
    calls = [0]

    def flaky(symbol: str, cid: str) -> BrokerOrder | None:
        calls[0] += 1
        if calls[0] in (2, 3):  # the first is submit_idempotently's pre-submit lookup
            raise AmbiguousBrokerError("503")
        return real_lookup(symbol, cid)

    broker.lookup = flaky  # type: ignore[method-assign]
    (result,) = run([net_order("SPY")], broker, Recorder(), fill_timeout_s=2.0)
    assert result.final
    assert result.outcome.state is OrderState.FILLED
    assert broker.cancel_calls == []


def test_missing_broker_raises_before_sending() -> None:
    broker = ScriptedBroker()
    with pytest.raises(KeyError, match="ccxt"):
        execute_orders(
            [net_order("SPY"), net_order("BTC", venue=Venue.CCXT)],
            {Venue.ALPACA: broker},
            fill_timeout_s=0.1,
            on_update=Recorder(),
        )
    assert broker.submits == []


def test_no_orders() -> None:
    assert execute_orders([], {}, fill_timeout_s=1.0, on_update=Recorder()) == []
