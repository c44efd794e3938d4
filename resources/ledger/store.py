"""The ledger: the system of record of the allocator, on SQLite (default) or PostgreSQL.

Every write is one transaction: a crash leaves the ledger as it was before the call or after
it. The default store is the SQLite file ``data/ledger.sqlite`` of the project in WAL mode
with a busy timeout and ``BEGIN IMMEDIATE`` writes, so that strategies can submit intents while
a bar runs in another process; PostgreSQL is the same code by URL
(``postgresql+psycopg://user@host:port/db``). The schema is created and upgraded by the Alembic
migrations shipped in ``resources/ledger/migrations``.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from allocator.execution.bar import BarOutcome
from allocator.execution.inbox import ReturnRow, RowRefusal
from allocator.execution.orders import (
    AssetClass,
    Broker,
    BrokerFill,
    BrokerOrder,
    OrderRequest,
    OrderState,
    Side,
    SubmitOutcome,
    Venue,
    submit_idempotently,
)
from allocator.execution.records import (
    Bar,
    GatedIntent,
    Intent,
    NetOrder,
    Reason,
    StrategyBudget,
    StrategyState,
    VirtualFill,
    exact,
)
from resources.ledger import schema as t

__all__ = [
    "AllocationRow",
    "EventRow",
    "Ledger",
    "LedgerPaperState",
    "ReconciliationRecord",
    "ReturnRecord",
    "SubmitReport",
    "default_url",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@functools.cache
def _head_revision() -> str:
    """The migration scripts' head revision (read once per process)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no Alembic head revision under {MIGRATIONS}")
    return head


MODES = ("paper", "live")
MANUAL_BAR = "manual"


def default_url(data_dir: str | Path | None = None) -> str:
    """``sqlite:///<project>/data/ledger.sqlite`` (or inside ``data_dir``)."""
    folder = Path(data_dir) if data_dir is not None else PROJECT_ROOT / "data"
    return f"sqlite:///{(folder / 'ledger.sqlite').resolve()}"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True, slots=True)
class SubmitReport:
    """What a submission kept: ``accepted`` new rows, ``unchanged`` resubmissions of rows
    already stored, and ``refused`` rows with their reasons."""

    accepted: int
    unchanged: int
    refused: tuple[RowRefusal, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class AllocationRow:
    """One published allocation (SPEC §6): budget of ``strategy`` from the session after
    ``date``. ``capital`` in the quote currency."""

    date: str
    strategy: str
    capital: Decimal
    final_weight: float
    breaker_state: str
    benched: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class EventRow:
    """A bench, readmit, breaker or rebalance event (SPEC §11 ``events.csv``)."""

    date: str
    kind: str
    strategy: str | None
    detail: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ReturnRecord:
    """One stored version of a daily return; the highest ``version`` is the current value."""

    date: str
    strategy: str
    version: int
    value: float | None
    correction: bool


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


class Ledger:
    """The store. ``url`` defaults to :func:`default_url`; the schema is upgraded on open."""

    def __init__(self, url: str | None = None, *, upgrade: bool = True) -> None:
        self.url = url or default_url()
        self.engine: Engine = _make_engine(self.url)
        if upgrade:
            self.upgrade()

    def close(self) -> None:
        self.engine.dispose()

    def upgrade(self) -> None:
        """Apply the Alembic migrations up to ``head`` (idempotent). A ledger already at head
        is recognised with one query (Alembic's own check costs ~7 ms, and a bar run opens the
        ledger about ten times)."""
        try:
            with self.engine.connect() as conn:
                stamped = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
            if [r[0] for r in stamped] == [_head_revision()]:
                return
        except sa.exc.DBAPIError:  # no alembic_version table yet: a new ledger
            pass
        cfg = _alembic_config()
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    # -- strategies ---------------------------------------------------------------------------

    def register_strategies(self, names: Iterable[str]) -> None:
        wanted = sorted(set(names))
        with self.engine.begin() as conn:
            _insert_ignore(
                conn, t.strategies, [{"name": n, "created_at": _now()} for n in wanted], ["name"]
            )

    def strategies(self) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.strategies.c.name).order_by(t.strategies.c.name))
            return [r[0] for r in rows]

    # -- returns ------------------------------------------------------------------------------

    def submit_returns(
        self, rows: Sequence[ReturnRow], *, correction: bool = False, source: str = "returns"
    ) -> SubmitReport:
        """Store daily returns. A value already stored for (date, strategy) is unchanged when
        equal, refused (``restated``) when different unless ``correction``, in which case a
        new version is added and the old one kept. A new strategy is registered."""
        refused: list[RowRefusal] = []
        accepted = unchanged = 0
        with self.engine.begin() as conn:
            _insert_ignore(
                conn,
                t.strategies,
                [{"name": n, "created_at": _now()} for n in sorted({r.strategy for r in rows})],
                ["name"],
            )
            current = _current_returns(conn, {r.strategy for r in rows})
            new_rows: list[dict[str, Any]] = []
            for number, row in enumerate(rows, start=1):
                stored = current.get((row.date, row.strategy))
                if stored is not None and _same_return(stored[1], row.value):
                    unchanged += 1
                    continue
                if stored is not None and not correction:
                    refused.append(
                        RowRefusal(
                            source=source,
                            row=number,
                            key=f"{row.date}/{row.strategy}",
                            reason="restated",
                            detail=f"already stored as {stored[1]!r}; submit it as a correction",
                        )
                    )
                    continue
                version = 1 if stored is None else stored[0] + 1
                new_rows.append(
                    {
                        "date": row.date,
                        "strategy": row.strategy,
                        "version": version,
                        "value": row.value,
                        "correction": stored is not None,
                        "submitted_at": _now(),
                    }
                )
                accepted += 1
            if new_rows:
                conn.execute(sa.insert(t.daily_returns), new_rows)
        return SubmitReport(accepted=accepted, unchanged=unchanged, refused=tuple(refused))

    def returns(self) -> list[ReturnRow]:
        """The current value of every (date, strategy), ordered by date then strategy."""
        with self.engine.connect() as conn:
            current = _current_returns(conn, None)
        return [ReturnRow(date=d, strategy=s, value=v[1]) for (d, s), v in sorted(current.items())]

    def return_history(self, strategy: str | None = None) -> list[ReturnRecord]:
        query = sa.select(t.daily_returns).order_by(
            t.daily_returns.c.date, t.daily_returns.c.strategy, t.daily_returns.c.version
        )
        if strategy is not None:
            query = query.where(t.daily_returns.c.strategy == strategy)
        with self.engine.connect() as conn:
            return [
                ReturnRecord(
                    date=r.date,
                    strategy=r.strategy,
                    version=r.version,
                    value=r.value,
                    correction=r.correction,
                )
                for r in conn.execute(query)
            ]

    # -- allocations and events ---------------------------------------------------------------

    def write_allocations(self, rows: Iterable[AllocationRow]) -> None:
        """Publish allocations; a (date, strategy) already published is replaced (a rerun)."""
        items = list(rows)
        with self.engine.begin() as conn:
            _insert_ignore(
                conn,
                t.strategies,
                [{"name": n, "created_at": _now()} for n in sorted({r.strategy for r in items})],
                ["name"],
            )
            for day in sorted({r.date for r in items}):
                names = [r.strategy for r in items if r.date == day]
                conn.execute(
                    sa.delete(t.allocations).where(
                        t.allocations.c.date == day, t.allocations.c.strategy.in_(names)
                    )
                )
            if items:
                conn.execute(
                    sa.insert(t.allocations),
                    [
                        {
                            "date": r.date,
                            "strategy": r.strategy,
                            "capital": r.capital,
                            "final_weight": r.final_weight,
                            "breaker_state": r.breaker_state,
                            "benched": r.benched,
                        }
                        for r in items
                    ],
                )

    def allocations(self, date: str | None = None) -> list[AllocationRow]:
        query = sa.select(t.allocations).order_by(t.allocations.c.date, t.allocations.c.strategy)
        if date is not None:
            query = query.where(t.allocations.c.date == date)
        with self.engine.connect() as conn:
            return [
                AllocationRow(
                    date=r.date,
                    strategy=r.strategy,
                    capital=r.capital,
                    final_weight=r.final_weight,
                    breaker_state=r.breaker_state,
                    benched=r.benched,
                )
                for r in conn.execute(query)
            ]

    def budgets(self, before: str, max_leverage: Decimal) -> dict[str, StrategyBudget]:
        """Each strategy's budget for a bar on session ``before``: the latest allocation
        published at a date strictly before it (SPEC §6: published at ``t``, used from ``t+1``)."""
        a = t.allocations
        latest = sa.select(sa.func.max(a.c.date)).where(a.c.date < before).scalar_subquery()
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(a).where(a.c.date == latest)).all()
        out: dict[str, StrategyBudget] = {}
        for r in rows:
            state = StrategyState.BENCHED if r.benched else StrategyState(r.breaker_state)
            out[r.strategy] = StrategyBudget(
                capital=r.capital, max_leverage=max_leverage, state=state
            )
        return out

    def write_events(self, rows: Iterable[EventRow]) -> None:
        """Append events; an identical event already stored is not duplicated."""
        items = [
            {"date": r.date, "kind": r.kind, "strategy": r.strategy, "detail": r.detail}
            for r in rows
        ]
        with self.engine.begin() as conn:
            for item in items:
                exists = conn.execute(
                    sa.select(sa.literal(1)).where(
                        t.events.c.date == item["date"],
                        t.events.c.kind == item["kind"],
                        t.events.c.strategy.is_(None)
                        if item["strategy"] is None
                        else t.events.c.strategy == item["strategy"],
                        t.events.c.detail == item["detail"],
                    )
                ).first()
                if exists is None:
                    conn.execute(sa.insert(t.events), [item])

    def events(self) -> list[EventRow]:
        with self.engine.connect() as conn:
            return [
                EventRow(date=r.date, kind=r.kind, strategy=r.strategy, detail=r.detail)
                for r in conn.execute(sa.select(t.events).order_by(t.events.c.id))
            ]

    # -- intents ------------------------------------------------------------------------------

    def submit_intents(self, intents: Sequence[Intent], *, source: str = "intents") -> SubmitReport:
        """Store checked intents. An id already stored with the same content is unchanged;
        with other content it is refused (``conflict``)."""
        refused: list[RowRefusal] = []
        accepted = unchanged = 0
        with self.engine.begin() as conn:
            ids = [i.intent_id for i in intents]
            stored: dict[str, Intent] = {}
            for chunk in _chunks(ids, 500):
                for r in conn.execute(sa.select(t.intents).where(t.intents.c.intent_id.in_(chunk))):
                    stored[r.intent_id] = _intent_of(r)
            new_rows = []
            for number, intent in enumerate(intents, start=1):
                earlier = stored.get(intent.intent_id)
                if earlier is not None:
                    if earlier == intent:
                        unchanged += 1
                    else:
                        refused.append(
                            RowRefusal(
                                source=source,
                                row=number,
                                key=intent.intent_id,
                                reason="conflict",
                                detail="this intent id is already stored with other content",
                            )
                        )
                    continue
                stored[intent.intent_id] = intent
                new_rows.append(
                    {
                        "intent_id": intent.intent_id,
                        "strategy": intent.strategy,
                        "symbol": intent.symbol,
                        "asset_class": intent.asset_class.value,
                        "qty": intent.qty,
                        "bar": intent.bar.key,
                        "received_at": _now(),
                    }
                )
                accepted += 1
            if new_rows:
                conn.execute(sa.insert(t.intents), new_rows)
        return SubmitReport(accepted=accepted, unchanged=unchanged, refused=tuple(refused))

    def intents_for_bar(self, bar: Bar) -> list[Intent]:
        query = (
            sa.select(t.intents).where(t.intents.c.bar == bar.key).order_by(t.intents.c.intent_id)
        )
        with self.engine.connect() as conn:
            return [_intent_of(r) for r in conn.execute(query)]

    # -- one bar (allocator.execution.bar.BarLedger) ------------------------------------------

    def bar_done(self, bar: Bar) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(t.bars.c.bar).where(t.bars.c.bar == bar.key)).first()
        return found is not None

    def positions(self) -> dict[tuple[str, str], Decimal]:
        """Every strategy's virtual position per symbol (signed base units), zeros omitted."""
        with self.engine.connect() as conn:
            return {
                (r.strategy, r.symbol): r.qty
                for r in conn.execute(sa.select(t.positions))
                if r.qty != 0
            }

    def cash(self) -> dict[str, Decimal]:
        with self.engine.connect() as conn:
            return {r.strategy: r.amount for r in conn.execute(sa.select(t.cash))}

    def journal_orders(
        self,
        bar: Bar,
        account: str,
        orders: Sequence[NetOrder],
        *,
        modes: Mapping[Venue, str] | None = None,
    ) -> None:
        """Journal each order ``pending_submit`` with its venue's mode (``paper`` unless
        ``modes`` says ``live``); an id already journaled must be the same order in the same
        mode, else :class:`ValueError` (a rerun never changes what an id means)."""
        modes = modes or {}
        for venue, mode in modes.items():
            _check_mode(mode, f"mode of {venue}")
        rows = [
            {
                "client_order_id": o.client_order_id,
                "bar": bar.key,
                "account": account,
                "venue": o.venue.value,
                "symbol": o.symbol,
                "side": o.side.value,
                "qty": o.qty,
                "reference_price": o.reference_price,
                "state": OrderState.PENDING_SUBMIT.value,
                "filled_qty": Decimal(0),
                "avg_price": None,
                "fee": Decimal(0),
                "venue_order_id": None,
                "detail": "",
                "updated_at": _now(),
                "mode": modes.get(o.venue, "paper"),
            }
            for o in orders
        ]
        with self.engine.begin() as conn:
            for row in rows:
                _journal_once(conn, row, f"the rerun of bar {bar}")

    def update_order(self, order: NetOrder, outcome: SubmitOutcome) -> None:
        self.record_order_outcome(order.client_order_id, outcome)

    def record_order_outcome(self, client_order_id: str, outcome: SubmitOutcome) -> None:
        """Write what :func:`~allocator.execution.orders.submit_idempotently` concluded for a
        journaled order: its state, detail and (when the venue answered) fills, price, fee, id."""
        values: dict[str, Any] = {
            "state": outcome.state.value,
            "detail": outcome.detail,
            "updated_at": _now(),
        }
        if outcome.order is not None:
            values |= {
                "filled_qty": outcome.order.filled_qty,
                "avg_price": outcome.order.avg_price,
                "fee": outcome.order.fee,
                "venue_order_id": outcome.order.venue_order_id,
            }
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(t.orders)
                .where(t.orders.c.client_order_id == client_order_id)
                .values(**values)
            )
            if done.rowcount != 1:
                raise ValueError(f"order {client_order_id} is not in the journal")

    def submit_manual_order(
        self,
        broker: Broker,
        request: OrderRequest,
        *,
        account: str,
        mode: str,
        lookups: int = 3,
        delay_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> SubmitOutcome:
        """One operator order (``allocator broker submit``), journaled like a bar's orders.

        The order is written ``pending_submit`` (bar ``manual``, the given account and mode)
        before anything is sent, then sent through
        :func:`~allocator.execution.orders.submit_idempotently`
        (look up first, send at most once, resolve an ambiguous outcome by lookups), then its
        outcome is journaled. Re-running it with the same client order id sends nothing twice;
        an id the journal holds for a different order is refused with :class:`ValueError`.
        """
        _check_mode(mode, "mode")
        row = {
            "client_order_id": request.client_order_id,
            "bar": MANUAL_BAR,
            "account": account,
            "venue": request.venue.value,
            "symbol": request.symbol,
            "side": request.side.value,
            "qty": request.qty,
            "reference_price": request.reference_price,
            "state": OrderState.PENDING_SUBMIT.value,
            "filled_qty": Decimal(0),
            "avg_price": None,
            "fee": Decimal(0),
            "venue_order_id": None,
            "detail": "manual order",
            "updated_at": _now(),
            "mode": mode,
        }
        with self.engine.begin() as conn:
            _journal_once(conn, row, "this manual order")
        outcome = submit_idempotently(
            broker, request, lookups=lookups, delay_s=delay_s, sleep=sleep
        )
        self.record_order_outcome(request.client_order_id, outcome)
        return outcome

    def orders(self, bar: Bar | None = None) -> list[dict[str, Any]]:
        query = sa.select(t.orders).order_by(t.orders.c.bar, t.orders.c.symbol)
        if bar is not None:
            query = query.where(t.orders.c.bar == bar.key)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def record_bar(
        self, bar: Bar, outcome: BarOutcome, broker_orders: Sequence[BrokerOrder]
    ) -> None:
        venue_of = {o.client_order_id: o for o in broker_orders}
        with self.engine.begin() as conn:
            # The bar row first: a second recorder of the same bar fails here and rolls back.
            conn.execute(sa.insert(t.bars), [{"bar": bar.key, "recorded_at": _now()}])
            _write_gating(conn, bar, outcome.gated)
            fills = [
                {
                    "venue": _venue_of_order(conn, f.client_order_id),
                    "fill_id": f.fill_id,
                    "client_order_id": f.client_order_id,
                    "symbol": f.symbol,
                    "side": f.side.value,
                    "qty": f.qty,
                    "price": f.price,
                    "fee": f.fee,
                    "ts": f.ts,
                }
                for o in venue_of.values()
                for f in o.fills
            ]
            _insert_ignore(conn, t.broker_fills, fills, ["venue", "fill_id"])
            _write_virtual_fills(conn, bar, outcome.fills)
            conn.execute(
                sa.insert(t.netting_savings),
                [
                    {
                        "bar": bar.key,
                        "would_pay": outcome.would_pay,
                        "fee_paid": outcome.fee_paid,
                        "savings": outcome.savings,
                    }
                ],
            )

    def virtual_fills(self, bar: Bar | None = None) -> list[VirtualFill]:
        v = t.virtual_fills
        query = sa.select(v).order_by(v.c.bar, v.c.strategy, v.c.symbol, v.c.internal)
        if bar is not None:
            query = query.where(v.c.bar == bar.key)
        with self.engine.connect() as conn:
            return [
                VirtualFill(
                    strategy=r.strategy,
                    symbol=r.symbol,
                    qty=r.qty,
                    price=r.price,
                    fee=r.fee,
                    internal=r.internal,
                )
                for r in conn.execute(query)
            ]

    def broker_fills(self) -> list[BrokerFill]:
        with self.engine.connect() as conn:
            return [
                BrokerFill(
                    fill_id=r.fill_id,
                    client_order_id=r.client_order_id,
                    symbol=r.symbol,
                    side=Side(r.side),
                    qty=r.qty,
                    price=r.price,
                    fee=r.fee,
                    ts=r.ts,
                )
                for r in conn.execute(sa.select(t.broker_fills).order_by(t.broker_fills.c.fill_id))
            ]

    def gating(self, bar: Bar) -> list[GatedIntent]:
        g = t.gating
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(g).where(g.c.bar == bar.key).order_by(g.c.intent_id))
            return [
                GatedIntent(
                    intent_id=r.intent_id,
                    strategy=r.strategy,
                    symbol=r.symbol,
                    requested_qty=r.requested_qty,
                    accepted_qty=r.accepted_qty,
                    reason=None if r.reason is None else Reason(r.reason),
                    routed_from=r.routed_from,
                    detail=r.detail,
                )
                for r in rows
            ]

    def savings(self, bar: Bar) -> Decimal | None:
        s = t.netting_savings
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(s.c.savings).where(s.c.bar == bar.key)).first()
        return None if found is None else found[0]

    # -- reconciliation and venue halts (SPEC §9) -----------------------------------------------

    def record_reconciliation(
        self,
        venue: Venue | str,
        differences: Sequence[Mapping[str, str]],
        *,
        checked_at: datetime | None = None,
        source: str = "",
    ) -> ReconciliationRecord:
        """Append one reconciliation of ``venue``; any difference halts new entries there.

        A clean reconciliation (no differences) clears every halt in force on the venue (its
        rows get ``cleared_at`` = ``checked_at`` and ``cleared_by`` = the new row); a halt is
        never cleared any other way, and no row is overwritten. One transaction.
        """
        venue = Venue(venue).value
        when = checked_at or _now()
        ok = not differences
        body = json.dumps(
            [{k: str(v) for k, v in sorted(d.items())} for d in differences], sort_keys=True
        )
        r = t.reconciliations
        with self.engine.begin() as conn:
            new_id = conn.execute(
                sa.insert(r).values(
                    venue=venue,
                    checked_at=when,
                    ok=ok,
                    differences=body,
                    halted=not ok,
                    cleared_at=None,
                    cleared_by=None,
                    source=source[:64],
                )
            ).inserted_primary_key
            assert new_id is not None
            if ok:
                conn.execute(
                    sa.update(r)
                    .where(r.c.venue == venue, r.c.halted.is_(True), r.c.cleared_at.is_(None))
                    .values(cleared_at=when, cleared_by=int(new_id[0]))
                )
            row = conn.execute(sa.select(r).where(r.c.id == int(new_id[0]))).one()
        return _reconciliation_of(row)

    def reconciliations(self, venue: Venue | str | None = None) -> list[ReconciliationRecord]:
        """Every stored reconciliation (of ``venue``), oldest first."""
        r = t.reconciliations
        query = sa.select(r).order_by(r.c.id)
        if venue is not None:
            query = query.where(r.c.venue == Venue(venue).value)
        with self.engine.connect() as conn:
            return [_reconciliation_of(row) for row in conn.execute(query)]

    def venue_halts(self) -> dict[str, ReconciliationRecord]:
        """The halts in force: venue -> its latest halting reconciliation not yet cleared.

        Empty when every venue may take new entries. This is the hook for an asset check:
        it fails while the mapping is not empty, with the records' differences as metadata.
        """
        r = t.reconciliations
        query = (
            sa.select(r)
            .where(r.c.halted.is_(True), r.c.cleared_at.is_(None))
            .order_by(r.c.venue, r.c.id)
        )
        with self.engine.connect() as conn:
            return {row.venue: _reconciliation_of(row) for row in conn.execute(query)}

    def halted_venues(self) -> frozenset[Venue]:
        """The venues on which :func:`~allocator.execution.bar.run_bar` refuses new entries."""
        return frozenset(Venue(v) for v in self.venue_halts())


def _check_mode(mode: str, what: str) -> None:
    if mode not in MODES:
        raise ValueError(f"{what} must be one of {MODES}, got {mode!r}")


def _journal_once(conn: Connection, row: Mapping[str, Any], who: str) -> None:
    """Insert a ``pending_submit`` journal row unless its id is there as the same order."""
    o = t.orders
    known = conn.execute(
        sa.select(o.c.symbol, o.c.qty, o.c.side, o.c.venue, o.c.mode).where(
            o.c.client_order_id == row["client_order_id"]
        )
    ).first()
    if known is None:
        conn.execute(sa.insert(o), [dict(row)])
        return
    journaled = (known.symbol, known.qty, known.side, known.venue, known.mode)
    wanted = (row["symbol"], row["qty"], row["side"], row["venue"], row["mode"])
    if journaled != wanted:
        raise ValueError(
            f"order {row['client_order_id']} is journaled as {known.side} {known.qty} "
            f"{known.symbol} at {known.venue} ({known.mode}); {who} wants {row['side']} "
            f"{row['qty']} {row['symbol']} at {row['venue']} ({row['mode']})"
        )


def _reconciliation_of(row: Any) -> ReconciliationRecord:
    return ReconciliationRecord(
        id=int(row.id),
        venue=str(row.venue),
        checked_at=row.checked_at,
        ok=bool(row.ok),
        differences=tuple(json.loads(row.differences)),
        halted=bool(row.halted),
        cleared_at=row.cleared_at,
        cleared_by=None if row.cleared_by is None else int(row.cleared_by),
        source=str(row.source),
    )


def _venue_of_order(conn: Connection, cid: str) -> str:
    found = conn.execute(
        sa.select(t.orders.c.venue).where(t.orders.c.client_order_id == cid)
    ).first()
    if found is None:
        raise ValueError(f"fill for order {cid} which is not in the journal")
    return str(found[0])


def _write_gating(conn: Connection, bar: Bar, gated: Sequence[GatedIntent]) -> None:
    rows = [
        {
            "intent_id": g.intent_id,
            "bar": bar.key,
            "strategy": g.strategy,
            "symbol": g.symbol,
            "requested_qty": g.requested_qty,
            "accepted_qty": g.accepted_qty,
            "reason": None if g.reason is None else g.reason.value,
            "routed_from": g.routed_from,
            "detail": g.detail,
        }
        for g in gated
    ]
    if rows:
        conn.execute(sa.insert(t.gating), rows)


def _write_virtual_fills(conn: Connection, bar: Bar, fills: Sequence[VirtualFill]) -> None:
    if not fills:
        return
    conn.execute(
        sa.insert(t.virtual_fills),
        [
            {
                "bar": bar.key,
                "strategy": f.strategy,
                "symbol": f.symbol,
                "internal": f.internal,
                "qty": f.qty,
                "price": f.price,
                "fee": f.fee,
                "cash": f.cash,
            }
            for f in fills
        ],
    )
    delta_pos: dict[tuple[str, str], Decimal] = {}
    delta_cash: dict[str, Decimal] = {}
    for f in fills:
        key = (f.strategy, f.symbol)
        delta_pos[key] = exact.add(delta_pos.get(key, Decimal(0)), f.qty)
        delta_cash[f.strategy] = exact.add(delta_cash.get(f.strategy, Decimal(0)), f.cash)
    p = t.positions
    held = {
        (r.strategy, r.symbol): r.qty
        for r in conn.execute(sa.select(p).where(p.c.strategy.in_(sorted(delta_cash))))
    }
    for (strategy, symbol), dq in sorted(delta_pos.items()):
        if (strategy, symbol) in held:
            conn.execute(
                sa.update(p)
                .where(p.c.strategy == strategy, p.c.symbol == symbol)
                .values(qty=exact.add(held[(strategy, symbol)], dq))
            )
        else:
            conn.execute(sa.insert(p), [{"strategy": strategy, "symbol": symbol, "qty": dq}])
    c = t.cash
    have = {
        r.strategy: r.amount
        for r in conn.execute(sa.select(c).where(c.c.strategy.in_(sorted(delta_cash))))
    }
    for strategy, dc in sorted(delta_cash.items()):
        if strategy in have:
            conn.execute(
                sa.update(c)
                .where(c.c.strategy == strategy)
                .values(amount=exact.add(have[strategy], dc))
            )
        else:
            conn.execute(sa.insert(c), [{"strategy": strategy, "amount": dc}])


def _intent_of(r: Any) -> Intent:
    return Intent(
        intent_id=r.intent_id,
        strategy=r.strategy,
        symbol=r.symbol,
        asset_class=AssetClass(r.asset_class),
        qty=r.qty,
        bar=Bar(r.bar),
    )


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _same_return(a: float | None, b: float | None) -> bool:
    return a == b or (a is None and b is None)


def _current_returns(
    conn: Connection, names: set[str] | None
) -> dict[tuple[str, str], tuple[int, float | None]]:
    r = t.daily_returns
    query = sa.select(r.c.date, r.c.strategy, r.c.version, r.c.value)
    if names is not None:
        query = query.where(r.c.strategy.in_(sorted(names)))
    current: dict[tuple[str, str], tuple[int, float | None]] = {}
    for row in conn.execute(query):
        key = (row.date, row.strategy)
        if key not in current or current[key][0] < row.version:
            current[key] = (row.version, row.value)
    return current


def _insert_ignore(
    conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> None:
    """Insert rows, skipping those whose primary key is already there."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "postgresql":
        pg_stmt = postgresql.insert(table).on_conflict_do_nothing(index_elements=list(keys))
        conn.execute(pg_stmt, list(rows))
    elif dialect == "sqlite":
        lite_stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=list(keys))
        conn.execute(lite_stmt, list(rows))
    else:  # pragma: no cover - only the two supported backends
        raise ValueError(f"unsupported ledger backend {dialect}")


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below rule
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql"):
        return sa.create_engine(url, pool_pre_ping=True)
    raise ValueError(f"ledger URL must be sqlite:/// or postgresql+psycopg://, got {url!r}")


class LedgerPaperState:
    """The paper broker's orders kept in the ledger's database (committed on every put)."""

    def __init__(self, ledger: Ledger) -> None:
        self._engine = ledger.engine

    def get(self, venue: str, client_order_id: str) -> BrokerOrder | None:
        p = t.paper_orders
        with self._engine.connect() as conn:
            found = conn.execute(
                sa.select(p.c.body).where(
                    p.c.venue == venue, p.c.client_order_id == client_order_id
                )
            ).first()
        return None if found is None else _order_from_json(found[0])

    def put(self, venue: str, order: BrokerOrder) -> None:
        p = t.paper_orders
        body = _order_to_json(order)
        with self._engine.begin() as conn:
            conn.execute(
                sa.delete(p).where(p.c.venue == venue, p.c.client_order_id == order.client_order_id)
            )
            conn.execute(
                sa.insert(p),
                [
                    {
                        "venue": venue,
                        "client_order_id": order.client_order_id,
                        "symbol": order.symbol,
                        "body": body,
                    }
                ],
            )

    def orders(self, venue: str) -> list[BrokerOrder]:
        p = t.paper_orders
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(p.c.body).where(p.c.venue == venue).order_by(p.c.client_order_id)
            )
            return [_order_from_json(r[0]) for r in rows]


def _order_to_json(order: BrokerOrder) -> str:
    return json.dumps(
        {
            "client_order_id": order.client_order_id,
            "venue_order_id": order.venue_order_id,
            "symbol": order.symbol,
            "side": order.side.value,
            "qty": str(order.qty),
            "filled_qty": str(order.filled_qty),
            "avg_price": None if order.avg_price is None else str(order.avg_price),
            "fee": str(order.fee),
            "state": order.state.value,
            "fills": [
                {
                    "fill_id": f.fill_id,
                    "qty": str(f.qty),
                    "price": str(f.price),
                    "fee": str(f.fee),
                    "ts": None if f.ts is None else f.ts.isoformat(),
                }
                for f in order.fills
            ],
        },
        sort_keys=True,
    )


def _order_from_json(text: str) -> BrokerOrder:
    raw = json.loads(text)
    side = Side(raw["side"])
    return BrokerOrder(
        client_order_id=raw["client_order_id"],
        venue_order_id=raw["venue_order_id"],
        symbol=raw["symbol"],
        side=side,
        qty=Decimal(raw["qty"]),
        filled_qty=Decimal(raw["filled_qty"]),
        avg_price=None if raw["avg_price"] is None else Decimal(raw["avg_price"]),
        fee=Decimal(raw["fee"]),
        state=OrderState(raw["state"]),
        fills=tuple(
            BrokerFill(
                fill_id=f["fill_id"],
                client_order_id=raw["client_order_id"],
                symbol=raw["symbol"],
                side=side,
                qty=Decimal(f["qty"]),
                price=Decimal(f["price"]),
                fee=Decimal(f["fee"]),
                ts=None if f["ts"] is None else datetime.fromisoformat(f["ts"]),
            )
            for f in raw["fills"]
        ),
    )
