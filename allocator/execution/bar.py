"""One bar from the intent inbox to the broker and back (SPEC §7-§9).

Read top to bottom: :func:`plan_bar` routes and checks the intents, gates them, nets them and
decides the orders (pure); :func:`settle_bar` attributes what the broker did (pure);
:func:`run_bar` does both around a ledger and the brokers — journal the orders before sending,
send each through :func:`~.orders.submit_idempotently`, then record the whole bar in
one transaction. Re-running a bar (a crash, a re-execution) sends nothing twice: the client
order ids are the same and the lookup finds them; a bar already recorded is not recorded again.
Every cut carries one reason of :mod:`allocator.execution.reasons`; the plan's arrays hold
their codes, translated back only when the outcomes are listed.

A venue halted by reconciliation (SPEC §9; ``Ledger.halted_venues``) takes no new entries:
an intent routed there keeps only the part that reduces the strategy's running position (its
exit, down to flat) and the rest is refused with reason ``routing`` — the venue cannot be
routed to for entries — and a detail naming the halt. SPEC §7's reasons have no dedicated
"venue halted" reason and ``halted`` means a strategy halted by its breaker, so ``routing`` is
the honest one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal, Inexact
from typing import Any

import numpy as np
import polars as pl

from allocator.arrays import CodeArray, IntArray
from allocator.config import RiskConfig, RoutingConfig
from allocator.errors import BarAbandonedError, BarIncompleteError, InputError, PlanMismatchError
from allocator.execution.attribution import Attribution, attribute
from allocator.execution.book import BarBook, build_book
from allocator.execution.frozen import (
    PlanInputs,
    freeze,
    orders_digest,
    relevant_instruments,
    thaw,
)
from allocator.execution.gating import gate
from allocator.execution.instruments import Instrument, InstrumentTable
from allocator.execution.lease import DEFAULT_LEASE_S, BarLease, hold_bar
from allocator.execution.ledger import BarState, Ledger
from allocator.execution.lifecycle import RateLimit, execute_orders
from allocator.execution.netting import Netting, net_takes
from allocator.execution.orders import (
    AssetClass,
    Broker,
    BrokerExecution,
    BrokerFill,
    FeeKind,
    NetOrder,
    OrderState,
    Side,
    SubmitOutcome,
    Venue,
    client_order_id,
)
from allocator.execution.reasons import BY_CODE, PASSED, RISK_REASONS, Reason
from allocator.execution.records import (
    Bar,
    GatedIntent,
    Intent,
    StrategyBudget,
    VirtualFill,
    exact,
)
from allocator.execution.risk import (
    BOOK,
    RATE_WINDOWS_S,
    Restriction,
    RiskInputs,
    RiskNote,
    apply_limits,
    book_equity,
    kill_switch,
    restriction,
)
from allocator.execution.routing import RoutedIntent, route_intents, venue_of
from allocator.states import TradingState

__all__ = [
    "BarOutcome",
    "BarPlan",
    "BarRun",
    "FeeModel",
    "load_or_freeze_plan",
    "plan_bar",
    "run_bar",
    "settle_bar",
]

FeeModel = Callable[[Instrument, Venue, Decimal, Decimal], Decimal]
"""Fee of one order: (instrument, venue, qty > 0 base units, price) -> fee >= 0."""

# The reason codes of the order-level cuts (derived from the one Reason vocabulary).
_MIN_NOTIONAL = Reason.MIN_NOTIONAL.code
_NO_PRICE = Reason.NO_PRICE.code
_ROUTING = Reason.ROUTING.code


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class BarPlan:
    """Everything decided before any order is sent.

    Arrays are per book intent, in the book's gating order (:class:`~.book.BarBook`).

    Attributes
    ----------
    bar : Bar
        The bar planned.
    account : str
        The account named in the client order ids.
    book : BarBook
        The bar in columns (quantities in lots of each symbol).
    instruments : tuple of Instrument
        The instrument of each book symbol (by symbol code).
    venues : tuple of Venue
        The venue of each book symbol (by symbol code).
    requested : numpy.ndarray of int64
        Signed lots each intent asked for (+ buys); more than the book's when a halted venue
        cut its entry part.
    routed_from : tuple of (str or None)
        Each intent's own symbol when it was mapped to a proxy.
    accepted : numpy.ndarray of int64
        Signed lots accepted after gating and the order-level cuts (no price, minimum
        notional), |accepted| <= |requested|.
    reason : numpy.ndarray of int8
        Each intent's reason code (:meth:`Reason.from_code
        <allocator.execution.reasons.Reason.from_code>`; ``0``: passed whole).
    netting : Netting
        The takes, buys and sells computed from ``accepted``.
    orders : tuple of NetOrder
        One order per symbol with a non-zero net that is sent.
    refused : tuple of GatedIntent
        The intents refused before gating (routing, a halted venue).
    details : Mapping of str to str
        A note per intent id (why a halted venue cut it).
    notes : Mapping of str to RiskNote
        Per intent id cut by the risk stage (or a halted venue): its reason code, detail, limit
        and value (docs/spec-12-risk.md); shown when that reason is the intent's final one.
    """

    bar: Bar
    account: str
    book: BarBook
    instruments: tuple[Instrument, ...]
    venues: tuple[Venue, ...]
    requested: IntArray
    routed_from: tuple[str | None, ...]
    accepted: IntArray
    reason: CodeArray
    netting: Netting
    orders: tuple[NetOrder, ...]
    refused: tuple[GatedIntent, ...]
    details: Mapping[str, str] = field(default_factory=dict)
    notes: Mapping[str, RiskNote] = field(default_factory=dict)

    def risk_denials(self) -> list[GatedIntent]:
        """Return the intents the risk stage cut or refused (docs/spec-12-risk.md), one each.

        Those whose final reason is a risk reason (``halted`` only with a detail: a strategy
        halted by its breaker has none, the book or a venue halted by an operator has one).
        """
        return [
            g
            for g in self.gated()
            if g.reason in RISK_REASONS and (g.reason is not Reason.HALTED or g.detail)
        ]

    def gated(self) -> list[GatedIntent]:
        """Every intent's outcome: the refused ones, then the book's in gating order."""
        out = list(self.refused)
        book = self.book
        ids = book.intent_ids.to_list()
        for t in range(book.n_intents):
            m = int(book.i_sym[t])
            code = int(self.reason[t])
            note = self.notes.get(ids[t])
            if note is not None and note.code != code:
                note = None  # a later cut (no price, minimum notional) has the last word
            out.append(
                GatedIntent(
                    intent_id=ids[t],
                    strategy=book.strategies[int(book.i_strat[t])],
                    symbol=book.symbols[m],
                    requested_qty=book.qty(m, int(self.requested[t])),
                    accepted_qty=book.qty(m, int(self.accepted[t])),
                    reason=BY_CODE[code],
                    routed_from=self.routed_from[t],
                    detail=note.detail
                    if note is not None
                    else (self.details.get(ids[t], "") if code == _ROUTING else ""),
                    limit=None if note is None else note.limit,
                    value=None if note is None else note.value,
                )
            )
        return out


def _lot_sizes(
    instruments: InstrumentTable,
    symbols: Sequence[str],
    positions: Mapping[tuple[str, str], Decimal],
) -> dict[str, Decimal]:
    lots: dict[str, Decimal] = {}
    for symbol in symbols:
        inst = instruments.get(symbol)
        if inst is not None:
            lots[symbol] = inst.lot_size
    # A position in a symbol the table does not list is counted in units of its finest digit.
    for (_, symbol), qty in positions.items():
        if symbol in lots and symbol in instruments:
            continue
        exponent = qty.normalize().as_tuple().exponent
        step = Decimal(1).scaleb(min(int(exponent), 0)) if isinstance(exponent, int) else Decimal(1)
        lots[symbol] = min(lots.get(symbol, step), step)
    return lots


def _position_lots(
    strategy: str, symbol: str, qty: Decimal, lot: Decimal, instrument: Instrument | None
) -> int:
    """Return a position's whole lots (toward zero), the unit gating and netting count in.

    A position is whole lots, except in crypto: a fee the venue takes in the base coin (a
    Binance buy) reduces the strategies' positions by their exact shares, which need not be
    whole lots (docs/decisions/0016-ccxt-fees-and-bar-leases.md). The part below one lot (dust)
    stays the strategy's, in the ledger and at the venue, but is not tradable (no venue takes an
    order below its lot): gating counts the whole lots toward zero, so an exit never exceeds the
    position and the dust's notional (below one lot) is not in the gross. Anywhere else a
    position off the lot is a state that cannot be explained (a changed lot size): an error.
    """
    lots, rest = divmod(qty, lot)
    if rest != 0 and (instrument is None or instrument.asset_class is not AssetClass.CRYPTO):
        raise ValueError(f"position {strategy}/{symbol} = {qty} is not a multiple of the lot {lot}")
    return int(lots)


def plan_bar(
    intents: Sequence[Intent],
    *,
    bar: Bar,
    prices: Mapping[str, Decimal],
    positions: Mapping[tuple[str, str], Decimal],
    budgets: Mapping[str, StrategyBudget] | None,
    instruments: InstrumentTable,
    routing: RoutingConfig,
    total_capital: Decimal,
    account: str,
    halted_venues: Collection[Venue] = (),
    risk: RiskInputs | None = None,
) -> BarPlan:
    """Route, check, gate and net one bar's intents and decide its orders (no side effects).

    ``positions`` are the strategies' virtual positions at the start of the bar, keyed by
    (strategy, symbol), signed base units. ``budgets`` as in :func:`~.gating.gate`. Intents
    routed to a venue of ``halted_venues`` keep only their exit part (see the module doc).
    ``risk`` runs the pre-trade risk stage (:mod:`~allocator.execution.risk`,
    docs/spec-12-risk.md): the trading states and the price collar before gating, the limits
    after it and before netting; ``None`` skips it.
    """
    routed, refused = route_intents(
        intents,
        instruments=instruments,
        prices=prices,
        total_capital=total_capital,
        routing=routing,
    )
    wanted: dict[str, Decimal] = {}
    details: dict[str, str] = {}
    notes: dict[str, RiskNote] = {}
    restrict = restriction(risk, prices, frozenset(Venue(v) for v in halted_venues))
    if restrict is not None:
        routed, halt_refused, wanted, notes = _halt_entries(routed, positions, restrict)
        refused = [*refused, *halt_refused]
        details = {i: n.detail for i, n in notes.items() if n.code == _ROUTING}
    symbols = sorted({r.symbol for r in routed} | {s for _, s in positions})
    lot_size = _lot_sizes(instruments, symbols, positions)
    frame = pl.DataFrame(
        {
            "intent_id": [r.intent.intent_id for r in routed],
            "strategy": [r.intent.strategy for r in routed],
            "symbol": [r.symbol for r in routed],
            "lots": [int(r.qty / r.instrument.lot_size) for r in routed],
        },
        schema={
            "intent_id": pl.String,
            "strategy": pl.String,
            "symbol": pl.String,
            "lots": pl.Int64,
        },
    )
    pos_rows = [
        (s, m, _position_lots(s, m, q, lot_size[m], instruments.get(m)))
        for (s, m), q in positions.items()
        if q != 0
    ]
    pos_rows = [row for row in pos_rows if row[2] != 0]
    pos_frame = pl.DataFrame(
        {
            "strategy": [s for s, _, _ in pos_rows],
            "symbol": [m for _, m, _ in pos_rows],
            "lots": [n for _, _, n in pos_rows],
        },
        schema={"strategy": pl.String, "symbol": pl.String, "lots": pl.Int64},
    )
    book = build_book(frame, lot_size=lot_size, prices=prices, positions=pos_frame)
    by_id = {r.intent.intent_id: r for r in routed}
    ordered = [by_id[i] for i in book.intent_ids.to_list()]
    gate_result = gate(book, budgets)
    requested = book.i_lots
    reason = gate_result.reason
    if wanted:
        requested = requested.copy()
        reason = reason.copy()
        for t, r in enumerate(ordered):
            asked = wanted.get(r.intent.intent_id)
            if asked is not None:
                requested[t] = int(asked / r.instrument.lot_size)
                if int(reason[t]) == PASSED:
                    reason[t] = notes[r.intent.intent_id].code
    # A symbol only held (not traded) may be missing from the table: it never gets an order.
    instruments_by_code = tuple(
        instruments[s]
        if s in instruments
        else Instrument(symbol=s, asset_class=AssetClass.EQUITY, lot_size=lot_size[s])
        for s in book.symbols
    )
    accepted = gate_result.accepted
    if risk is not None:
        # The risk stage's limits: after gating, before netting (docs/spec-12-risk.md).
        accepted, reason, cut = apply_limits(
            book,
            instruments_by_code,
            tuple(venue_of(i) for i in instruments_by_code),
            accepted,
            reason,
            risk=risk,
            total_capital=total_capital,
        )
        if cut:
            ids = book.intent_ids
            notes = {**notes, **{str(ids[t]): note for t, note in cut.items()}}
    return _finish_plan(
        book=book,
        bar=bar,
        account=account,
        instruments=instruments_by_code,
        routed_from=tuple(r.routed_from for r in ordered),
        requested=requested,
        accepted=accepted,
        reason=reason,
        refused=tuple(refused),
        details=details,
        notes=notes,
    )


def _halt_entries(
    routed: Sequence[RoutedIntent],
    positions: Mapping[tuple[str, str], Decimal],
    restrict: Callable[[RoutedIntent], Restriction | None],
) -> tuple[list[RoutedIntent], list[GatedIntent], dict[str, Decimal], dict[str, RiskNote]]:
    """Cut restricted intents to their exit part, or refuse them whole (SPEC §9, §12).

    ``restrict`` says, per routed intent, whether it is restricted and how
    (:func:`~.risk.restriction`: a venue halted by reconciliation, the book or a venue
    reducing or halted, a symbol failing the price collar). Exits always pass gating whole,
    so a strategy's running position in a restricted symbol depends only on its own earlier
    intents there (ascending ``intent_id``, as gating orders them): an exits-only intent keeps
    the part that brings |running position| towards flat; a refused one keeps nothing. Returns
    the routed intents (cut ones with their exit quantity), the wholly refused ones (with
    their restriction's reason), the original quantity of the partly cut ones, and a note per
    cut intent id.
    """
    running: dict[tuple[str, str], Decimal] = {}
    keep: dict[str, RoutedIntent] = {}
    refused: list[GatedIntent] = []
    wanted: dict[str, Decimal] = {}
    notes: dict[str, RiskNote] = {}
    for r in sorted(routed, key=lambda r: (r.intent.strategy, r.intent.intent_id)):
        rule = restrict(r)
        if rule is None:
            keep[r.intent.intent_id] = r
            continue
        key = (r.intent.strategy, r.symbol)
        held = running.get(key, positions.get(key, Decimal(0)))
        exit_qty = Decimal(0)
        if rule.exits_only and held != 0 and (held > 0) != (r.qty > 0):
            exit_qty = min(abs(r.qty), abs(held)) * (1 if r.qty > 0 else -1)
        running[key] = held + exit_qty
        if rule.exits_only:
            detail = (
                f"{rule.why}: new entries refused, exits pass "
                f"({r.qty} {r.symbol} asked, {exit_qty} reduces the position {held})"
            )
        else:
            detail = f"{rule.why}: nothing is sent ({r.qty} {r.symbol} asked)"
        if exit_qty == r.qty:
            keep[r.intent.intent_id] = r
        elif exit_qty == 0:
            refused.append(
                GatedIntent(
                    intent_id=r.intent.intent_id,
                    strategy=r.intent.strategy,
                    symbol=r.symbol,
                    requested_qty=r.qty,
                    accepted_qty=Decimal(0),
                    reason=BY_CODE[rule.code],
                    routed_from=r.routed_from,
                    detail=detail,
                    limit=rule.limit,
                    value=rule.value,
                )
            )
        else:
            keep[r.intent.intent_id] = replace(r, qty=exit_qty)
            wanted[r.intent.intent_id] = r.qty
            notes[r.intent.intent_id] = RiskNote(rule.code, detail, rule.limit, rule.value)
    kept = [keep[r.intent.intent_id] for r in routed if r.intent.intent_id in keep]
    return kept, refused, wanted, notes


def _finish_plan(
    *,
    book: BarBook,
    bar: Bar,
    account: str,
    instruments: tuple[Instrument, ...],
    routed_from: tuple[str | None, ...],
    requested: IntArray,
    accepted: IntArray,
    reason: CodeArray,
    refused: tuple[GatedIntent, ...],
    details: Mapping[str, str],
    notes: Mapping[str, RiskNote] | None = None,
) -> BarPlan:
    """Net, then apply the order-level cuts (no price, minimum notional) and build the orders."""
    netting = net_takes(book, accepted)
    net = netting.net
    cut_to: dict[int, tuple[int, int]] = {}  # slot -> (new take, reason code)
    blocked_symbols: dict[int, int] = {}
    for m in np.flatnonzero(net != 0).tolist():
        price = book.price[m]
        if price is None:
            blocked_symbols[m] = _NO_PRICE
            continue
        notional = exact.multiply(exact.multiply(abs(int(net[m])), book.lot_size[m]), price)
        if notional < instruments[m].min_notional:
            blocked_symbols[m] = _MIN_NOTIONAL
    if blocked_symbols:
        codes = np.array(sorted(blocked_symbols), dtype=np.int64)
        in_blocked = np.isin(book.slot_sym, codes)
        # Unpriced: nothing crossed. Below min notional: the larger side keeps its crossed share.
        no_fill = np.zeros(len(book.symbols), dtype=np.int64)
        shares = attribute(
            book, netting, no_fill, np.zeros(len(book.symbols), dtype=np.int64)
        ).internal
        for j in np.flatnonzero(in_blocked).tolist():
            m = int(book.slot_sym[j])
            code = blocked_symbols[m]
            new_take = 0 if code == _NO_PRICE else int(shares[j])
            if new_take != int(netting.take[j]):
                cut_to[j] = (new_take, code)
    if cut_to:
        accepted = accepted.copy()
        reason = reason.copy()
        for j, (new_take, code) in cut_to.items():
            excess = int(netting.take[j]) - new_take  # same sign as the take
            for t in reversed(np.flatnonzero(book.i_slot == j).tolist()):
                if excess == 0:
                    break
                a = int(accepted[t])
                if a == 0 or (a > 0) != (excess > 0):
                    continue
                cut = max(min(a, excess), 0) if excess > 0 else min(max(a, excess), 0)
                accepted[t] = a - cut
                excess -= cut
                reason[t] = code
        netting = net_takes(book, accepted)
        net = netting.net
    orders: list[NetOrder] = []
    for m in np.flatnonzero(net != 0).tolist():
        inst = instruments[m]
        side = Side.BUY if net[m] > 0 else Side.SELL
        price = book.price[m]
        assert price is not None  # unpriced symbols were cut to zero above
        orders.append(
            NetOrder(
                symbol=book.symbols[m],
                asset_class=inst.asset_class,
                venue=venue_of(inst),
                side=side,
                qty=book.qty(m, abs(int(net[m]))),
                reference_price=price,
                client_order_id=client_order_id(account, bar.key, book.symbols[m], side),
                buy_qty=book.qty(m, int(netting.buy[m])),
                sell_qty=book.qty(m, int(netting.sell[m])),
            )
        )
    return BarPlan(
        bar=bar,
        account=account,
        book=book,
        instruments=instruments,
        venues=tuple(venue_of(i) for i in instruments),
        requested=requested,
        routed_from=routed_from,
        accepted=accepted,
        reason=reason,
        netting=netting,
        orders=tuple(orders),
        refused=refused,
        details=details,
        notes=notes or {},
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class BarOutcome:
    """The settled bar: every intent's outcome, the virtual fills and the fees.

    Attributes
    ----------
    gated : tuple of GatedIntent
        Every intent of the bar with its outcome.
    fills : tuple of VirtualFill
        Each strategy's virtual fills (quantities signed, + bought).
    fee_paid : Decimal
        The fees the broker charged for the bar's orders (quote currency, >= 0), a fee taken in
        a symbol's base currency valued at its order's average price; fees in a third currency
        (BNB) have no price here and are not in it (they are on the fills, ``other_fees``).
    would_pay : Decimal
        The fees the accepted intents would have paid traded one by one, by the fee model at
        the reference prices (quote currency; 0 without a fee model).
    """

    gated: tuple[GatedIntent, ...]
    fills: tuple[VirtualFill, ...]
    fee_paid: Decimal
    would_pay: Decimal

    @property
    def savings(self) -> Decimal:
        """Netting savings: ``would_pay`` − ``fee_paid`` (quote currency, + saved)."""
        return self.would_pay - self.fee_paid


def settle_bar(
    plan: BarPlan,
    executions: Mapping[str, BrokerExecution],
    *,
    cash_quantum: Decimal,
    fee_model: FeeModel | None = None,
) -> BarOutcome:
    """Attribute the broker's executions (by symbol) to the strategies (SPEC §7).

    A symbol of ``plan.orders`` missing from ``executions`` counts as not filled.
    """
    book = plan.book
    n_sym = len(book.symbols)
    filled = np.zeros(n_sym, dtype=np.int64)
    quote_fee = _FeeSplit(n_sym, cash_quantum)
    base_fee = _FeeSplit(n_sym, cash_quantum)
    other_fee: dict[str, _FeeSplit] = {}
    avg: dict[int, Decimal] = {}
    fee_paid = Decimal(0)
    code_of = {s: m for m, s in enumerate(book.symbols)}
    for order in plan.orders:
        ex = executions.get(order.symbol)
        if ex is None:
            continue
        m = code_of[order.symbol]
        lots, rest = divmod(ex.filled_qty, book.lot_size[m])
        if rest != 0:
            raise ValueError(
                f"{order.symbol}: filled {ex.filled_qty} is not whole lots of {book.lot_size[m]}"
            )
        filled[m] = int(lots)
        if lots > 0:
            if ex.avg_price is None:
                raise ValueError(f"{order.symbol}: filled {ex.filled_qty} without a price")
            avg[m] = ex.avg_price
        quote_fee.add(m, ex.fee, order.symbol)
        base_fee.add(m, ex.base_fee, f"{order.symbol} (in the base currency)")
        for currency, amount in ex.other_fees:
            split = other_fee.setdefault(currency, _FeeSplit(n_sym, cash_quantum))
            split.add(m, amount, f"{order.symbol} (in {currency})")
        fee_paid += ex.fee
        if ex.base_fee:
            if ex.avg_price is None:
                raise ValueError(f"{order.symbol}: a fee of {ex.base_fee} in base units, no fill")
            fee_paid += exact.multiply(ex.base_fee, ex.avg_price)
    result = attribute(book, plan.netting, filled, quote_fee.units)
    shares = _FeeShares(
        quote=quote_fee.shares(plan, result),
        base=base_fee.shares(plan, attribute(book, plan.netting, filled, base_fee.units))
        if base_fee.any
        else None,
        other={
            currency: split.shares(plan, attribute(book, plan.netting, filled, split.units))
            for currency, split in sorted(other_fee.items())
            if split.any
        },
    )
    fills = _virtual_fills(plan, result, avg, shares)
    would_pay = Decimal(0)
    if fee_model is not None:
        for t in np.flatnonzero(plan.accepted != 0).tolist():
            m = int(book.i_sym[t])
            price = book.price[m]
            if price is None:
                continue
            qty = book.qty(m, abs(int(plan.accepted[t])))
            would_pay += fee_model(plan.instruments[m], plan.venues[m], qty, price)
    return BarOutcome(
        gated=tuple(plan.gated()), fills=tuple(fills), fee_paid=fee_paid, would_pay=would_pay
    )


class _FeeSplit:
    """One currency's fees of a bar per symbol, in whole units of the ledger's quantum.

    The part of a fee finer than one unit is kept apart; each currency's fees are attributed
    like SPEC §7's broker fee.
    """

    def __init__(self, n_sym: int, quantum: Decimal) -> None:
        self.quantum = quantum
        self.units = np.zeros(n_sym, dtype=np.int64)
        self.residue: dict[int, Decimal] = {}

    @property
    def any(self) -> bool:
        return bool(np.any(self.units != 0)) or bool(self.residue)

    def add(self, m: int, fee: Decimal, what: str) -> None:
        if fee < 0:
            raise ValueError(f"{what}: negative fee {fee}")
        units = (fee / self.quantum).to_integral_value(rounding=ROUND_FLOOR)
        self.units[m] = int(units)
        rest = exact.subtract(fee, exact.multiply(units, self.quantum))
        if rest:
            self.residue[m] = rest

    def shares(self, plan: BarPlan, result: Attribution) -> list[Decimal]:
        """Return each slot's share of the fee.

        That is its units of ``result``, plus, for the larger-side slot with the largest share
        (ties by strategy name), the part finer than one quantum.
        """
        book = plan.book
        fees = [exact.multiply(int(u), self.quantum) for u in result.fee_units.tolist()]
        for m, extra in self.residue.items():
            slots = np.flatnonzero((book.slot_sym == m) & (result.external != 0))
            if not len(slots):
                slots = np.flatnonzero((book.slot_sym == m) & (plan.netting.take != 0))
            best = max(slots.tolist(), key=lambda j: (result.fee_units[j], -book.slot_strat[j]))
            fees[best] = exact.add(fees[best], extra)
        return fees


@dataclass(frozen=True, kw_only=True, slots=True)
class _FeeShares:
    """Per slot: the quote fee, the base-currency fee (``None``: none) and third currencies'."""

    quote: list[Decimal]
    base: list[Decimal] | None
    other: Mapping[str, list[Decimal]]


def _virtual_fills(
    plan: BarPlan,
    result: Attribution,
    avg: Mapping[int, Decimal],
    shares: _FeeShares,
) -> list[VirtualFill]:
    book = plan.book
    fees = shares.quote
    zero = Decimal(0)
    out: list[VirtualFill] = []
    internal = result.internal.tolist()
    external = result.external.tolist()
    for j in range(len(book.slot_sym)):
        m = int(book.slot_sym[j])
        strategy = book.strategies[int(book.slot_strat[j])]
        ref = book.price[m]
        price = avg.get(m, ref)
        if internal[j]:
            assert price is not None
            out.append(
                VirtualFill(
                    strategy=strategy,
                    symbol=book.symbols[m],
                    qty=book.qty(m, internal[j]),
                    price=price,
                    fee=Decimal(0),
                    internal=True,
                )
            )
        base = zero if shares.base is None else shares.base[j]
        other = tuple((c, f[j]) for c, f in shares.other.items() if f[j])
        if external[j] or fees[j] or base or other:
            assert price is not None
            out.append(
                VirtualFill(
                    strategy=strategy,
                    symbol=book.symbols[m],
                    qty=book.qty(m, external[j]),
                    price=price,
                    fee=fees[j],
                    internal=False,
                    base_fee=base,
                    other_fees=other,
                )
            )
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class BarRun:
    """What :func:`run_bar` did. ``outcome`` is ``None`` when the bar was already recorded."""

    bar: Bar
    outcome: BarOutcome | None
    orders: tuple[NetOrder, ...] = ()
    submissions: tuple[SubmitOutcome, ...] = field(default=())


def _no_checkpoint(_: str) -> None:
    return None


def _plan_of(inputs: PlanInputs) -> BarPlan:
    return plan_bar(
        inputs.intents,
        bar=inputs.bar,
        prices=inputs.prices,
        positions=inputs.positions,
        budgets=inputs.budgets,
        instruments=inputs.instruments,
        routing=inputs.routing,
        total_capital=inputs.total_capital,
        account=inputs.account,
        halted_venues=inputs.halted_venues,
        risk=inputs.risk,
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


DEFAULT_RISK = RiskConfig()
"""The ``[risk]`` a caller that names none gets: every limit off but Alpaca's order rate."""


def _risk_inputs(
    ledger: Ledger,
    bar: Bar,
    config: RiskConfig,
    *,
    prices: Mapping[str, Decimal],
    price_times: Mapping[str, datetime] | None,
    positions: Mapping[tuple[str, str], Decimal],
    symbols: Collection[str],
    total_capital: Decimal,
    planned_at: datetime,
) -> RiskInputs:
    """Read what the risk stage needs of the ledger now (docs/spec-12-risk.md §12.5).

    The book's equity is marked and the kill switch evaluated first: it journals ``reducing``
    (``by="kill_switch"``) when the book is ``active`` and this bar's mark is at or below
    ``kill_drawdown`` or ``kill_daily_loss``; the state read after it is the one the bar is
    planned in.
    """
    previous: dict[str, Decimal] = {}
    kill = config.kill_drawdown is not None or config.kill_daily_loss is not None
    if config.max_price_move is not None or kill:
        held = {m for (_, m), q in positions.items() if q != 0}
        previous = dict(ledger.previous_prices(bar, set(symbols) | held))
        ledger.record_prices(bar, prices)
    if kill:
        equity = book_equity(total_capital, ledger.cash(), positions, prices, previous)
        if equity is not None:
            mark = ledger.record_mark(bar, equity)
            why = kill_switch(mark, config)
            if why is not None and ledger.trading_status().book is TradingState.ACTIVE:
                ledger.set_trading_state(
                    TradingState.REDUCING,
                    by="kill_switch",
                    reason=why,
                    source="kill_switch",
                    bar=bar,
                )
    status = ledger.trading_status()
    venues = {v: status.venue(v) for v in Venue if status.venue(v) is not TradingState.ACTIVE}
    rated = any(
        x.orders_per_second is not None or x.orders_per_minute is not None
        for x in config.venues.values()
    )
    return RiskInputs(
        config=config,
        trading_state=status.book,
        venue_states=venues,
        state_detail=status.detail(BOOK),
        venue_details={v: status.detail(v.value) for v in venues},
        planned_at=planned_at,
        price_times={m: t for m, t in (price_times or {}).items() if m in symbols},
        previous_prices={m: p for m, p in previous.items() if m in symbols},
        recent_orders=ledger.recent_venue_orders(bar, RATE_WINDOWS_S) if rated else {},
    )


def load_or_freeze_plan(
    ledger: Ledger,
    bar: Bar,
    *,
    prices: Mapping[str, Decimal] | None,
    budgets: Mapping[str, StrategyBudget] | None,
    instruments: InstrumentTable,
    routing: RoutingConfig,
    total_capital: Decimal,
    account: str,
    halted_venues: Collection[Venue] | None = None,
    sealed_by: str = "run_bar",
    checkpoint: Callable[[str], None] = _no_checkpoint,
    risk: RiskConfig | None = DEFAULT_RISK,
    price_times: Mapping[str, datetime] | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> BarPlan:
    """Return the bar's one plan: rebuilt from its frozen inputs, or planned and frozen.

    docs/decisions/0012-live-bar-path.md.

    When the ledger holds a frozen plan for ``bar``, every other argument is ignored: the plan
    is rebuilt with :func:`plan_bar` from the stored inputs (not the live inbox, prices or
    positions), and a rebuilt plan whose orders' digest differs from the stored one raises
    :class:`~allocator.errors.PlanMismatchError` (nothing may be sent on a plan that cannot be
    proven the same). Otherwise the bar is sealed (``sealed_by``) if it is not, its sealed
    intents and the ledger's positions (and halted venues, unless given) are read, the plan is
    made and frozen; when another process froze one first, that one is rebuilt and returned.
    ``prices`` ``None`` is allowed only when a plan is frozen. ``checkpoint`` is called with
    ``sealed`` and ``planned``.

    ``risk`` is the ``[risk]`` configuration of the risk stage (docs/spec-12-risk.md; ``None``
    plans without it): the trading states, the kill switch's mark, ``price_times`` (when each
    price was taken, UTC), the planning instant (``clock``), the previous prices and the
    venues' recent orders are read then and frozen with the plan. Its denials are stored
    (``Ledger.record_risk_denials``, stage ``plan``).
    """
    planning = _Planning(
        prices=prices,
        budgets=budgets,
        instruments=instruments,
        routing=routing,
        total_capital=total_capital,
        account=account,
        halted_venues=halted_venues,
        sealed_by=sealed_by,
        risk=risk,
        price_times=price_times,
        clock=clock,
    )
    return _load_or_freeze(ledger, bar, planning, checkpoint)[1]


@dataclass(frozen=True)
class _Planning:
    """The arguments of :func:`load_or_freeze_plan` besides the ledger and the bar.

    Gathered once by each public entry point and handed down as one value.
    """

    prices: Mapping[str, Decimal] | None
    budgets: Mapping[str, StrategyBudget] | None
    instruments: InstrumentTable
    routing: RoutingConfig
    total_capital: Decimal
    account: str
    halted_venues: Collection[Venue] | None
    sealed_by: str
    risk: RiskConfig | None
    price_times: Mapping[str, datetime] | None
    clock: Callable[[], datetime]


def _load_or_freeze(
    ledger: Ledger, bar: Bar, planning: _Planning, checkpoint: Callable[[str], None]
) -> tuple[PlanInputs, BarPlan]:
    """:func:`load_or_freeze_plan`, returning the plan's inputs too (the send gate needs them)."""
    p = planning
    prices, budgets, instruments, routing = p.prices, p.budgets, p.instruments, p.routing
    total_capital, account, risk = p.total_capital, p.account, p.risk
    stored = ledger.frozen_plan(bar)
    if stored is None:
        ledger.seal_bar(bar, by=p.sealed_by)
        checkpoint("sealed")
        if prices is None:
            raise InputError(f"bar {bar}", None, "no reference prices for a bar not yet planned")
        intents = tuple(ledger.intents_for_bar(bar))
        positions = dict(ledger.positions())
        halted = ledger.halted_venues() if p.halted_venues is None else p.halted_venues
        relevant = relevant_instruments(instruments, intents, positions, routing)
        risk_inputs = None
        if risk is not None:
            symbols = {i.symbol for i in intents} | {m for _, m in positions} | set(relevant)
            risk_inputs = _risk_inputs(
                ledger,
                bar,
                risk,
                prices=prices,
                price_times=p.price_times,
                positions=positions,
                symbols=symbols,
                total_capital=total_capital,
                planned_at=p.clock(),
            )
        inputs = PlanInputs(
            bar=bar,
            intents=intents,
            positions=positions,
            budgets=None if budgets is None else dict(budgets),
            prices=dict(prices),
            instruments=relevant,
            routing=routing,
            total_capital=total_capital,
            account=account,
            halted_venues=frozenset(Venue(v) for v in halted),
            risk=risk_inputs,
        )
        plan = _plan_of(inputs)
        text, digest = freeze(inputs, plan.orders)
        stored = ledger.freeze_plan(bar, text, digest)
        if stored == (text, digest):
            ledger.record_risk_denials(bar, "plan", plan.risk_denials())
            checkpoint("planned")
            return inputs, plan
    text, digest = stored
    try:
        inputs = thaw(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise PlanMismatchError(f"bar {bar}: the frozen plan cannot be read: {exc}") from exc
    if inputs.bar != bar:
        raise PlanMismatchError(f"bar {bar}: the frozen plan is of bar {inputs.bar}")
    plan = _plan_of(inputs)
    rebuilt = orders_digest(plan.orders)
    if rebuilt != digest:
        raise PlanMismatchError(
            f"bar {bar}: the plan rebuilt from its frozen inputs gives other orders "
            f"(digest {rebuilt[:12]}) than the frozen ones ({digest[:12]}); nothing is sent. "
            "Did the planning code change since the bar was planned?"
        )
    if inputs.risk is not None:
        ledger.record_risk_denials(bar, "plan", plan.risk_denials())  # once per bar
    checkpoint("planned")
    return inputs, plan


def _send_gate(ledger: Ledger, bar: Bar, inputs: PlanInputs, plan: BarPlan) -> BarPlan:
    """Return the plan to send: the frozen one, or it planned again under stricter states.

    When the trading states are stricter now than when the plan was frozen, the frozen inputs
    are planned again under the stricter ones (docs/spec-12-risk.md §12.6): an operator's
    ``halt`` or ``reduce-only`` (or the kill switch) after the freeze takes effect here, as
    long as none of the bar's orders is journaled yet. The stricter states are stored first
    (``Ledger.record_send_gate``, only ever made stricter), so every re-run of the bar plans
    again under the same ones and journals the same orders; their denials are stored with
    stage ``send``. Once an order is journaled the bar is being sent and keeps its states.
    """
    if inputs.risk is None:
        return plan
    frozen = inputs.risk
    gate = ledger.send_gate(bar)
    if not ledger.orders(bar):
        live = ledger.trading_status()
        book = frozen.trading_state if gate is None else gate.trading_state
        venues = dict(frozen.venue_states if gate is None else gate.venue_states)
        detail = frozen.state_detail if gate is None else gate.state_detail
        details = dict(frozen.venue_details if gate is None else gate.venue_details)
        stricter = False
        if live.book.rank > book.rank:
            book, detail, stricter = live.book, live.detail(BOOK), True
        for venue in Venue:
            own = venues.get(venue, TradingState.ACTIVE)
            if live.venue(venue).rank > own.rank:
                venues[venue] = live.venue(venue)
                details[venue] = live.detail(venue.value)
                stricter = True
        if stricter:
            gate = ledger.record_send_gate(
                bar,
                trading_state=book,
                venue_states=venues,
                state_detail=detail,
                venue_details=details,
            )
    if gate is None:
        return plan
    risk = replace(
        frozen,
        trading_state=gate.trading_state,
        venue_states=dict(gate.venue_states),
        state_detail=gate.state_detail,
        venue_details=dict(gate.venue_details),
    )
    gated = _plan_of(replace(inputs, risk=risk))
    ledger.record_risk_denials(bar, "send", gated.risk_denials())
    return gated


def _pacing(risk: RiskConfig | None) -> dict[Venue, RateLimit]:
    """Each venue's send pacing: ``orders_per_second`` as a token bucket (docs/spec-12 §12.4)."""
    if risk is None:
        return {}
    out: dict[Venue, RateLimit] = {}
    for name, limits in risk.venues.items():
        if limits.orders_per_second is not None:
            rate = limits.orders_per_second
            out[Venue(name)] = RateLimit(rate, burst=max(1, int(rate)))
    return out


def _execution_of(row: Mapping[str, Any], fills: Sequence[BrokerFill]) -> BrokerExecution:
    """Return what the journal says the venue did with one order.

    That is its journaled fills (quantity, VWAP, fees by :class:`~.orders.FeeKind`: the quote
    fee, the fee taken in the base currency, each third currency's), or the venue's cumulative
    figures when it reported no fill details (their fee is in the quote currency). Fills whose
    fees are not all in the quote currency but do not add up to the order's filled quantity
    cannot be settled: which fee the missing executions paid, in what, is unknown.
    """
    filled = sum((f.qty for f in fills), Decimal(0))
    if not fills or filled != row["filled_qty"]:
        in_kind = [f.fill_id for f in fills if f.fee_kind is not FeeKind.QUOTE]
        if in_kind:
            raise BarIncompleteError(
                f"order {row['client_order_id']} ({row['symbol']}): its journaled fills add up "
                f"to {filled}, the venue says {row['filled_qty']} filled, and fill(s) "
                f"{', '.join(in_kind)} paid a fee outside the quote currency: the fees of the "
                "missing executions are unknown; run the bar again once the venue reports them"
            )
        # The venue reported cumulative figures without (all) the executions: trust them.
        qty = row["filled_qty"]
        return BrokerExecution(
            filled_qty=qty, avg_price=row["avg_price"] if qty else None, fee=row["fee"]
        )
    fee = sum((f.fee for f in fills if f.fee_kind is FeeKind.QUOTE), Decimal(0))
    base_fee = sum((f.fee for f in fills if f.fee_kind is FeeKind.BASE), Decimal(0))
    other: dict[str, Decimal] = {}
    for f in fills:
        if f.fee_kind is FeeKind.OTHER and f.fee:
            currency = str(f.fee_currency)
            other[currency] = exact.add(other.get(currency, Decimal(0)), f.fee)
    avg = row["avg_price"]
    notional = sum((exact.multiply(f.qty, f.price) for f in fills), Decimal(0))
    try:
        vwap = exact.divide(notional, filled)
    except Inexact:
        vwap = None
    if vwap is not None and (avg is None or vwap != avg):
        avg = vwap
    return BrokerExecution(
        filled_qty=filled,
        avg_price=avg,
        fee=fee,
        base_fee=base_fee,
        other_fees=tuple(sorted(other.items())),
    )


def _mode_of(broker: object) -> str:
    """Return the broker's venue mode (``sim``, ``paper`` or ``live``); ``sim`` if it has none."""
    mode = getattr(broker, "mode", None)
    return mode if mode in ("sim", "paper", "live") else "sim"


def run_bar(
    *,
    ledger: Ledger,
    brokers: Mapping[Venue, Broker],
    bar: Bar,
    prices: Mapping[str, Decimal] | None,
    budgets: Mapping[str, StrategyBudget] | None,
    instruments: InstrumentTable,
    routing: RoutingConfig,
    total_capital: Decimal,
    account: str,
    cash_quantum: Decimal,
    fee_model: FeeModel | None = None,
    checkpoint: Callable[[str], None] = _no_checkpoint,
    lookups: int = 3,
    lookup_delay_s: float = 1.0,
    halted_venues: Collection[Venue] | None = None,
    fill_timeout_s: float = 30.0,
    poll_s: float = 0.5,
    rate_limits: Mapping[Venue, RateLimit] | None = None,
    sealed_by: str = "run_bar",
    runner: str | None = None,
    lease_s: float = DEFAULT_LEASE_S,
    risk: RiskConfig | None = DEFAULT_RISK,
    price_times: Mapping[str, datetime] | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> BarRun:
    """Run one bar end to end; safe to call again for the same bar after any failure.

    The steps, each durable before the next (``checkpoint(name)`` is called after each; tests
    kill the process there): :func:`load_or_freeze_plan` seals the bar and freezes its plan
    (``sealed``, ``planned``); the orders are journaled ``pending_submit`` (``journaled``);
    every order not final in the journal is sent and followed to the fill deadline
    (``fill_timeout_s``) by :func:`~.lifecycle.execute_orders`, each acknowledgement and each
    change journaled with its fills as it arrives (``ack:<cid>``, ``fill:<cid>``); the bar is
    settled from the journal (``recording``) and recorded in one transaction (``recorded``).

    A re-run after a crash anywhere rebuilds the frozen plan (never the live inbox), looks up
    every journaled order that is not final (the lookup finds it; nothing is sent twice),
    journals what the venue has and settles the bar once. An order still not final (unknown,
    or its cancel at the deadline not confirmed) raises :class:`BarIncompleteError`: run the
    bar again. ``prices`` may be ``None`` once the bar is planned. ``halted_venues`` defaults
    to the ledger's. Each order is journaled ``live`` when its broker's ``mode`` attribute is
    ``"live"``, else ``paper``.

    Running a bar is exclusive across processes (:mod:`~allocator.execution.lease`): the bar is
    sealed, then its lease is taken for ``runner`` (default ``sealed_by``) before anything is
    planned, journaled or sent, renewed while the bar runs and given up at the end. A bar whose
    lease a live runner holds raises :class:`~allocator.errors.BarLeasedError` (nothing sent);
    one held by a runner proven gone, or expired (``lease_s``), is taken over.

    The risk stage (docs/spec-12-risk.md): ``risk``, ``price_times`` and ``clock`` go to
    :func:`load_or_freeze_plan`; before anything is journaled the send-time gate applies a
    trading state set after the freeze (an operator's halt or reduce-only), and each venue's
    ``orders_per_second`` paces its orders (unless ``rate_limits`` names the venue).
    """
    if ledger.bar_done(bar):
        return BarRun(bar=bar, outcome=None)
    status = ledger.bar_status(bar)
    if status is not None and status.state is BarState.ABANDONED:
        raise BarAbandonedError(
            f"bar {bar} was abandoned by {status.abandoned_by}: {status.abandoned_reason}"
        )
    if status is None:
        ledger.seal_bar(bar, by=sealed_by)
    with hold_bar(ledger, bar, label=runner or sealed_by, lease_s=lease_s) as lease:
        if ledger.bar_done(bar):  # settled by the runner that held the lease before us
            return BarRun(bar=bar, outcome=None)
        held = ledger.bar_status(bar)
        if held is not None and held.state is BarState.ABANDONED:  # by the holder before us
            raise BarAbandonedError(
                f"bar {bar} was abandoned by {held.abandoned_by}: {held.abandoned_reason}"
            )
        return _run_leased(
            lease,
            _Planning(
                prices=prices,
                budgets=budgets,
                instruments=instruments,
                routing=routing,
                total_capital=total_capital,
                account=account,
                halted_venues=halted_venues,
                sealed_by=sealed_by,
                risk=risk,
                price_times=price_times,
                clock=clock,
            ),
            ledger=ledger,
            brokers=brokers,
            bar=bar,
            account=account,
            cash_quantum=cash_quantum,
            fee_model=fee_model,
            checkpoint=checkpoint,
            lookups=lookups,
            lookup_delay_s=lookup_delay_s,
            fill_timeout_s=fill_timeout_s,
            poll_s=poll_s,
            rate_limits={**_pacing(risk), **(rate_limits or {})},
        )


def _run_leased(
    lease: BarLease,
    planning: _Planning,
    *,
    ledger: Ledger,
    brokers: Mapping[Venue, Broker],
    bar: Bar,
    account: str,
    cash_quantum: Decimal,
    fee_model: FeeModel | None,
    checkpoint: Callable[[str], None],
    lookups: int,
    lookup_delay_s: float,
    fill_timeout_s: float,
    poll_s: float,
    rate_limits: Mapping[Venue, RateLimit] | None,
) -> BarRun:
    """:func:`run_bar` once its lease is held: plan, journal, send, settle (see there)."""
    inputs, plan = _load_or_freeze(ledger, bar, planning, checkpoint)
    plan = _send_gate(ledger, bar, inputs, plan)
    missing = sorted({o.venue.value for o in plan.orders if o.venue not in brokers})
    if missing:
        raise BarIncompleteError(f"bar {bar}: no broker for venue(s) {', '.join(missing)}")
    # Each venue's mode as its broker says (SPEC §8: sim, paper or live); a broker without a
    # recognised mode (a test double) is journaled ``sim``, never ``live``.
    modes = {venue: _mode_of(broker) for venue, broker in brokers.items()}
    lease.check()
    ledger.journal_orders(bar, account, plan.orders, modes=modes)
    checkpoint("journaled")
    journal = {str(r["client_order_id"]): r for r in ledger.orders(bar)}
    pending = [
        o for o in plan.orders if not OrderState(journal[o.client_order_id]["state"]).is_final
    ]
    lease.check()
    acked: set[str] = set()
    filled: dict[str, Decimal] = {}

    def on_update(order: NetOrder, outcome: SubmitOutcome) -> None:
        ledger.update_order(order, outcome)
        cid = order.client_order_id
        if cid not in acked:
            acked.add(cid)
            checkpoint(f"ack:{cid}")
        qty = outcome.order.filled_qty if outcome.order is not None else Decimal(0)
        if qty > filled.get(cid, Decimal(0)):
            filled[cid] = qty
            checkpoint(f"fill:{cid}")

    results = execute_orders(
        pending,
        brokers,
        fill_timeout_s=fill_timeout_s,
        poll_s=poll_s,
        lookups=lookups,
        lookup_delay_s=lookup_delay_s,
        rate_limits=rate_limits,
        on_update=on_update,
    )
    unresolved = [r for r in results if not r.final or r.outcome.state is OrderState.UNKNOWN]
    if unresolved:
        listed = "; ".join(
            f"{r.order.client_order_id} ({r.order.symbol}) is {r.outcome.state}: {r.outcome.detail}"
            for r in unresolved
        )
        raise BarIncompleteError(f"bar {bar}: {listed}; run the bar again to resolve it")
    # Settle from the journal, the truth (SPEC §9): what it holds for every order of the plan.
    journal = {str(r["client_order_id"]): r for r in ledger.orders(bar)}
    journaled_fills = ledger.journaled_fills(bar)
    executions: dict[str, BrokerExecution] = {}
    for order in plan.orders:
        row = journal[order.client_order_id]
        state = OrderState(row["state"])
        if not state.is_final:
            raise BarIncompleteError(
                f"bar {bar}: order {order.client_order_id} ({order.symbol}) is {state} in the "
                "journal; run the bar again to resolve it"
            )
        executions[order.symbol] = _execution_of(
            row, journaled_fills.get(order.client_order_id, ())
        )
    result = settle_bar(plan, executions, cash_quantum=cash_quantum, fee_model=fee_model)
    lease.check()
    checkpoint("recording")
    ledger.record_bar(bar, result, ())
    checkpoint("recorded")
    return BarRun(
        bar=bar,
        outcome=result,
        orders=plan.orders,
        submissions=tuple(r.outcome for r in results),
    )
