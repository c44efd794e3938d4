"""A bar's lifecycle in the ledger: the seal, the frozen plan and the intents refused ``late``.

docs/decisions/0012-live-bar-path.md, SPEC §7 sealing: :meth:`Sealing.seal_bar` fixes a bar's
inbox in one transaction (the first call inserts its ``bar_lifecycle`` row, state ``sealed``;
later calls return the row); from then on :meth:`~resources.ledger.inbox.Inbox.submit_intents`
refuses every new intent for it with reason ``late`` and stores the refusal
(:meth:`Sealing.refusals`). :meth:`Sealing.freeze_plan` stores the bar's plan (its inputs and
orders as canonical JSON, with a digest) once: the first writer wins and every caller gets what
is stored.

The seal and the inbox serialise on the bar (:func:`lock_bars`): on SQLite every write
transaction starts ``BEGIN IMMEDIATE`` (:func:`~resources.ledger.engine.make_engine`), so the
check and the insert run under the one write lock; on PostgreSQL each transaction takes a
transaction advisory lock on a hash of each bar it touches before it reads, in bar order (no
deadlock between two submitters). So an intent either lands before the seal and is the bar's,
or is refused ``late``; none slips in between.

Why a module of its own: the lifecycle row is read by the inbox (is the bar sealed?), the bar
recorder (settled) and the lane (engineer D's ``lanes.py``: failures, retries, abandonment);
each of them uses the module functions here inside its own transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from allocator.execution.inbox import RowRefusal
from allocator.execution.ledger import BarState, BarStatus
from allocator.execution.reasons import Reason
from allocator.execution.records import Bar
from resources.ledger import schema as t
from resources.ledger.engine import Database, now

__all__ = ["Sealing", "closed_bars", "lock_bars", "status_of", "store_refusals"]


def _lock_key(bar: str) -> int:
    """A signed 64-bit advisory lock key of ``bar`` (stable across processes and versions)."""
    digest = hashlib.blake2b(f"allocator-bar\x1f{bar}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_bars(conn: Connection, bars: Iterable[str]) -> None:
    """Serialise this transaction with every other one on ``bars`` (see the module doc).

    PostgreSQL: ``pg_advisory_xact_lock`` per bar, in sorted order, released at commit or
    rollback. SQLite: nothing to do, the transaction already holds the database's write lock
    (``BEGIN IMMEDIATE``).
    """
    if conn.dialect.name != "postgresql":
        return
    for bar in sorted(set(bars)):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(bar)})


def status_of(r: Any) -> BarStatus:
    """The :class:`BarStatus` of one ``bar_lifecycle`` row."""
    return BarStatus(
        bar=r.bar,
        state=BarState(r.state),
        sealed_at=r.sealed_at,
        sealed_by=r.sealed_by,
        attempts=int(r.attempts or 0),
        last_error=r.last_error,
        next_retry_at=r.next_retry_at,
        settled_at=r.settled_at,
        abandoned_by=r.abandoned_by,
        abandoned_reason=r.abandoned_reason,
        lease_owner=r.lease_owner,
        lease_expires_at=r.lease_expires_at,
    )


def closed_bars(conn: Connection, bars: Iterable[str]) -> dict[str, str]:
    """Which of ``bars`` take no more intents: bar -> its state (sealed or later, or
    ``settled`` for a bar recorded before the lifecycle existed)."""
    keys = sorted(set(bars))
    if not keys:
        return {}
    life = t.bar_lifecycle
    out = {
        str(r.bar): str(r.state)
        for r in conn.execute(sa.select(life.c.bar, life.c.state).where(life.c.bar.in_(keys)))
    }
    for r in conn.execute(sa.select(t.bars.c.bar).where(t.bars.c.bar.in_(keys))):
        out.setdefault(str(r.bar), BarState.SETTLED.value)
    return out


def store_refusals(
    conn: Connection, rows: Iterable[tuple[str, str, str, Reason, str]], *, source: str
) -> None:
    """Store refused intents ``(intent_id, strategy, bar, reason, detail)``; one row per
    (intent id, bar, reason): a resubmission of a refused intent adds nothing."""
    r = t.intent_refusals
    for intent_id, strategy, bar, reason, detail in rows:
        known = conn.execute(
            sa.select(r.c.id).where(
                r.c.intent_id == intent_id, r.c.bar == bar, r.c.reason == reason.value
            )
        ).first()
        if known is not None:
            continue
        conn.execute(
            sa.insert(r).values(
                intent_id=intent_id,
                strategy=strategy,
                bar=bar,
                reason=reason.value,
                detail=detail,
                source=source[:200],
                received_at=now(),
            )
        )


def _seal(conn: Connection, bar: str, by: str) -> Any:
    """The bar's lifecycle row, inserted ``sealed`` when missing (the caller holds the lock)."""
    life = t.bar_lifecycle
    row = conn.execute(sa.select(life).where(life.c.bar == bar)).first()
    if row is not None:
        return row
    state = BarState.SEALED.value
    recorded = conn.execute(sa.select(t.bars.c.bar).where(t.bars.c.bar == bar)).first()
    if recorded is not None:  # recorded before the lifecycle existed: it is settled
        state = BarState.SETTLED.value
    conn.execute(
        sa.insert(life).values(
            bar=bar, state=state, sealed_at=now(), sealed_by=by[:200], attempts=0
        )
    )
    return conn.execute(sa.select(life).where(life.c.bar == bar)).one()


def settle_lifecycle(conn: Connection, bar: str) -> None:
    """Mark ``bar`` settled now (inside :meth:`~resources.ledger.bars.Bars.record_bar`'s
    transaction); a bar recorded without a seal gets its row, sealed by ``record_bar``."""
    lock_bars(conn, [bar])
    _seal(conn, bar, "record_bar")
    life = t.bar_lifecycle
    conn.execute(
        sa.update(life)
        .where(life.c.bar == bar)
        .values(state=BarState.SETTLED.value, settled_at=now(), next_retry_at=None)
    )


class Sealing(Database):
    """Bar seals, frozen plans and stored intent refusals (a part of ``Ledger``)."""

    def seal_bar(self, bar: Bar, *, by: str) -> BarStatus:
        """Seal ``bar`` (idempotent): the first call inserts its row ``sealed``, any later
        call returns the row as it is (whatever its state). ``by`` names the sealer."""
        with self.engine.begin() as conn:
            lock_bars(conn, [bar.key])
            return status_of(_seal(conn, bar.key, by))

    def bar_status(self, bar: Bar) -> BarStatus | None:
        """``bar``'s lifecycle row, ``None`` when it was never sealed."""
        life = t.bar_lifecycle
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(life).where(life.c.bar == bar.key)).first()
        return None if row is None else status_of(row)

    def freeze_plan(self, bar: Bar, text: str, digest: str) -> tuple[str, str]:
        """Store ``bar``'s plan (its inputs and orders as ``text``, the orders' ``digest``)
        unless one is stored; return the stored (text, digest). The first writer wins.

        A ``sealed`` bar becomes ``planned``; a bar in another state keeps it. A bar that is
        not sealed is a :class:`ValueError` (seal it first: the plan is of its sealed inbox).
        """
        life = t.bar_lifecycle
        with self.engine.begin() as conn:
            lock_bars(conn, [bar.key])
            row = conn.execute(sa.select(life).where(life.c.bar == bar.key)).first()
            if row is None:
                raise ValueError(f"bar {bar} is not sealed: seal it before freezing its plan")
            if row.plan is not None:
                return str(row.plan), str(row.plan_digest)
            values: dict[str, Any] = {"plan": text, "plan_digest": digest, "planned_at": now()}
            if row.state == BarState.SEALED.value:
                values["state"] = BarState.PLANNED.value
            conn.execute(sa.update(life).where(life.c.bar == bar.key).values(**values))
        return text, digest

    def frozen_plan(self, bar: Bar) -> tuple[str, str] | None:
        """``bar``'s stored plan (text, digest), ``None`` when none is frozen."""
        life = t.bar_lifecycle
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(life.c.plan, life.c.plan_digest).where(life.c.bar == bar.key)
            ).first()
        if row is None or row.plan is None:
            return None
        return str(row.plan), str(row.plan_digest)

    def refusals(self, bar: Bar | None = None) -> list[RowRefusal]:
        """Every stored intent refusal (of ``bar``), oldest first. ``row`` is 0: the stored
        refusal keeps the file (``source``), not the row number it had in it."""
        r = t.intent_refusals
        query = sa.select(r).order_by(r.c.id)
        if bar is not None:
            query = query.where(r.c.bar == bar.key)
        with self.engine.connect() as conn:
            return [
                RowRefusal(
                    source=row.source,
                    row=0,
                    key=row.intent_id,
                    reason=Reason(row.reason),
                    detail=row.detail,
                )
                for row in conn.execute(query)
            ]
