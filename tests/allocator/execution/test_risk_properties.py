"""Properties of the risk stage (docs/spec-12-risk.md), for any risk configuration and any bar.

Each is checked from first principles on the plan's orders and outcomes, never by the stage's
own arithmetic: no order sent exceeds a cap; in ``reducing`` no strategy's |position| and no
symbol's |net| grows; in ``halted`` nothing is sent; every intent has exactly one outcome row
and every cut one reason; and SPEC §7's attribution invariants still hold after the stage.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.config import RiskConfig, RiskLimits, RoutingConfig, VenueRiskLimits
from allocator.execution import BrokerExecution, Intent, plan_bar, settle_bar
from allocator.execution.orders import Side, Venue
from allocator.execution.reasons import RISK_REASONS
from allocator.execution.risk import RiskInputs
from allocator.execution.routing import venue_of
from allocator.states import TradingState

from .helpers import BAR, QUANTUM
from .test_properties import SYMBOLS, TABLE, bars

D = Decimal
NOW = datetime(2024, 5, 1, 15, 0, tzinfo=UTC)
CAPITAL = D(100_000)


def _cap(draw: st.DrawFn, lo: int, hi: int, scale: int = 1) -> Decimal | None:
    if draw(st.booleans()):
        return None
    return D(draw(st.integers(lo, hi))) / scale


@st.composite
def risks(draw: st.DrawFn) -> RiskInputs:
    limits = {
        "max_order_notional": _cap(draw, 1, 500_000, 100),
        "max_order_qty": _cap(draw, 1, 4_000, 100),
        "max_symbol_position": _cap(draw, 1, 800_000, 100),
    }
    overrides = {}
    for symbol in SYMBOLS:
        if draw(st.integers(0, 3)) == 0:
            overrides[symbol] = RiskLimits(
                max_order_notional=_cap(draw, 1, 200_000, 100),
                max_order_qty=_cap(draw, 1, 2_000, 100),
            )
    classes = {}
    if draw(st.booleans()):
        classes["equity"] = RiskLimits(max_order_qty=_cap(draw, 1, 3_000, 100))
    venues = {}
    for venue in ("alpaca", "ibkr", "ccxt"):
        if draw(st.booleans()):
            venues[venue] = VenueRiskLimits(
                orders_per_second=draw(st.sampled_from([None, 1.0, 2.0, 2.5])),
                orders_per_minute=draw(st.sampled_from([None, 1, 2, 3, 200])),
            )
    config = RiskConfig(
        **limits,
        max_gross_exposure=_cap(draw, 1, 300, 100),
        max_price_age_s=draw(st.sampled_from([None, None, None, 20.0, 60.0])),
        max_price_move=_cap(draw, 1, 50, 100) if draw(st.integers(0, 3)) == 0 else None,
        max_orders_per_bar=draw(st.sampled_from([None, 1, 2, 5])),
        asset_classes=classes,
        instruments=overrides,
        venues=venues,
    )
    states = st.sampled_from(list(TradingState))
    venue_states = {v: draw(states) for v in Venue if draw(st.integers(0, 7)) == 0}
    return RiskInputs(
        config=config,
        trading_state=draw(st.sampled_from([TradingState.ACTIVE] * 6 + list(TradingState))),
        venue_states=venue_states,
        planned_at=NOW,
        price_times={
            m: NOW - timedelta(seconds=draw(st.integers(0, 30)))
            for m in SYMBOLS
            if draw(st.integers(0, 9)) != 0
        },
        previous_prices={
            m: D(draw(st.integers(1, 50_000))) / 100 for m in SYMBOLS if draw(st.booleans())
        },
        recent_orders={
            v: (draw(st.integers(0, 2)), draw(st.integers(0, 3)))
            for v in Venue
            if draw(st.booleans())
        },
    )


def _plan(bar: dict[str, Any], risk: RiskInputs | None) -> Any:
    intents = [
        Intent(
            intent_id=i,
            strategy=s,
            symbol=m,
            asset_class=TABLE[m].asset_class,
            qty=lots * TABLE[m].lot_size,
            bar=BAR,
        )
        for i, s, m, lots in bar["rows"]
    ]
    return plan_bar(
        intents,
        bar=BAR,
        prices=bar["prices"],
        positions={k: q * TABLE[k[1]].lot_size for k, q in bar["positions"].items()},
        budgets=bar["budgets"],
        instruments=TABLE,
        routing=RoutingConfig(),
        total_capital=CAPITAL,
        account="paper",
        risk=risk,
    )


def _start_net(bar: dict[str, Any]) -> dict[str, Decimal]:
    net: dict[str, Decimal] = {}
    for (_, m), q in bar["positions"].items():
        net[m] = net.get(m, D(0)) + q * TABLE[m].lot_size
    return net


def _signed(order: Any) -> Decimal:
    return order.qty if order.side is Side.BUY else -order.qty


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bar=bars(), risk=risks())
def test_no_order_sent_exceeds_a_cap(bar: dict[str, Any], risk: RiskInputs) -> None:
    plan = _plan(bar, risk)
    config = risk.config
    start = _start_net(bar)
    orders_per_venue: dict[Venue, int] = {}
    for order in plan.orders:
        inst = TABLE[order.symbol]
        limits = config.limits_for(order.symbol, inst.asset_class.value)
        price = bar["prices"][order.symbol]
        if limits.max_order_qty is not None:
            assert order.qty <= limits.max_order_qty
        if limits.max_order_notional is not None:
            assert order.qty * price <= limits.max_order_notional
        n0 = start.get(order.symbol, D(0))
        n1 = n0 + _signed(order)
        if limits.max_symbol_position is not None and abs(n1) > abs(n0):
            assert abs(n1) * price <= limits.max_symbol_position
        state = risk.state_of(venue_of(inst))
        assert state is not TradingState.HALTED
        orders_per_venue[order.venue] = orders_per_venue.get(order.venue, 0) + 1
    for venue, n in orders_per_venue.items():
        rates = config.venues.get(venue.value)
        recent = risk.recent_orders.get(venue, (0, 0))
        if rates is not None and rates.orders_per_second is not None:
            assert n + recent[0] <= max(int(rates.orders_per_second), recent[0])
        if rates is not None and rates.orders_per_minute is not None:
            assert n + recent[1] <= max(rates.orders_per_minute, recent[1])
    if config.max_gross_exposure is not None:
        ends = dict(start)
        for order in plan.orders:
            ends[order.symbol] = ends.get(order.symbol, D(0)) + _signed(order)
        grew = any(abs(ends[o.symbol]) > abs(start.get(o.symbol, D(0))) for o in plan.orders)
        if grew:
            # The start positions count whole (an exit in the bar frees no room), growth on top.
            symbols = set(start) | set(ends)
            gross = sum(
                (
                    max(abs(start.get(m, D(0))), abs(ends.get(m, D(0)))) * bar["prices"][m]
                    for m in symbols
                    if m in bar["prices"]
                ),
                D(0),
            )
            assert all(m in bar["prices"] for m, q in ends.items() if q != 0)
            assert gross <= config.max_gross_exposure * CAPITAL
    if config.max_orders_per_bar is not None:
        taking: dict[str, int] = {}
        for g in plan.gated():
            if g.accepted_qty != 0:
                taking[g.strategy] = taking.get(g.strategy, 0) + 1
        assert all(n <= config.max_orders_per_bar for n in taking.values())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bar=bars(), risk=risks(), reducing=st.booleans())
def test_reducing_grows_no_position_and_halted_sends_nothing(
    bar: dict[str, Any], risk: RiskInputs, reducing: bool
) -> None:
    state = TradingState.REDUCING if reducing else TradingState.HALTED
    risk = replace(risk, trading_state=state)
    plan = _plan(bar, risk)
    if state is TradingState.HALTED:
        assert plan.orders == ()
        assert all(g.accepted_qty == 0 for g in plan.gated())
        return
    start = _start_net(bar)
    for order in plan.orders:
        n0 = start.get(order.symbol, D(0))
        assert abs(n0 + _signed(order)) <= abs(n0)
    # Each strategy's position after any fill of its accepted quantity (here: all of it).
    held = {k: q * TABLE[k[1]].lot_size for k, q in bar["positions"].items()}
    after = dict(held)
    for g in plan.gated():
        key = (g.strategy, g.symbol)
        after[key] = after.get(key, D(0)) + g.accepted_qty
    for key, q in after.items():
        assert abs(q) <= abs(held.get(key, D(0)))
    outcome = _settle(plan, bar)
    fills: dict[tuple[str, str], Decimal] = {}
    for f in outcome.fills:
        fills[(f.strategy, f.symbol)] = fills.get((f.strategy, f.symbol), D(0)) + f.qty
    for key, q in fills.items():
        assert abs(held.get(key, D(0)) + q) <= abs(held.get(key, D(0)))


def _settle(plan: Any, bar: dict[str, Any]) -> Any:
    executions = {}
    for order in plan.orders:
        lot = TABLE[order.symbol].lot_size
        lots = int(order.qty / lot)
        filled = int(lots * bar["fill"])
        executions[order.symbol] = BrokerExecution(
            filled_qty=filled * lot,
            avg_price=order.reference_price + bar["slip"],
            fee=bar["fee"] if filled else D(0),
        )
    return settle_bar(plan, executions, cash_quantum=QUANTUM)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bar=bars(), risk=risks())
def test_one_reason_row_per_cut_and_attribution_holds(
    bar: dict[str, Any], risk: RiskInputs
) -> None:
    plan = _plan(bar, risk)
    gated = plan.gated()
    ids = [g.intent_id for g in gated]
    assert sorted(ids) == sorted(i for i, _, _, _ in bar["rows"])  # one row per intent
    for g in gated:
        assert abs(g.accepted_qty) <= abs(g.requested_qty)
        assert g.accepted_qty * g.requested_qty >= 0
        assert (g.reason is None) == (g.accepted_qty == g.requested_qty)
    denials = plan.risk_denials()
    assert len({g.intent_id for g in denials}) == len(denials)
    for g in denials:
        assert g.reason in RISK_REASONS
        assert g.detail
    # SPEC §7 after the stage: virtual fills sum to the broker's, cash to −fill × P − fee.
    outcome = _settle(plan, bar)
    for order in plan.orders:
        lot = TABLE[order.symbol].lot_size
        filled = int(int(order.qty / lot) * bar["fill"]) * lot
        signed = filled if order.side is Side.BUY else -filled
        external = [f for f in outcome.fills if f.symbol == order.symbol and not f.internal]
        internal = [f for f in outcome.fills if f.symbol == order.symbol and f.internal]
        assert sum((f.qty for f in external), D(0)) == signed
        assert sum((f.qty for f in internal), D(0)) == 0
        fee = bar["fee"] if filled else D(0)
        price = order.reference_price + bar["slip"]
        cash = sum((f.cash for f in external + internal), D(0))
        assert cash == -signed * price - fee


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bar=bars())
def test_an_active_book_without_limits_plans_as_without_the_stage(bar: dict[str, Any]) -> None:
    bare = _plan(bar, None)
    staged = _plan(bar, RiskInputs(config=RiskConfig(venues={}), planned_at=NOW))
    assert staged.orders == bare.orders
    assert [(g.intent_id, g.accepted_qty, g.reason) for g in staged.gated()] == [
        (g.intent_id, g.accepted_qty, g.reason) for g in bare.gated()
    ]
