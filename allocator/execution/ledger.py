"""What the execution core needs of the ledger of record, as a :class:`Ledger` protocol.

SPEC §9 makes the ledger the truth: an order is journaled ``pending_submit`` before it is sent
and its outcome after; a bar is recorded in one transaction; a reconciliation that differs
halts new entries on its venue until a clean one clears it. :func:`~.bar.run_bar`,
:func:`~.manual.submit_manual_order`, :func:`~.reconcile.reconcile_at_start` and
:func:`~.reconcile.record_report` talk to the ledger only through this protocol;
``resources.ledger.Ledger`` implements it (a test checks that it does).

The records the ledger answers with for a reconciliation live here too: what it expects at a
venue (:class:`ExpectedOrder`, :class:`LedgerExpectation`) and what it stored
(:class:`ReconciliationRecord`).

Why this module sits below ``bar`` and ``reconcile`` (it imports neither): both of them take a
:class:`Ledger`, so the protocol cannot name their records without an import cycle. It names
what it needs structurally instead: :class:`SettledBar` is what the ledger reads of a
:class:`~.bar.BarOutcome`.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from allocator.execution.inbox import RowRefusal
from allocator.execution.orders import (
    BrokerFill,
    BrokerOrder,
    NetOrder,
    OrderRequest,
    SubmitOutcome,
    Venue,
)
from allocator.execution.records import Bar, GatedIntent, Intent, VirtualFill
from allocator.execution.risk import RiskMark, SendGate, StateChange, TradingStatus
from allocator.states import TradingState

__all__ = [
    "BarState",
    "BarStatus",
    "ExpectedOrder",
    "LaneHalt",
    "Ledger",
    "LedgerExpectation",
    "ReconciliationRecord",
    "SettledBar",
]


class BarState(enum.StrEnum):
    """Where a sealed bar is in its life (docs/decisions/0012-live-bar-path.md).

    ``sealed``: its inbox is fixed (SPEC §7 sealing), no plan stored yet; ``planned``: its plan
    is frozen in the ledger; ``failed``: a run of it failed and it waits for a retry;
    ``settled``: its fills are recorded (final); ``abandoned``: an operator gave it up once
    every venue confirmed it holds no order for it (final). An unsealed bar has no state.
    """

    SEALED = "sealed"
    PLANNED = "planned"
    FAILED = "failed"
    SETTLED = "settled"
    ABANDONED = "abandoned"

    @property
    def is_final(self) -> bool:
        """Whether the bar is done with: settled or abandoned."""
        return self in (BarState.SETTLED, BarState.ABANDONED)


@dataclass(frozen=True, kw_only=True, slots=True)
class BarStatus:
    """One sealed bar's lifecycle row.

    Attributes
    ----------
    bar : str
        The bar's key (``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM:SSZ``).
    state : BarState
        Where the bar is in its life.
    sealed_at : datetime
        When the bar was sealed (UTC).
    sealed_by : str
        Who sealed it (``bar_sensor``, ``bar_job``, ``allocator bar run``).
    attempts : int
        How many runs of the bar failed so far (>= 0).
    last_error : str or None
        The last failure's message.
    next_retry_at : datetime or None
        When the lane may retry the bar (UTC); ``None`` when no retry is scheduled.
    settled_at : datetime or None
        When the bar was settled (UTC).
    abandoned_by, abandoned_reason : str or None
        Who abandoned the bar and why.
    lease_owner : str or None
        The runner holding the bar's lease (:class:`~allocator.execution.lease.LeaseOwner`
        text), ``None`` when no one runs it.
    lease_expires_at : datetime or None
        Until when the lease holds unless renewed (UTC).
    """

    bar: str
    state: BarState
    sealed_at: datetime
    sealed_by: str
    attempts: int = 0
    last_error: str | None = None
    next_retry_at: datetime | None = None
    settled_at: datetime | None = None
    abandoned_by: str | None = None
    abandoned_reason: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class LaneHalt:
    """The bar lane's halt: no bar trades until an operator clears it.

    Attributes
    ----------
    reason : str
        Why the lane is halted (names the bar and its last error).
    bar : str or None
        The bar whose last retry failed.
    halted_at : datetime
        When the lane was halted (UTC).
    """

    reason: str
    bar: str | None
    halted_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class ExpectedOrder:
    """An order the ledger holds as open (submitted or partially filled) on this venue."""

    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    filled_qty: Decimal = Decimal(0)


@dataclass(frozen=True, kw_only=True, slots=True)
class LedgerExpectation:
    """What the ledger expects at one venue (SPEC §9).

    ``positions``: the signed sum of the strategies' virtual positions in every symbol the
    journal routed to the venue; ``open_orders``: the journal's ``submitted`` and
    ``partially_filled`` orders there; ``uncertain``: the client order ids it holds as
    ``pending_submit`` or ``unknown`` (open or not, to be resolved by a lookup, never counted
    as a difference); ``source``: which ledger said so (credentials hidden).
    """

    positions: Mapping[str, Decimal]
    open_orders: tuple[ExpectedOrder, ...]
    uncertain: frozenset[str]
    source: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ReconciliationRecord:
    """One reconciliation of ``venue`` against the ledger (SPEC §9), as stored.

    ``differences`` are the reported differences (each a mapping with ``kind``, ``key``,
    ``venue`` and ``ledger``); ``halted`` is true when the row halted new entries on the venue
    (it had differences); ``cleared_at``/``cleared_by`` are set on a halting row when a later
    clean reconciliation (row ``cleared_by``) lifted the halt. Instants are UTC.
    """

    id: int
    venue: str
    checked_at: datetime
    ok: bool
    differences: tuple[Mapping[str, str], ...]
    halted: bool
    cleared_at: datetime | None
    cleared_by: int | None
    source: str

    @property
    def halts_entries(self) -> bool:
        """True while this row's halt is in force (halted and not cleared)."""
        return self.halted and self.cleared_at is None


class SettledBar(Protocol):
    """What :meth:`Ledger.record_bar` records of a settled bar (a :class:`~.bar.BarOutcome`).

    Every intent's outcome, the virtual fills and the netting savings (quote currency).
    """

    @property
    def gated(self) -> Sequence[GatedIntent]:
        """Every intent of the bar with its outcome."""
        ...

    @property
    def fills(self) -> Sequence[VirtualFill]:
        """Each strategy's virtual fills (quantities signed, + bought)."""
        ...

    @property
    def would_pay(self) -> Decimal:
        """The fees the accepted intents would have paid traded one by one (quote currency)."""
        ...

    @property
    def fee_paid(self) -> Decimal:
        """The fees the broker charged for the bar's orders (quote currency, >= 0)."""
        ...

    @property
    def savings(self) -> Decimal:
        """Netting savings: ``would_pay`` − ``fee_paid`` (quote currency, + saved)."""
        ...


@runtime_checkable
class Ledger(Protocol):
    """The ledger as the execution core uses it: one bar, one manual order, reconciliation."""

    # -- one bar (run_bar) ----------------------------------------------------------------------

    def bar_done(self, bar: Bar) -> bool:
        """Return whether :meth:`record_bar` has recorded ``bar``."""
        ...

    def positions(self) -> Mapping[tuple[str, str], Decimal]:
        """Every strategy's virtual position per symbol (signed base units), zeros omitted."""
        ...

    def halted_venues(self) -> Collection[Venue]:
        """Venues whose last reconciliation found differences not yet cleared (SPEC §9)."""
        ...

    def journal_orders(
        self,
        bar: Bar,
        account: str,
        orders: Sequence[NetOrder],
        *,
        modes: Mapping[Venue, str] | None = None,
    ) -> None:
        """Write each order as ``pending_submit`` with its venue's mode (``paper``/``live``).

        An order whose client order id is there already is skipped if it is the same order and
        a :class:`ValueError` otherwise.
        """
        ...

    def update_order(self, order: NetOrder, outcome: SubmitOutcome) -> None:
        """Journal an outcome of ``order`` as it arrives, fills included, in one transaction.

        It writes the state, detail and cumulative figures (:meth:`record_order_outcome`) and
        every fill the venue reported with it (new ones inserted unsettled, deduplicated by
        (venue, fill id)).
        """
        ...

    def journaled_fills(self, bar: Bar) -> Mapping[str, Sequence[BrokerFill]]:
        """Return the fills journaled for ``bar``'s orders, by client order id (by fill id)."""
        ...

    def orders(self, bar: Bar | None = None) -> Sequence[Mapping[str, Any]]:
        """Return the journal's rows (of ``bar``) as stored.

        Each has ``client_order_id``, ``state``, ``filled_qty``, ``avg_price``, ``fee`` ...
        """
        ...

    # -- the risk stage (docs/spec-12-risk.md; resources/ledger/risk.py) ----------------------

    def cash(self) -> Mapping[str, Decimal]:
        """Every strategy's cash (quote currency, + received), as recorded by the bars."""
        ...

    def trading_status(self) -> TradingStatus:
        """Return the trading states in force (the journal's latest row of each scope)."""
        ...

    def set_trading_state(
        self,
        state: TradingState | str,
        *,
        by: str,
        reason: str,
        venue: Venue | str | None = None,
        source: str = "operator",
        bar: Bar | None = None,
    ) -> StateChange:
        """Journal a trading-state change of the book (or ``venue``) with who and why."""
        ...

    def record_mark(self, bar: Bar, equity: Decimal) -> RiskMark:
        """Mark the book's equity at ``bar`` once; return the mark with its peak and start."""
        ...

    def record_prices(self, bar: Bar, prices: Mapping[str, Decimal]) -> None:
        """Keep ``bar``'s reference prices (the price collar's previous prices)."""
        ...

    def previous_prices(self, bar: Bar, symbols: Collection[str]) -> Mapping[str, Decimal]:
        """Return each symbol's price in the latest earlier bar that kept one."""
        ...

    def recent_venue_orders(
        self, bar: Bar, windows_s: Sequence[int]
    ) -> Mapping[Venue, tuple[int, ...]]:
        """Return the orders earlier bars sent each venue within each window of bar time."""
        ...

    def record_risk_denials(self, bar: Bar, stage: str, denials: Sequence[GatedIntent]) -> None:
        """Store the risk stage's denials of ``bar`` at ``stage`` (``plan``/``send``) once."""
        ...

    def send_gate(self, bar: Bar) -> SendGate | None:
        """Return the stricter states ``bar`` is sent under; ``None``: its frozen ones."""
        ...

    def record_send_gate(
        self,
        bar: Bar,
        *,
        trading_state: TradingState,
        venue_states: Mapping[Venue, TradingState],
        state_detail: str,
        venue_details: Mapping[Venue, str],
    ) -> SendGate:
        """Store (or make stricter) the states ``bar`` is sent under and return them."""
        ...

    # -- the bar's lifecycle (docs/decisions/0012-live-bar-path.md) ---------------------------

    def seal_bar(self, bar: Bar, *, by: str) -> BarStatus:
        """Seal ``bar`` (idempotent) and return its lifecycle row.

        The first call inserts its row ``sealed``, later calls return it. From then on a new
        intent for it is refused ``late``.
        """
        ...

    def bar_status(self, bar: Bar) -> BarStatus | None:
        """Return ``bar``'s lifecycle row; ``None`` when it was never sealed."""
        ...

    def intents_for_bar(self, bar: Bar) -> Sequence[Intent]:
        """Return the intents stored for ``bar`` (once sealed: its sealed inbox), by id."""
        ...

    def freeze_plan(self, bar: Bar, text: str, digest: str) -> tuple[str, str]:
        """Store ``bar``'s plan unless one is stored; return the stored (text, digest).

        The first writer wins. The bar must be sealed; a ``sealed`` bar becomes ``planned``.
        """
        ...

    def frozen_plan(self, bar: Bar) -> tuple[str, str] | None:
        """Return ``bar``'s stored plan (text, digest); ``None`` when none is frozen."""
        ...

    def refusals(self, bar: Bar | None = None) -> Sequence[RowRefusal]:
        """Return the intents refused after they reached the ledger (``late``), oldest first."""
        ...

    # -- who runs the bar (allocator/execution/lease.py) --------------------------------------

    def claim_bar(
        self,
        bar: Bar,
        owner: str,
        *,
        now: datetime,
        until: datetime,
        replacing: str | None = None,
    ) -> bool:
        """Take the sealed ``bar``'s lease for ``owner`` until ``until``, atomically.

        One conditional update: it succeeds only when no one holds the lease, ``owner`` does,
        the lease expired before ``now``, or its holder is ``replacing`` (one the caller proved
        gone). Return whether ``owner`` holds it now.
        """
        ...

    def renew_bar_lease(self, bar: Bar, owner: str, *, until: datetime) -> bool:
        """Extend ``owner``'s lease of ``bar`` to ``until``; ``False`` when it is not theirs."""
        ...

    def release_bar_lease(self, bar: Bar, owner: str) -> bool:
        """Give ``owner``'s lease of ``bar`` up; ``False`` when it was not theirs."""
        ...

    # -- the bar lane (the sensor's and the operator's; resources/ledger/lanes.py) ------------

    def open_bars(self) -> Sequence[BarStatus]:
        """Return every sealed bar not settled or abandoned, in bar order."""
        ...

    def record_bar_failure(self, bar: Bar, error: str, *, retry_at: datetime) -> BarStatus:
        """Count a failed run of the open ``bar`` and return its row.

        Attempts + 1, state ``failed``, ``last_error`` and ``next_retry_at`` set.
        """
        ...

    def retry_bar(self, bar: Bar) -> BarStatus:
        """Make the open ``bar`` due for a retry now and return its row."""
        ...

    def abandon_bar(self, bar: Bar, *, by: str, reason: str) -> BarStatus:
        """Mark the open ``bar`` ``abandoned`` by ``by`` for ``reason`` and return its row."""
        ...

    def lane_halt(self) -> LaneHalt | None:
        """Return the bar lane's halt in force; ``None`` when the lane runs."""
        ...

    def halt_lane(self, reason: str, *, bar: Bar | None = None) -> LaneHalt:
        """Halt the bar lane (idempotent while halted) and return the halt in force."""
        ...

    def clear_lane_halt(self, *, by: str, reason: str) -> bool:
        """Clear the lane's halt, journaling who and why; ``False`` when it was not halted."""
        ...

    def record_bar(
        self, bar: Bar, outcome: SettledBar, broker_orders: Sequence[BrokerOrder]
    ) -> None:
        """Record the settled bar in one transaction and mark it done.

        The transaction holds the intents' outcomes, the broker fills (deduplicated; every
        journaled fill of the bar's orders is marked settled by the bar), the virtual fills,
        positions, cash, the netting savings and the bar's lifecycle state ``settled``.
        """
        ...

    # -- one operator order (submit_manual_order) -----------------------------------------------

    def journal_manual_order(self, request: OrderRequest, *, account: str, mode: str) -> None:
        """Write ``request`` as ``pending_submit`` (bar ``manual``) unless it is there already.

        Another order under the same client order id is a :class:`ValueError`, and so is a
        ``mode`` other than ``paper``/``live``.
        """
        ...

    def record_order_outcome(self, client_order_id: str, outcome: SubmitOutcome) -> None:
        """Journal the outcome of an order already journaled.

        It writes the state and detail and, when the venue answered, the fills, average price,
        fee and venue order id.
        """
        ...

    # -- reconciliation (reconcile_at_start, record_report) -------------------------------------

    def expectation(self, venue: Venue | str, *, source: str | None = None) -> LedgerExpectation:
        """Return what the ledger expects at ``venue``; ``source`` defaults to the ledger's URL."""
        ...

    def record_reconciliation(
        self,
        venue: Venue | str,
        differences: Sequence[Mapping[str, str]],
        *,
        checked_at: datetime | None = None,
        source: str = "",
    ) -> ReconciliationRecord:
        """Append one reconciliation of ``venue``; nothing is overwritten.

        Differences halt new entries on the venue; none clears every halt in force there.
        """
        ...

    def reconciliations(self, venue: Venue | str | None = None) -> Sequence[ReconciliationRecord]:
        """Every stored reconciliation (of ``venue``), oldest first."""
        ...

    def venue_halts(self) -> Mapping[str, ReconciliationRecord]:
        """Map each halted venue to its latest halting reconciliation not yet cleared."""
        ...
