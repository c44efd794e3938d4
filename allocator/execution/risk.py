"""The pre-trade risk stage of one bar (docs/spec-12-risk.md, the project's §12).

It runs inside :func:`~allocator.execution.bar.plan_bar` in two places, both pure:

* **Before gating**, :func:`restriction` says what the trading states and the price collar do
  to one routed intent: refuse it whole (the book or its venue ``halted``: nothing is sent) or
  keep only its exit part (the book or its venue ``reducing``; a venue halted by reconciliation,
  SPEC §9; a symbol whose price is stale or moved too far, ``risk_price``). The exit part is
  cut by the bar's one exits-only rule, ``_halt_entries`` of :mod:`~allocator.execution.bar`.
* **After gating and before netting**, :func:`apply_limits` cuts the accepted lots so that,
  in this order: no strategy has more than ``max_orders_per_bar`` intents in the bar
  (``risk_rate``); no symbol's net position of the book grows while reducing (``reducing``) or
  beyond ``max_symbol_position`` (``risk_position``); no net order exceeds ``max_order_qty``
  (``risk_qty``) or ``max_order_notional`` (``risk_notional``); the book's gross exposure stays
  within ``max_gross_exposure`` × total capital, counting the start positions and granting
  growth in symbol order (``risk_exposure``); and no venue gets more
  orders than its rate limits leave (``risk_rate``).

A cut of a symbol's net takes lots back from the side that makes the net (the buys of a buy
order), the entry parts first, then the exit parts, each from the last intent in gating order
back: the other side's intents and the crossed quantity are untouched, so SPEC §7's
attribution holds as it does for the ``min_notional`` cut. Every cut intent carries one reason
code and a :class:`RiskNote` with the limit and the value it was compared with.

Why two places: a state or a collar is about an intent (its exit part is defined against the
strategy's running position, before any budget), a cap is about what the book does after the
bar (the net order, the net position, the gross), known only once gating has decided.

Everything the stage reads is in :class:`RiskInputs`, frozen with the plan
(:mod:`~allocator.execution.frozen`): the configuration, the trading states, the planning
instant, the prices' times, the previous bar's prices and the venues' recent order counts. So a
re-plan gives the same cuts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Context, Decimal
from typing import Any

import numpy as np

from allocator.arrays import CodeArray, IntArray
from allocator.config import RiskConfig
from allocator.execution.book import BarBook
from allocator.execution.instruments import Instrument
from allocator.execution.orders import Venue
from allocator.execution.reasons import Reason
from allocator.execution.records import exact
from allocator.execution.routing import RoutedIntent
from allocator.states import TradingState

__all__ = [
    "BOOK",
    "RATE_WINDOWS_S",
    "Restriction",
    "RiskDenial",
    "RiskInputs",
    "RiskMark",
    "RiskNote",
    "SendGate",
    "StateChange",
    "TradingStatus",
    "apply_limits",
    "book_equity",
    "collar_note",
    "kill_switch",
    "oldest_fresh",
    "restriction",
]

RATE_WINDOWS_S = (1, 60)
"""The windows of bar time (seconds) of ``orders_per_second`` and ``orders_per_minute``."""

_HALTED = Reason.HALTED.code
_REDUCING = Reason.REDUCING.code
_ROUTING = Reason.ROUTING.code
_NOTIONAL = Reason.RISK_NOTIONAL.code
_QTY = Reason.RISK_QTY.code
_POSITION = Reason.RISK_POSITION.code
_EXPOSURE = Reason.RISK_EXPOSURE.code
_PRICE = Reason.RISK_PRICE.code
_RATE = Reason.RISK_RATE.code


@dataclass(frozen=True, kw_only=True, slots=True)
class RiskInputs:
    """Everything the risk stage reads for one bar (frozen with the plan).

    Attributes
    ----------
    config : RiskConfig
        The ``[risk]`` limits.
    trading_state : TradingState
        The book's state when the bar was planned (or the stricter one at send time).
    venue_states : mapping of Venue to TradingState
        Each venue's own state (a venue not listed is ``active``).
    state_detail : str
        Who set the book's state and why (the journal's row), for the denials' details.
    venue_details : mapping of Venue to str
        The same for each venue's state.
    planned_at : datetime or None
        The planning instant (UTC) the prices' ages are measured at.
    price_times : mapping of str to datetime
        When each reference price was taken (UTC); a symbol missing has no known age.
    previous_prices : mapping of str to Decimal
        The symbol's reference price in the latest earlier bar that had one.
    recent_orders : mapping of Venue to tuple of int
        Orders sent to the venue by earlier bars within each window of :data:`RATE_WINDOWS_S`
        of bar time before this bar.
    """

    config: RiskConfig = field(default_factory=RiskConfig)
    trading_state: TradingState = TradingState.ACTIVE
    venue_states: Mapping[Venue, TradingState] = field(default_factory=dict)
    state_detail: str = ""
    venue_details: Mapping[Venue, str] = field(default_factory=dict)
    planned_at: datetime | None = None
    price_times: Mapping[str, datetime] = field(default_factory=dict)
    previous_prices: Mapping[str, Decimal] = field(default_factory=dict)
    recent_orders: Mapping[Venue, tuple[int, ...]] = field(default_factory=dict)

    def state_of(self, venue: Venue) -> TradingState:
        """Return the state that applies to ``venue``: the stricter of the book's and its own."""
        return self.trading_state.stricter(self.venue_states.get(venue, TradingState.ACTIVE))


@dataclass(frozen=True, slots=True)
class RiskNote:
    """Why one intent was cut.

    ``code`` is its reason code, ``detail`` a note for a person, ``limit`` the limit that bound
    and ``value`` the figure compared with it (``None``: no figure).
    """

    code: int
    detail: str
    limit: Decimal | None = None
    value: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Restriction:
    """What happens to one routed intent before gating.

    ``exits_only`` false: it is refused whole; true: it keeps the part that brings the
    strategy's running position towards flat. ``why`` opens the detail.
    """

    code: int
    why: str
    exits_only: bool
    limit: Decimal | None = None
    value: Decimal | None = None


def collar_note(
    risk: RiskInputs, symbol: str, price: Decimal | None, *, oldest: datetime | None = None
) -> tuple[str, Decimal | None, Decimal | None] | None:
    """Return why ``symbol``'s reference price fails the collar, with limit and value; or None.

    The price is stale when it is older than ``max_price_age_s`` at ``planned_at`` or has no
    known time (an unknown age fails closed); it moved too far when
    |price − previous| > ``max_price_move`` × previous. A symbol without a price is left to
    ``no_price``; one without a previous price has no move to check. ``oldest``
    (:func:`oldest_fresh`), when given, skips the age arithmetic of the prices taken after it.
    """
    config = risk.config
    if price is None:
        return None
    if config.max_price_age_s is not None:
        taken = risk.price_times.get(symbol)
        if taken is None or risk.planned_at is None:
            limit = Decimal(str(config.max_price_age_s))
            return (f"{symbol}'s price has no known time (max_price_age_s {limit} s)", limit, None)
        if (oldest is None or taken < oldest) and (
            (seconds := (risk.planned_at - taken).total_seconds()) > config.max_price_age_s
        ):
            limit, age = Decimal(str(config.max_price_age_s)), Decimal(str(seconds))
            return (f"{symbol}'s price is {age} s old (max_price_age_s {limit} s)", limit, age)
    move_limit = config.max_price_move
    previous = risk.previous_prices.get(symbol)
    if move_limit is not None and previous is not None and previous > 0:
        change = exact.subtract(price, previous).copy_abs()
        if change > exact.multiply(move_limit, previous):
            move = (change / previous).quantize(Decimal("0.000001"))
            return (
                f"{symbol}'s price {price} moved {move} from the previous bar's {previous} "
                f"(max_price_move {move_limit})",
                move_limit,
                move,
            )
    return None


def oldest_fresh(risk: RiskInputs) -> datetime | None:
    """Return ``planned_at`` − ``max_price_age_s``: a price taken after it is fresh."""
    if risk.planned_at is None or risk.config.max_price_age_s is None:
        return None
    return risk.planned_at - timedelta(seconds=risk.config.max_price_age_s)


def restriction(
    risk: RiskInputs | None,
    prices: Mapping[str, Decimal],
    halted_venues: frozenset[Venue],
) -> Callable[[RoutedIntent], Restriction | None] | None:
    """Return what restricts a routed intent before gating, or ``None`` when nothing can.

    In priority order: the book halted, the intent's venue halted (refused whole, ``halted``);
    the book or the venue reducing (exits only, ``reducing``); the venue halted by
    reconciliation (exits only, ``routing``, SPEC §9); the symbol's price failing the collar
    (exits only, ``risk_price``).
    """
    states = risk is not None and (
        risk.trading_state is not TradingState.ACTIVE
        or any(s is not TradingState.ACTIVE for s in risk.venue_states.values())
    )
    collar = risk is not None and (
        risk.config.max_price_age_s is not None or risk.config.max_price_move is not None
    )
    if not states and not collar and not halted_venues:
        return None
    collared: dict[str, Restriction | None] = {}
    oldest = None if risk is None else oldest_fresh(risk)

    def restrict(r: RoutedIntent) -> Restriction | None:
        if risk is not None and states:
            book = risk.trading_state
            own = risk.venue_states.get(r.venue, TradingState.ACTIVE)
            if book is TradingState.HALTED:
                return Restriction(_HALTED, f"the book is halted ({risk.state_detail})", False)
            if own is TradingState.HALTED:
                why = f"venue {r.venue} is halted ({risk.venue_details.get(r.venue, '')})"
                return Restriction(_HALTED, why, False)
            if book is TradingState.REDUCING:
                return Restriction(_REDUCING, f"the book is reducing ({risk.state_detail})", True)
            if own is TradingState.REDUCING:
                why = f"venue {r.venue} is reducing ({risk.venue_details.get(r.venue, '')})"
                return Restriction(_REDUCING, why, True)
        if r.venue in halted_venues:
            return Restriction(_ROUTING, f"venue {r.venue} is halted by reconciliation", True)
        if risk is not None and collar:
            if r.symbol not in collared:
                found = collar_note(risk, r.symbol, prices.get(r.symbol), oldest=oldest)
                collared[r.symbol] = (
                    None
                    if found is None
                    else Restriction(_PRICE, found[0], True, limit=found[1], value=found[2])
                )
            return collared[r.symbol]
        return None

    return restrict


# -- after gating ------------------------------------------------------------------------------


def _sum_by(codes: IntArray, values: IntArray, n: int) -> IntArray:
    """Sum ``values`` by ``codes`` into ``n`` bins, exactly (a float sum while it is exact)."""
    if len(values) and float(np.abs(values).max()) * len(values) < 2.0**52:
        out: IntArray = np.bincount(codes, weights=values, minlength=n).astype(np.int64)
        return out
    exact_sum = np.zeros(n, dtype=np.int64)
    np.add.at(exact_sum, codes, values)
    return exact_sum


def _take_back(amounts: IntArray, excess: int) -> IntArray:
    """How much to take from each of ``amounts`` (>= 0, in the order taken) to total ``excess``."""
    before = np.cumsum(amounts) - amounts
    taken: IntArray = np.minimum(amounts, np.maximum(excess - before, 0))
    return taken


_SCANS = 32  # symbols looked up by a scan before the intents are grouped by symbol once


class _Cutter:
    """Cuts a symbol's net takes, recording a reason and a note per cut intent."""

    def __init__(self, book: BarBook, accepted: IntArray, reason: CodeArray) -> None:
        self.book = book
        self.accepted = accepted
        self.reason = reason
        self.notes: dict[int, RiskNote] = {}
        self._by_sym: list[IntArray] | None = None
        self._scanned: dict[int, IntArray] = {}

    def intents_of(self, m: int) -> IntArray:
        """Symbol ``m``'s intents, in gating order (a scan while few symbols are cut)."""
        if m in self._scanned:
            return self._scanned[m]
        if self._by_sym is None and len(self._scanned) < _SCANS:
            found: IntArray = np.flatnonzero(self.book.i_sym == m)
            self._scanned[m] = found
            return found
        if self._by_sym is None:
            order = np.argsort(self.book.i_sym, kind="stable")  # gating order within a symbol
            bounds = np.searchsorted(self.book.i_sym[order], np.arange(len(self.book.symbols) + 1))
            self._by_sym = [order[bounds[k] : bounds[k + 1]] for k in range(len(bounds) - 1)]
        return self._by_sym[m]

    def cut(self, m: int, sign: int, excess: int, note: RiskNote) -> None:
        """Take ``excess`` lots from symbol ``m``'s ``sign`` side (entries first, from the end)."""
        if excess <= 0:
            return
        book = self.book
        idx = self.intents_of(m)
        acc = self.accepted[idx]
        slots = book.i_slot[idx]
        if not len(idx):
            return
        cs = np.cumsum(acc)
        prior = cs - acc
        first = np.ones(len(idx), dtype=np.bool_)
        first[1:] = slots[1:] != slots[:-1]
        gid = np.cumsum(first) - 1
        before = book.slot_start[slots] + prior - prior[first][gid]
        reduces = (before != 0) & (np.sign(before) != np.sign(acc))
        exit_part = np.where(reduces, np.sign(acc) * np.minimum(np.abs(acc), np.abs(before)), 0)
        entry_part = acc - exit_part
        side = np.sign(acc) == sign
        rev = np.arange(len(idx) - 1, -1, -1)
        taken = np.zeros(len(idx), dtype=np.int64)
        left = excess
        for part in (entry_part, exit_part):
            amounts = np.where(side, np.abs(part), 0)[rev]
            got = _take_back(amounts, left)[::-1]
            taken += got
            left -= int(got.sum())
            if left <= 0:
                break
        hit = np.flatnonzero(taken)
        self.accepted[idx[hit]] -= sign * taken[hit]
        self.reason[idx[hit]] = note.code
        for t in idx[hit].tolist():
            self.notes[t] = note


def _scale(values: Sequence[Decimal]) -> int:
    k = 0
    for value in values:
        exponent = value.normalize().as_tuple().exponent
        if isinstance(exponent, int) and -exponent > k:
            k = -exponent
    return k


_DOWN = Context(prec=200, rounding=ROUND_FLOOR)


def _lots_within(cap: Decimal, lot: Decimal, price: Decimal) -> int:
    """Return the most whole lots whose notional (lots × lot × price) is at most ``cap``.

    The quotient is rounded down at 200 digits, so it never exceeds the exact one.
    """
    return int(_DOWN.divide(cap, lot * price).to_integral_value(rounding=ROUND_FLOOR))


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def apply_limits(
    book: BarBook,
    instruments: Sequence[Instrument],
    venues: Sequence[Venue],
    accepted: IntArray,
    reason: CodeArray,
    *,
    risk: RiskInputs,
    total_capital: Decimal,
) -> tuple[IntArray, CodeArray, dict[int, RiskNote]]:
    """Cut the gated lots to the risk limits (see the module doc).

    ``instruments`` and ``venues`` are by symbol code; ``accepted`` signed lots per intent.
    Returns copies of ``accepted`` and ``reason`` with the cuts, and a note per cut intent (by
    book index).
    """
    config = risk.config
    n_sym = len(book.symbols)
    accepted = accepted.copy()
    reason = reason.copy()
    cutter = _Cutter(book, accepted, reason)

    # 1. At most max_orders_per_bar intents of one strategy take part (gating order).
    cap = config.max_orders_per_bar
    if (
        cap is not None
        and book.n_intents > cap
        and int(np.bincount(book.i_strat[accepted != 0]).max(initial=0)) > cap
    ):
        nz = accepted != 0
        counted = np.cumsum(nz)
        starts = np.searchsorted(book.i_strat, np.arange(len(book.strategies)))
        offset = np.where(starts > 0, counted[np.maximum(starts - 1, 0)], 0)
        rank = counted - offset[book.i_strat]
        over = np.flatnonzero(nz & (rank > cap))
        if len(over):
            accepted[over] = 0
            reason[over] = _RATE
            limit = Decimal(cap)
            for t in over.tolist():
                strategy = book.strategies[int(book.i_strat[t])]
                cutter.notes[t] = RiskNote(
                    _RATE,
                    f"{strategy}'s intent number {int(rank[t])} of the bar is beyond "
                    f"max_orders_per_bar {cap}",
                    limit,
                    Decimal(int(rank[t])),
                )

    by_venue_state = {v: risk.state_of(v) for v in set(venues)}
    states = [by_venue_state[v] for v in venues]
    reducing = [s is not TradingState.ACTIVE for s in states]
    need_symbol = config.has_symbol_limits or any(reducing)
    need_exposure = config.max_gross_exposure is not None
    rate_venues = {
        v: limits
        for v, limits in ((Venue(name), x) for name, x in config.venues.items())
        if limits.orders_per_second is not None or limits.orders_per_minute is not None
    }
    if not (need_symbol or need_exposure or rate_venues):
        return accepted, reason, cutter.notes

    start = np.zeros(n_sym, dtype=np.int64)
    if len(book.pos_lots):
        np.add.at(start, book.pos_sym, book.pos_lots)
    delta = _sum_by(book.i_sym, accepted, n_sym)
    # Floats only to find the symbols a limit may bind on; every decision below is exact.
    lot_f = np.array([float(x) for x in book.lot_size], dtype=np.float64)
    unit_f = lot_f * np.array([0.0 if p is None else float(p) for p in book.price])
    exact_units = _ExactUnits(book)

    # 2.-3. Per symbol: the book's net (reducing, max_symbol_position), then the order's caps.
    if need_symbol:
        caps = _symbol_caps(config, instruments)
        lots_of: dict[tuple[Decimal, Decimal], int] = {}  # max_order_qty in lots of a lot size
        held0 = start.tolist()
        ends = start + delta
        grows = np.abs(ends) > np.abs(start)
        near = 1 - 1e-9
        maybe = np.asarray(reducing, dtype=np.bool_) & grows
        notional_f, qty_f, position_f = _cap_arrays(caps)
        maybe |= grows & (np.abs(ends) * unit_f >= position_f * near)
        maybe |= np.abs(delta) * lot_f >= qty_f * near
        maybe |= np.abs(delta) * unit_f >= notional_f * near
        for m in np.flatnonzero(maybe & (delta != 0)).tolist():
            d = int(delta[m])
            n0 = held0[m]
            notional_cap, qty_cap, position_cap = caps[m]
            price = book.price[m]
            allowed = abs(n0) if reducing[m] else None
            code = _REDUCING if reducing[m] else 0
            if position_cap is not None and price is not None:
                room = max(abs(n0), _lots_within(position_cap, book.lot_size[m], price))
                if allowed is None or room < allowed:
                    allowed, code = room, _POSITION
            if allowed is not None and abs(n0 + d) > allowed:
                note = _net_note(code, book, m, n0, d, states[m], venues[m], position_cap)
                cutter.cut(m, 1 if d > 0 else -1, abs(n0 + d) - allowed, note)
                d = _net_of(cutter, m)
            if d == 0 or price is None:
                delta[m] = d
                continue
            order_cap: int | None = None
            code = 0
            if qty_cap is not None:
                key = (qty_cap, book.lot_size[m])
                if key not in lots_of:
                    lots_of[key] = int(divmod(qty_cap, book.lot_size[m])[0])
                order_cap, code = lots_of[key], _QTY
            if notional_cap is not None:
                room = _lots_within(notional_cap, book.lot_size[m], price)
                if order_cap is None or room < order_cap:
                    order_cap, code = room, _NOTIONAL
            if order_cap is not None and abs(d) > order_cap:
                note = _order_note(code, book, m, d, qty_cap, notional_cap)
                cutter.cut(m, 1 if d > 0 else -1, abs(d) - order_cap, note)
                d = _net_of(cutter, m)
            delta[m] = d

    # 4. The book's gross exposure after the bar (growth granted in symbol order).
    if need_exposure:
        assert config.max_gross_exposure is not None
        limit = exact.multiply(config.max_gross_exposure, total_capital)
        s0 = start.tolist()
        end = start + delta
        e1 = end.tolist()
        growing = np.flatnonzero(np.abs(end) > np.abs(start)).tolist()
        unpriced = np.flatnonzero((unit_f == 0) & (end != 0)).tolist() if growing else []
        unpriced = [m for m in unpriced if book.price[m] is None]
        if unpriced and growing:
            names = ", ".join(book.symbols[m] for m in unpriced[:5])
            note = RiskNote(
                _EXPOSURE,
                f"the book's gross exposure cannot be valued (no price for {names}): no "
                f"symbol's net may grow (max_gross_exposure {config.max_gross_exposure} × "
                f"{total_capital})",
                limit,
                None,
            )
            for m in growing:
                d = int(delta[m])
                cutter.cut(m, 1 if d > 0 else -1, abs(e1[m]) - abs(s0[m]), note)
                delta[m] = _net_of(cutter, m)
        elif growing and _may_exceed(s0, e1, growing, unit_f, float(limit)):
            unit = exact_units
            k = unit.k
            # Exits in this bar free no room: they may still be cut below or not fill.
            base = sum(abs(s0[m]) * unit[m] for m in range(n_sym))
            room = _floor(limit * unit.scale) - base
            wanted = base + sum((abs(e1[m]) - abs(s0[m])) * unit[m] for m in growing)
            gross = Decimal(wanted).scaleb(-k)
            for m in growing:
                grow = abs(e1[m]) - abs(s0[m])
                granted = min(grow, room // unit[m]) if room > 0 else 0
                room -= granted * unit[m]
                if granted < grow:
                    d = int(delta[m])
                    note = RiskNote(
                        _EXPOSURE,
                        f"{book.symbols[m]}: the book's gross exposure {gross} (start positions "
                        "plus this bar's growth) would exceed "
                        f"max_gross_exposure {config.max_gross_exposure} × total capital "
                        f"{total_capital} = {limit}",
                        limit,
                        gross,
                    )
                    cutter.cut(m, 1 if d > 0 else -1, grow - granted, note)
                    delta[m] = _net_of(cutter, m)

    # 5. The venues' order rate limits: the orders beyond what they leave are not sent.
    if rate_venues:
        by_venue: dict[Venue, list[int]] = {}
        for m in np.flatnonzero(delta != 0).tolist():
            if book.price[m] is not None and venues[m] in rate_venues:
                by_venue.setdefault(venues[m], []).append(m)
        for venue, symbols in by_venue.items():
            rates = rate_venues[venue]
            recent = risk.recent_orders.get(venue, (0,) * len(RATE_WINDOWS_S))
            budget: int | None = None
            what = ""
            windows = (rates.orders_per_second, rates.orders_per_minute)
            for (window, rate), before in zip(
                zip(RATE_WINDOWS_S, windows, strict=True), recent, strict=True
            ):
                if rate is None:
                    continue
                allowed_n = max(int(rate) - int(before), 0)  # each rate is per its window
                if budget is None or allowed_n < budget:
                    budget = allowed_n
                    name = "orders_per_second" if window == 1 else "orders_per_minute"
                    what = f"{name} {rate:g} with {before} sent in the {window} s before"
            if budget is None or len(symbols) <= budget:
                continue  # an upper bound of its orders is within the budget
            units = exact_units
            symbols = [  # the orders sent: not those below their minimum notional
                m
                for m in symbols
                if abs(int(delta[m])) * units[m] >= instruments[m].min_notional.scaleb(units.k)
            ]
            if len(symbols) <= budget:
                continue

            def grows(m: int) -> bool:
                return abs(int(start[m] + delta[m])) > abs(int(start[m]))

            ranked = sorted(symbols, key=lambda m: (grows(m), book.symbols[m]))
            limit_dec = Decimal(budget)
            for rank_n, m in enumerate(ranked[budget:], start=budget + 1):
                d = int(delta[m])
                note = RiskNote(
                    _RATE,
                    f"{book.symbols[m]}: order {rank_n} of {len(symbols)} to {venue} in this "
                    f"bar is beyond its rate limit ({what})",
                    limit_dec,
                    Decimal(len(symbols)),
                )
                cutter.cut(m, 1 if d > 0 else -1, abs(d), note)
                delta[m] = _net_of(cutter, m)
    return accepted, reason, cutter.notes


class _ExactUnits:
    """Each symbol's lot × price as an exact integer in units of ``10**-k``, made on first use.

    ``k`` makes every one of them whole; a symbol without a price has 0.
    """

    def __init__(self, book: BarBook) -> None:
        self.book = book
        self._units: list[int] | None = None
        self._k = 0

    def _build(self) -> list[int]:
        if self._units is None:
            dec = [
                None if p is None else lot * p
                for lot, p in zip(self.book.lot_size, self.book.price, strict=True)
            ]
            self._k = _scale([u for u in dec if u is not None])
            self._units = [0 if u is None else int(u.scaleb(self._k)) for u in dec]
        return self._units

    def __getitem__(self, m: int) -> int:
        return self._build()[m]

    @property
    def k(self) -> int:
        """The scale: units are of ``10**-k`` of the quote currency."""
        self._build()
        return self._k

    @property
    def scale(self) -> Decimal:
        """``10**k``."""
        return Decimal(10) ** self.k


def _cap_arrays(
    caps: Sequence[tuple[Decimal | None, Decimal | None, Decimal | None]],
) -> tuple[Any, Any, Any]:
    """Return the caps as float arrays (``inf``: none), or floats when every symbol's agree."""
    if not caps or all(c is caps[0] for c in caps):
        first = caps[0] if caps else (None, None, None)
        return tuple(np.inf if c is None else float(c) for c in first)  # type: ignore[return-value]
    columns = list(zip(*caps, strict=True))
    return tuple(  # type: ignore[return-value]
        np.array([np.inf if c is None else float(c) for c in col]) for col in columns
    )


def _may_exceed(
    s0: Sequence[int], e1: Sequence[int], growing: Sequence[int], unit_f: Any, limit: float
) -> bool:
    """Whether the start gross plus the growth may exceed ``limit`` (a float bound, generous)."""
    start = np.abs(np.asarray(s0, dtype=np.float64))
    end = np.abs(np.asarray(e1, dtype=np.float64))  # floats: a bound, not a decision
    idx = np.asarray(growing, dtype=np.int64)
    gross = float((start * unit_f).sum() + ((end[idx] - start[idx]) * unit_f[idx]).sum())
    return gross >= limit * (1 - 1e-9)


def _symbol_caps(
    config: RiskConfig, instruments: Sequence[Instrument]
) -> list[tuple[Decimal | None, Decimal | None, Decimal | None]]:
    """Each symbol's (max_order_notional, max_order_qty, max_symbol_position), overrides in."""
    book_caps = (config.max_order_notional, config.max_order_qty, config.max_symbol_position)
    if not config.instruments and not config.asset_classes:
        return [book_caps] * len(instruments)
    out = []
    for inst in instruments:
        if inst.symbol in config.instruments or inst.asset_class.value in config.asset_classes:
            limits = config.limits_for(inst.symbol, inst.asset_class.value)
            out.append(
                (limits.max_order_notional, limits.max_order_qty, limits.max_symbol_position)
            )
        else:
            out.append(book_caps)
    return out


def _net_note(
    code: int,
    book: BarBook,
    m: int,
    n0: int,
    d: int,
    state: TradingState,
    venue: Venue,
    cap: Decimal | None,
) -> RiskNote:
    """Return the note of a cut of symbol ``m``'s net (reducing, max_symbol_position)."""
    symbol, lot, price = book.symbols[m], book.lot_size[m], book.price[m]
    if code == _REDUCING:
        return RiskNote(
            code,
            f"{symbol}: the book is {state} at {venue}: its net position {n0 * lot} may not grow",
            n0 * lot,
            (n0 + d) * lot,
        )
    assert price is not None
    return RiskNote(
        code,
        f"{symbol}: the book's net {(n0 + d) * lot} × {price} would exceed "
        f"max_symbol_position {cap}",
        cap,
        exact.multiply(abs(n0 + d) * lot, price),
    )


def _order_note(
    code: int,
    book: BarBook,
    m: int,
    d: int,
    qty_cap: Decimal | None,
    notional_cap: Decimal | None,
) -> RiskNote:
    """Return the note of a cut of symbol ``m``'s order (max_order_qty, max_order_notional)."""
    symbol, lot, price = book.symbols[m], book.lot_size[m], book.price[m]
    assert price is not None
    if code == _QTY:
        return RiskNote(
            code,
            f"{symbol}: the net order {abs(d) * lot} would exceed max_order_qty {qty_cap}",
            qty_cap,
            abs(d) * lot,
        )
    notional = exact.multiply(abs(d) * lot, price)
    return RiskNote(
        code,
        f"{symbol}: the net order {abs(d) * lot} × {price} = {notional} would exceed "
        f"max_order_notional {notional_cap}",
        notional_cap,
        notional,
    )


def _net_of(cutter: _Cutter, m: int) -> int:
    """Symbol ``m``'s net accepted lots now."""
    return int(cutter.accepted[cutter.intents_of(m)].sum())


# -- the trading state, the kill switch, the denials: records the ledger answers with -------


@dataclass(frozen=True, kw_only=True, slots=True)
class StateChange:
    """One row of the trading-state journal: who put the book (or a venue) in which state.

    ``scope`` is ``"book"`` or a venue's name; ``source`` ``"operator"`` (``allocator halt``,
    ``reduce-only``, ``resume``) or ``"kill_switch"``; ``bar`` the bar whose mark tripped the
    kill switch. ``at`` is UTC.
    """

    id: int
    scope: str
    state: TradingState
    by: str
    reason: str
    source: str
    bar: str | None
    at: datetime

    def describe(self) -> str:
        """Return ``"<state> by <who> at <when>: <why>"``, for a denial's detail."""
        return f"{self.state} by {self.by} at {self.at.isoformat()}: {self.reason}"


BOOK = "book"
"""The ``scope`` of the book's own trading state."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TradingStatus:
    """The trading states in force: the book's and each venue's, with the rows that set them.

    ``changes`` maps a scope (``book`` or a venue) to its latest journal row; a scope with no
    row is ``active``.
    """

    changes: Mapping[str, StateChange] = field(default_factory=dict)

    @property
    def book(self) -> TradingState:
        """Return the book's own state."""
        row = self.changes.get(BOOK)
        return TradingState.ACTIVE if row is None else row.state

    def venue(self, venue: Venue | str) -> TradingState:
        """Return ``venue``'s own state (not combined with the book's)."""
        row = self.changes.get(str(venue))
        return TradingState.ACTIVE if row is None else row.state

    @property
    def venues(self) -> dict[Venue, TradingState]:
        """Return every venue's own state, ``active`` ones included."""
        return {v: self.venue(v) for v in Venue}

    def detail(self, scope: str) -> str:
        """Return who set ``scope``'s state and why (empty when never set)."""
        row = self.changes.get(scope)
        return "" if row is None else row.describe()


@dataclass(frozen=True, kw_only=True, slots=True)
class RiskMark:
    """The book's equity marked when a bar was planned (the kill switch's input).

    ``equity`` is total capital + the strategies' cash + their positions at the bar's
    reference prices (quote currency); ``peak`` the highest equity marked since the book was
    last resumed (``epoch``: the id of that resume, 0 for none); ``session_start`` the equity
    of the last mark of an earlier session since then (else this session's first).
    """

    bar: str
    session: str
    epoch: int
    equity: Decimal
    peak: Decimal
    session_start: Decimal

    @property
    def drawdown(self) -> Decimal:
        """Return equity ÷ peak − 1 (0 when the peak is not positive)."""
        return Decimal(0) if self.peak <= 0 else self.equity / self.peak - 1

    @property
    def session_return(self) -> Decimal:
        """Return equity ÷ session start − 1 (0 when the start is not positive)."""
        return Decimal(0) if self.session_start <= 0 else self.equity / self.session_start - 1


def book_equity(
    total_capital: Decimal,
    cash: Mapping[str, Decimal],
    positions: Mapping[tuple[str, str], Decimal],
    prices: Mapping[str, Decimal],
    fallback: Mapping[str, Decimal],
) -> Decimal | None:
    """Return the book's equity: capital + Σ cash + Σ position × price (quote currency).

    A position's symbol without a price in ``prices`` is valued at ``fallback`` (its last
    known price); ``None`` when one has neither (the book cannot be marked).
    """
    total = exact.add(total_capital, sum(cash.values(), Decimal(0)))
    for (_, symbol), qty in positions.items():
        if qty == 0:
            continue
        price = prices.get(symbol, fallback.get(symbol))
        if price is None:
            return None
        total = exact.add(total, exact.multiply(qty, price))
    return total


def kill_switch(mark: RiskMark, config: RiskConfig) -> str | None:
    """Return why the kill switch trips at ``mark`` (``None``: it does not).

    It trips when equity ÷ peak − 1 <= ``kill_drawdown`` or equity ÷ session start − 1 <=
    ``kill_daily_loss`` (compared exactly: equity − peak <= limit × peak).
    """
    limit = config.kill_drawdown
    if limit is not None and mark.peak > 0:
        fall = exact.subtract(mark.equity, mark.peak)
        if fall <= exact.multiply(limit, mark.peak):
            return (
                f"kill switch at bar {mark.bar}: drawdown {mark.drawdown:.4%} from the peak "
                f"{mark.peak} (equity {mark.equity}) is at or below kill_drawdown "
                f"{config.kill_drawdown}"
            )
    if config.kill_daily_loss is not None and mark.session_start > 0:
        loss = exact.subtract(mark.equity, mark.session_start)
        if loss <= exact.multiply(config.kill_daily_loss, mark.session_start):
            return (
                f"kill switch at bar {mark.bar}: {mark.session_return:.4%} since the start of "
                f"session {mark.session} ({mark.session_start} -> {mark.equity}) is at or below "
                f"kill_daily_loss {config.kill_daily_loss}"
            )
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class RiskDenial:
    """One intent cut or refused by the risk stage, as the ledger stores it.

    ``stage`` is ``plan`` (the frozen plan) or ``send`` (the send-time gate of
    :func:`~allocator.execution.bar.run_bar`: a state set after the plan was frozen);
    quantities are signed base units like the request; ``limit`` and ``value`` as on
    :class:`~allocator.execution.records.GatedIntent`.
    """

    id: int
    bar: str
    stage: str
    intent_id: str
    strategy: str
    symbol: str
    reason: Reason
    requested_qty: Decimal
    accepted_qty: Decimal
    limit: Decimal | None
    value: Decimal | None
    detail: str
    recorded_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class SendGate:
    """The stricter trading states a bar was sent under (set after its plan was frozen)."""

    bar: str
    trading_state: TradingState
    venue_states: Mapping[Venue, TradingState]
    state_detail: str
    venue_details: Mapping[Venue, str]
    at: datetime
