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
from decimal import ROUND_FLOOR, Decimal, Inexact
from typing import Any

import numpy as np
import polars as pl

from allocator.arrays import CodeArray, IntArray
from allocator.config import RoutingConfig
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
from allocator.execution.ledger import BarState, Ledger
from allocator.execution.lifecycle import RateLimit, execute_orders
from allocator.execution.netting import Netting, net_takes
from allocator.execution.orders import (
    AssetClass,
    Broker,
    BrokerExecution,
    BrokerFill,
    NetOrder,
    OrderState,
    Side,
    SubmitOutcome,
    Venue,
    client_order_id,
)
from allocator.execution.reasons import BY_CODE, PASSED, Reason
from allocator.execution.records import (
    Bar,
    GatedIntent,
    Intent,
    StrategyBudget,
    VirtualFill,
    exact,
)
from allocator.execution.routing import RoutedIntent, route_intents, venue_of

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

    def gated(self) -> list[GatedIntent]:
        """Every intent's outcome: the refused ones, then the book's in gating order."""
        out = list(self.refused)
        book = self.book
        ids = book.intent_ids.to_list()
        for t in range(book.n_intents):
            m = int(book.i_sym[t])
            code = int(self.reason[t])
            out.append(
                GatedIntent(
                    intent_id=ids[t],
                    strategy=book.strategies[int(book.i_strat[t])],
                    symbol=book.symbols[m],
                    requested_qty=book.qty(m, int(self.requested[t])),
                    accepted_qty=book.qty(m, int(self.accepted[t])),
                    reason=BY_CODE[code],
                    routed_from=self.routed_from[t],
                    detail=self.details.get(ids[t], "") if code == _ROUTING else "",
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
) -> BarPlan:
    """Route, check, gate and net one bar's intents and decide its orders (no side effects).

    ``positions`` are the strategies' virtual positions at the start of the bar, keyed by
    (strategy, symbol), signed base units. ``budgets`` as in :func:`~.gating.gate`. Intents
    routed to a venue of ``halted_venues`` keep only their exit part (see the module doc).
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
    if halted_venues:
        routed, halt_refused, wanted, details = _halt_entries(
            routed, positions, frozenset(halted_venues)
        )
        refused = [*refused, *halt_refused]
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
    pos_rows = [(s, m, q) for (s, m), q in positions.items() if q != 0]
    pos_frame = pl.DataFrame(
        {
            "strategy": [s for s, _, _ in pos_rows],
            "symbol": [m for _, m, _ in pos_rows],
            "lots": [int(q / lot_size[m]) for _, m, q in pos_rows],
        },
        schema={"strategy": pl.String, "symbol": pl.String, "lots": pl.Int64},
    )
    for s, m, q in pos_rows:
        if q % lot_size[m] != 0:
            raise ValueError(f"position {s}/{m} = {q} is not a multiple of the lot {lot_size[m]}")
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
                    reason[t] = _ROUTING
    # A symbol only held (not traded) may be missing from the table: it never gets an order.
    instruments_by_code = tuple(
        instruments[s]
        if s in instruments
        else Instrument(symbol=s, asset_class=AssetClass.EQUITY, lot_size=lot_size[s])
        for s in book.symbols
    )
    return _finish_plan(
        book=book,
        bar=bar,
        account=account,
        instruments=instruments_by_code,
        routed_from=tuple(r.routed_from for r in ordered),
        requested=requested,
        accepted=gate_result.accepted,
        reason=reason,
        refused=tuple(refused),
        details=details,
    )


def _halt_entries(
    routed: Sequence[RoutedIntent],
    positions: Mapping[tuple[str, str], Decimal],
    halted: frozenset[Venue],
) -> tuple[list[RoutedIntent], list[GatedIntent], dict[str, Decimal], dict[str, str]]:
    """Cut intents routed to a halted venue to their exit part (SPEC §9).

    Exits always pass gating whole, so on a halted venue each strategy's running position
    depends only on its own earlier intents there (ascending ``intent_id``, as gating orders
    them): an intent keeps the part that brings |running position| towards flat. Returns the
    routed intents (cut ones with their exit quantity), the wholly refused ones (``routing``),
    the original quantity of the partly cut ones, and a detail per cut intent id.
    """
    running: dict[tuple[str, str], Decimal] = {}
    keep: dict[str, RoutedIntent] = {}
    refused: list[GatedIntent] = []
    wanted: dict[str, Decimal] = {}
    details: dict[str, str] = {}
    for r in sorted(routed, key=lambda r: (r.intent.strategy, r.intent.intent_id)):
        if r.venue not in halted:
            keep[r.intent.intent_id] = r
            continue
        key = (r.intent.strategy, r.symbol)
        held = running.get(key, positions.get(key, Decimal(0)))
        exit_qty = Decimal(0)
        if held != 0 and (held > 0) != (r.qty > 0):
            exit_qty = min(abs(r.qty), abs(held)) * (1 if r.qty > 0 else -1)
        running[key] = held + exit_qty
        detail = (
            f"venue {r.venue} is halted by reconciliation: new entries refused, exits pass "
            f"({r.qty} {r.symbol} asked, {exit_qty} reduces the position {held})"
        )
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
                    reason=Reason.ROUTING,
                    routed_from=r.routed_from,
                    detail=detail,
                )
            )
        else:
            keep[r.intent.intent_id] = replace(r, qty=exit_qty)
            wanted[r.intent.intent_id] = r.qty
            details[r.intent.intent_id] = detail
    kept = [keep[r.intent.intent_id] for r in routed if r.intent.intent_id in keep]
    return kept, refused, wanted, details


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
        The fees the broker charged for the bar's orders (quote currency, >= 0).
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
    fee_units = np.zeros(n_sym, dtype=np.int64)
    residue: dict[int, Decimal] = {}
    avg: dict[int, Decimal] = {}
    code_of = {s: m for m, s in enumerate(book.symbols)}
    for order in plan.orders:
        ex = executions.get(order.symbol)
        if ex is None:
            continue
        m = code_of[order.symbol]
        lots, rest = divmod(ex.filled_qty, book.lot_size[m])
        if rest != 0 or ex.fee < 0:
            raise ValueError(
                f"{order.symbol}: filled {ex.filled_qty} is not whole lots of {book.lot_size[m]}"
                if rest != 0
                else f"{order.symbol}: negative fee {ex.fee}"
            )
        filled[m] = int(lots)
        if lots > 0:
            if ex.avg_price is None:
                raise ValueError(f"{order.symbol}: filled {ex.filled_qty} without a price")
            avg[m] = ex.avg_price
        units = (ex.fee / cash_quantum).to_integral_value(rounding=ROUND_FLOOR)
        fee_units[m] = int(units)
        rest_fee = exact.subtract(ex.fee, exact.multiply(units, cash_quantum))
        if rest_fee:
            residue[m] = rest_fee
    result = attribute(book, plan.netting, filled, fee_units)
    fills = _virtual_fills(plan, result, filled, avg, residue, cash_quantum)
    fee_paid = sum((ex.fee for ex in executions.values()), Decimal(0))
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


def _virtual_fills(
    plan: BarPlan,
    result: Attribution,
    filled: IntArray,
    avg: Mapping[int, Decimal],
    residue: Mapping[int, Decimal],
    quantum: Decimal,
) -> list[VirtualFill]:
    book = plan.book
    fees: list[Decimal] = [exact.multiply(int(u), quantum) for u in result.fee_units.tolist()]
    # The fee finer than one quantum goes to the larger-side slot with the largest share.
    for m, extra in residue.items():
        slots = np.flatnonzero((book.slot_sym == m) & (result.external != 0))
        if not len(slots):
            slots = np.flatnonzero((book.slot_sym == m) & (plan.netting.take != 0))
        best = max(slots.tolist(), key=lambda j: (result.fee_units[j], -book.slot_strat[j]))
        fees[best] = exact.add(fees[best], extra)
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
        if external[j] or fees[j]:
            assert price is not None
            out.append(
                VirtualFill(
                    strategy=strategy,
                    symbol=book.symbols[m],
                    qty=book.qty(m, external[j]),
                    price=price,
                    fee=fees[j],
                    internal=False,
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
    """
    stored = ledger.frozen_plan(bar)
    if stored is None:
        ledger.seal_bar(bar, by=sealed_by)
        checkpoint("sealed")
        if prices is None:
            raise InputError(f"bar {bar}", None, "no reference prices for a bar not yet planned")
        intents = tuple(ledger.intents_for_bar(bar))
        positions = dict(ledger.positions())
        halted = ledger.halted_venues() if halted_venues is None else halted_venues
        inputs = PlanInputs(
            bar=bar,
            intents=intents,
            positions=positions,
            budgets=None if budgets is None else dict(budgets),
            prices=dict(prices),
            instruments=relevant_instruments(instruments, intents, positions, routing),
            routing=routing,
            total_capital=total_capital,
            account=account,
            halted_venues=frozenset(Venue(v) for v in halted),
        )
        plan = _plan_of(inputs)
        text, digest = freeze(inputs, plan.orders)
        stored = ledger.freeze_plan(bar, text, digest)
        if stored == (text, digest):
            checkpoint("planned")
            return plan
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
    checkpoint("planned")
    return plan


def _execution_of(row: Mapping[str, Any], fills: Sequence[BrokerFill]) -> BrokerExecution:
    """Return what the journal says the venue did with one order.

    That is its journaled fills (quantity, VWAP, fees), or the venue's cumulative figures
    when it reported no fill details.
    """
    filled = sum((f.qty for f in fills), Decimal(0))
    if not fills or filled != row["filled_qty"]:
        # The venue reported cumulative figures without (all) the executions: trust them.
        qty = row["filled_qty"]
        return BrokerExecution(
            filled_qty=qty, avg_price=row["avg_price"] if qty else None, fee=row["fee"]
        )
    fee = sum((f.fee for f in fills), Decimal(0))
    avg = row["avg_price"]
    notional = sum((exact.multiply(f.qty, f.price) for f in fills), Decimal(0))
    try:
        vwap = exact.divide(notional, filled)
    except Inexact:
        vwap = None
    if vwap is not None and (avg is None or vwap != avg):
        avg = vwap
    return BrokerExecution(filled_qty=filled, avg_price=avg, fee=fee)


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
    """
    if ledger.bar_done(bar):
        return BarRun(bar=bar, outcome=None)
    status = ledger.bar_status(bar)
    if status is not None and status.state is BarState.ABANDONED:
        raise BarAbandonedError(
            f"bar {bar} was abandoned by {status.abandoned_by}: {status.abandoned_reason}"
        )
    plan = load_or_freeze_plan(
        ledger,
        bar,
        prices=prices,
        budgets=budgets,
        instruments=instruments,
        routing=routing,
        total_capital=total_capital,
        account=account,
        halted_venues=halted_venues,
        sealed_by=sealed_by,
        checkpoint=checkpoint,
    )
    missing = sorted({o.venue.value for o in plan.orders if o.venue not in brokers})
    if missing:
        raise BarIncompleteError(f"bar {bar}: no broker for venue(s) {', '.join(missing)}")
    # Each venue's mode as its broker says (SPEC §8: sim, paper or live); a broker without a
    # recognised mode (a test double) is journaled ``sim``, never ``live``.
    modes = {venue: _mode_of(broker) for venue, broker in brokers.items()}
    ledger.journal_orders(bar, account, plan.orders, modes=modes)
    checkpoint("journaled")
    journal = {str(r["client_order_id"]): r for r in ledger.orders(bar)}
    pending = [
        o for o in plan.orders if not OrderState(journal[o.client_order_id]["state"]).is_final
    ]
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
    checkpoint("recording")
    ledger.record_bar(bar, result, ())
    checkpoint("recorded")
    return BarRun(
        bar=bar,
        outcome=result,
        orders=plan.orders,
        submissions=tuple(r.outcome for r in results),
    )
