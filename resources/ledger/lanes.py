"""The bar lane: open bars, failed runs and their retries, abandonment and the lane's halt.

docs/decisions/0012-live-bar-path.md, "A failed bar stops the lane": a sealed bar stays *open*
(``sealed``, ``planned`` or ``failed``) until it is ``settled`` (its fills recorded) or
``abandoned`` by an operator, and the bar sensor requests no later bar while one is open.
:meth:`Lanes.record_bar_failure` counts a failed run of a bar and schedules its retry
(``next_retry_at``); :meth:`Lanes.halt_lane` stops the lane after the last retry, with a reason,
until :meth:`Lanes.clear_lane_halt`; :meth:`Lanes.retry_bar` makes a failed bar due now and
:meth:`Lanes.abandon_bar` gives a bar up (the caller proves first that no venue holds an order
of it: ``allocator bar abandon``). Who did what and why is kept on the rows
(``abandoned_by``/``abandoned_reason``, ``cleared_by``/``clear_reason``); halts are appended,
never overwritten.

Why a part of its own rather than more of :mod:`~resources.ledger.sealing`: the seal and the
plan are the bar's inputs, written by the bar's own run; the lane is the scheduler's and the
operator's view of many bars (which is open, which is due, is the lane stopped). Both use the
same row (``bar_lifecycle``) and :func:`~resources.ledger.sealing.lock_bars`.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from allocator.execution.ledger import BarState, BarStatus, LaneHalt
from allocator.execution.records import Bar
from resources.ledger import schema as t
from resources.ledger.engine import Database, now
from resources.ledger.sealing import lock_bars, status_of

__all__ = ["BAR_LANE", "OPEN_STATES", "Lanes"]

BAR_LANE = "bar"
"""The ``lane`` column of the bar lane's halts."""

OPEN_STATES = (BarState.SEALED.value, BarState.PLANNED.value, BarState.FAILED.value)
"""The states of a sealed bar that is neither settled nor abandoned."""


def _open_row(conn: sa.engine.Connection, bar: str, verb: str) -> sa.engine.Row[object]:
    """``bar``'s lifecycle row, which must be open (the caller holds the bar's lock)."""
    life = t.bar_lifecycle
    row = conn.execute(sa.select(life).where(life.c.bar == bar)).first()
    if row is None:
        raise ValueError(f"bar {bar} is not sealed: nothing to {verb}")
    if row.state not in OPEN_STATES:
        raise ValueError(f"bar {bar} is {row.state}: nothing to {verb}")
    return row


class Lanes(Database):
    """The bar lane's open bars, failures, retries, abandonment and halt (a part of ``Ledger``)."""

    def open_bars(self) -> list[BarStatus]:
        """Every sealed bar not settled or abandoned, in bar order."""
        life = t.bar_lifecycle
        query = sa.select(life).where(life.c.state.in_(OPEN_STATES)).order_by(life.c.bar)
        with self.engine.connect() as conn:
            return [status_of(r) for r in conn.execute(query)]

    def record_bar_failure(self, bar: Bar, error: str, *, retry_at: datetime) -> BarStatus:
        """Count a failed run of ``bar``: ``attempts`` + 1, state ``failed``, ``last_error`` and
        ``next_retry_at`` = ``retry_at``. The bar must be open (a :class:`ValueError`
        otherwise: a settled or abandoned bar has nothing to retry)."""
        life = t.bar_lifecycle
        with self.engine.begin() as conn:
            lock_bars(conn, [bar.key])
            row = _open_row(conn, bar.key, "fail")
            conn.execute(
                sa.update(life)
                .where(life.c.bar == bar.key)
                .values(
                    state=BarState.FAILED.value,
                    attempts=int(row.attempts or 0) + 1,
                    last_error=error,
                    next_retry_at=retry_at,
                )
            )
            return status_of(conn.execute(sa.select(life).where(life.c.bar == bar.key)).one())

    def retry_bar(self, bar: Bar) -> BarStatus:
        """Make ``bar`` due now (its ``next_retry_at`` set to now); ``attempts`` is kept. The
        bar must be open (a :class:`ValueError` otherwise)."""
        life = t.bar_lifecycle
        with self.engine.begin() as conn:
            lock_bars(conn, [bar.key])
            _open_row(conn, bar.key, "retry")
            conn.execute(sa.update(life).where(life.c.bar == bar.key).values(next_retry_at=now()))
            return status_of(conn.execute(sa.select(life).where(life.c.bar == bar.key)).one())

    def abandon_bar(self, bar: Bar, *, by: str, reason: str) -> BarStatus:
        """Give ``bar`` up: state ``abandoned`` (final), with who and why; no retry is due.

        The caller must have proven that no venue holds an order of the bar (``allocator bar
        abandon`` does). The bar must be open (a :class:`ValueError` otherwise); ``by`` and
        ``reason`` must not be empty.
        """
        if not by.strip() or not reason.strip():
            raise ValueError("abandoning a bar needs who (by) and why (reason)")
        life = t.bar_lifecycle
        with self.engine.begin() as conn:
            lock_bars(conn, [bar.key])
            _open_row(conn, bar.key, "abandon")
            conn.execute(
                sa.update(life)
                .where(life.c.bar == bar.key)
                .values(
                    state=BarState.ABANDONED.value,
                    abandoned_by=by[:200],
                    abandoned_reason=reason,
                    next_retry_at=None,
                )
            )
            return status_of(conn.execute(sa.select(life).where(life.c.bar == bar.key)).one())

    def lane_halt(self) -> LaneHalt | None:
        """The bar lane's halt in force (the latest one not cleared); ``None`` when it runs."""
        h = t.lane_halts
        query = (
            sa.select(h)
            .where(h.c.lane == BAR_LANE, h.c.cleared_at.is_(None))
            .order_by(h.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return LaneHalt(reason=row.reason, bar=row.bar, halted_at=row.halted_at)

    def halt_lane(self, reason: str, *, bar: Bar | None = None) -> LaneHalt:
        """Halt the bar lane with ``reason`` (naming ``bar`` when given) and return the halt.

        Idempotent while halted: the halt in force is returned unchanged.
        """
        if not reason.strip():
            raise ValueError("a lane halt needs a reason")
        h = t.lane_halts
        with self.engine.begin() as conn:
            lock_bars(conn, [f"lane:{BAR_LANE}"])
            row = conn.execute(
                sa.select(h)
                .where(h.c.lane == BAR_LANE, h.c.cleared_at.is_(None))
                .order_by(h.c.id.desc())
                .limit(1)
            ).first()
            if row is not None:
                return LaneHalt(reason=row.reason, bar=row.bar, halted_at=row.halted_at)
            at = now()
            key = None if bar is None else bar.key
            conn.execute(sa.insert(h).values(lane=BAR_LANE, bar=key, halted_at=at, reason=reason))
        return LaneHalt(reason=reason, bar=key, halted_at=at)

    def clear_lane_halt(self, *, by: str, reason: str) -> bool:
        """Clear the bar lane's halt, recording who and why; ``False`` when it was not halted."""
        if not by.strip():
            raise ValueError("clearing the lane halt needs who (by)")
        h = t.lane_halts
        with self.engine.begin() as conn:
            lock_bars(conn, [f"lane:{BAR_LANE}"])
            done = conn.execute(
                sa.update(h)
                .where(h.c.lane == BAR_LANE, h.c.cleared_at.is_(None))
                .values(cleared_at=now(), cleared_by=by[:200], clear_reason=reason)
            )
        return bool(done.rowcount)
