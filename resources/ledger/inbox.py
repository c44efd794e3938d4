"""The ledger's inbox: the strategy registry, the intents per bar and the daily returns.

What strategies submit (SPEC §1 daily returns, SPEC §7 intents) is stored here once it has
passed :mod:`allocator.execution.inbox`'s checks. A resubmission of a stored row is
``unchanged``; an intent id stored with other content is refused ``conflict``; a return stored
with another value is refused ``restated`` unless submitted as a correction, which adds a new
version and keeps the old one. :meth:`Inbox.pending_bars` is the bar sensor's one query.

Why the inbox refuses instead of overwriting: an intent id or a (date, strategy) return means
one thing forever (SPEC §7 "a repeated id is the same intent"), so a rerun of any submitter is
harmless and a changed value is visible, never silent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from allocator.config import ExecutionConfig
from allocator.execution.inbox import ReturnRow, RowRefusal, check_intents
from allocator.execution.instruments import InstrumentTable
from allocator.execution.orders import AssetClass
from allocator.execution.reasons import Reason
from allocator.execution.records import Bar, Intent
from resources.ledger import schema as t
from resources.ledger.engine import Database, chunks, insert_ignore, now
from resources.ledger.sealing import closed_bars, lock_bars, store_refusals

__all__ = [
    "Inbox",
    "PendingBar",
    "ReturnRecord",
    "SubmitReport",
    "register_names",
    "store_returns",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class SubmitReport:
    """What a submission kept: ``accepted`` new rows, ``unchanged`` resubmissions of rows
    already stored, and ``refused`` rows with their reasons."""

    accepted: int
    unchanged: int
    refused: tuple[RowRefusal, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class ReturnRecord:
    """One stored version of a daily return; the highest ``version`` is the current value."""

    date: str
    strategy: str
    version: int
    value: float | None
    correction: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class PendingBar:
    """A bar of the inbox not yet recorded: the ``strategies`` that submitted an intent for it
    and when its first intent arrived (UTC)."""

    bar: str
    strategies: frozenset[str]
    first_received_at: datetime


def register_names(conn: Connection, names: Iterable[str]) -> None:
    """Register every strategy of ``names`` not registered yet (inside ``conn``'s transaction)."""
    insert_ignore(
        conn,
        t.strategies,
        [{"name": n, "created_at": now()} for n in sorted(set(names))],
        ["name"],
    )


class Inbox(Database):
    """The strategy registry, the intent inbox and the daily returns (a part of ``Ledger``)."""

    # -- strategies ---------------------------------------------------------------------------

    def register_strategies(self, names: Iterable[str]) -> None:
        with self.engine.begin() as conn:
            register_names(conn, names)

    def strategies(self) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.strategies.c.name).order_by(t.strategies.c.name))
            return [r[0] for r in rows]

    # -- returns ------------------------------------------------------------------------------

    def submit_returns(
        self,
        rows: Sequence[ReturnRow],
        *,
        correction: bool = False,
        source: str = "returns",
        by: str = "allocator returns submit",
        why: str = "",
    ) -> SubmitReport:
        """Store daily returns. A value already stored for (date, strategy) is unchanged when
        equal, refused (``restated``) when different unless ``correction``, in which case a
        new version is added, the old one kept and the correction journaled with ``by`` and
        ``why`` (``return_corrections``). A new strategy is registered."""
        with self.engine.begin() as conn:
            return store_returns(conn, rows, correction=correction, source=source, by=by, why=why)

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

    # -- intents ------------------------------------------------------------------------------

    def submit_intents(self, intents: Sequence[Intent], *, source: str = "intents") -> SubmitReport:
        """Store checked intents. An id already stored with the same content is unchanged;
        with other content it is refused (``conflict``). A new intent for a sealed bar (or a
        later state, or a bar recorded before sealing existed) is refused ``late`` and the
        refusal is stored (:meth:`~resources.ledger.sealing.Sealing.refusals`). The check and
        the insert are one transaction serialised with :meth:`seal_bar` on each bar
        (:func:`~resources.ledger.sealing.lock_bars`)."""
        refused: list[RowRefusal] = []
        late: list[tuple[str, str, str, Reason, str]] = []
        accepted = unchanged = 0
        with self.engine.begin() as conn:
            lock_bars(conn, {i.bar.key for i in intents})
            closed = closed_bars(conn, {i.bar.key for i in intents})
            ids = [i.intent_id for i in intents]
            stored: dict[str, Intent] = {}
            for chunk in chunks(ids, 500):
                for r in conn.execute(sa.select(t.intents).where(t.intents.c.intent_id.in_(chunk))):
                    stored[r.intent_id] = _intent_of(r)
            new_rows = []
            received = now()  # one transaction, one instant
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
                                reason=Reason.CONFLICT,
                                detail="this intent id is already stored with other content",
                            )
                        )
                    continue
                state = closed.get(intent.bar.key)
                if state is not None:
                    detail = f"bar {intent.bar} is {state}: its inbox is closed"
                    refused.append(
                        RowRefusal(
                            source=source,
                            row=number,
                            key=intent.intent_id,
                            reason=Reason.LATE,
                            detail=detail,
                        )
                    )
                    late.append(
                        (intent.intent_id, intent.strategy, intent.bar.key, Reason.LATE, detail)
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
                        "received_at": received,
                    }
                )
                accepted += 1
            if new_rows:
                conn.execute(sa.insert(t.intents), new_rows)
            store_refusals(conn, late, source=source)
        return SubmitReport(accepted=accepted, unchanged=unchanged, refused=tuple(refused))

    def submit_intent_rows(
        self,
        rows: Sequence[tuple[int, Mapping[str, str]]],
        source: str,
        *,
        execution: ExecutionConfig,
        instruments: InstrumentTable | None,
        now: datetime,
        strategies: Iterable[str] | None = None,
    ) -> tuple[SubmitReport, list[RowRefusal]]:
        """Check submitted intent rows (:func:`~allocator.execution.inbox.check_intents`
        against the registered strategies, the symbol table and ``execution``'s bar tolerance
        and ``max_intent_qty``) and store the valid ones (:meth:`submit_intents`). The one
        path of ``allocator intents submit`` and of the gateway's ``POST /v1/intents``.
        ``strategies``: the names a row may carry, all registered (the gateway's caller,
        whose token proves it registered); default every registered strategy.
        Returns the ledger's report and the rows the checks refused."""
        intents, refused = check_intents(
            rows,
            source,
            strategies=set(self.strategies() if strategies is None else strategies),
            instruments=instruments,
            now=now,
            bar_tolerance=execution.bar_tolerance,
            bar_interval=timedelta(seconds=execution.bar_interval_seconds),
            max_intent_qty=execution.max_intent_qty,
        )
        return self.submit_intents(intents, source=source), refused

    def intents_for_bar(self, bar: Bar) -> list[Intent]:
        query = (
            sa.select(t.intents).where(t.intents.c.bar == bar.key).order_by(t.intents.c.intent_id)
        )
        with self.engine.connect() as conn:
            return [_intent_of(r) for r in conn.execute(query)]

    def pending_bars(self, after: str = "") -> list[PendingBar]:
        """Every bar after ``after`` with an intent in the inbox and not yet recorded, in bar
        order: who submitted for it and since when. One grouped query (the bar sensor polls it
        every 0.2 s)."""
        i = t.intents
        recorded = sa.exists().where(t.bars.c.bar == i.c.bar)
        query = (
            sa.select(i.c.bar, i.c.strategy, sa.func.min(i.c.received_at))
            .where(i.c.bar > after, ~recorded)
            .group_by(i.c.bar, i.c.strategy)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        by_bar: dict[str, tuple[set[str], datetime]] = {}
        for bar, strategy, first in rows:
            first = first if first.tzinfo else first.replace(tzinfo=UTC)
            names, earliest = by_bar.get(bar, (set(), first))
            names.add(strategy)
            by_bar[bar] = (names, min(earliest, first))
        return [
            PendingBar(bar=bar, strategies=frozenset(names), first_received_at=first)
            for bar, (names, first) in sorted(by_bar.items())
        ]


def store_returns(
    conn: Connection,
    rows: Sequence[ReturnRow],
    *,
    correction: bool,
    source: str,
    by: str,
    why: str,
) -> SubmitReport:
    """:meth:`Inbox.submit_returns` inside the caller's transaction ``conn`` (the gateway
    checks its own rules first, in the same transaction)."""
    refused: list[RowRefusal] = []
    accepted = unchanged = 0
    register_names(conn, {r.strategy for r in rows})
    current = _current_returns(conn, {r.strategy for r in rows})
    new_rows: list[dict[str, Any]] = []
    journal: list[dict[str, Any]] = []
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
                    reason=Reason.RESTATED,
                    detail=f"already stored as {stored[1]!r}; submit it as a correction",
                )
            )
            continue
        version = 1 if stored is None else stored[0] + 1
        current[(row.date, row.strategy)] = (version, row.value)
        new_rows.append(
            {
                "date": row.date,
                "strategy": row.strategy,
                "version": version,
                "value": row.value,
                "correction": stored is not None,
                "submitted_at": now(),
            }
        )
        if stored is not None:
            journal.append(
                {
                    "date": row.date,
                    "strategy": row.strategy,
                    "version": version,
                    "old_value": stored[1],
                    "new_value": row.value,
                    "corrected_by": by[:200],
                    "reason": why,
                    "corrected_at": now(),
                }
            )
        accepted += 1
    if new_rows:
        conn.execute(sa.insert(t.daily_returns), new_rows)
    if journal:
        conn.execute(sa.insert(t.return_corrections), journal)
    return SubmitReport(accepted=accepted, unchanged=unchanged, refused=tuple(refused))


def _intent_of(r: Any) -> Intent:
    return Intent(
        intent_id=r.intent_id,
        strategy=r.strategy,
        symbol=r.symbol,
        asset_class=AssetClass(r.asset_class),
        qty=r.qty,
        bar=Bar(r.bar),
    )


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
