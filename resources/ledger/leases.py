"""Who runs a bar: the lease on its lifecycle row (docs/decisions/0016-ccxt-fees-and-bar-leases.md).

:meth:`Leases.claim_bar` takes the lease of a sealed bar with one conditional ``UPDATE``: it
changes the row only when no one holds the lease, the caller already does, the lease expired,
or its holder is the one the caller proved gone. On PostgreSQL a concurrent ``UPDATE`` of the
row waits for the first one's commit and then re-evaluates the condition against the new owner;
on SQLite writers are serialised (``BEGIN IMMEDIATE``). Either way two claimers never both win.
:meth:`Leases.renew_bar_lease` (the holder's heartbeat) and :meth:`Leases.release_bar_lease`
change the row only while the caller holds it. When and whom to claim is decided by
:mod:`allocator.execution.lease`.

Why on ``bar_lifecycle`` rather than an advisory lock: the lease must outlive a connection
(a runner's process holds it across many transactions and threads) and be readable by the bar
sensor, which skips a bar a live owner runs.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from allocator.execution.records import Bar
from resources.ledger import schema as t
from resources.ledger.engine import Database

__all__ = ["Leases"]


class Leases(Database):
    """Bar leases (a part of ``Ledger``)."""

    def claim_bar(
        self,
        bar: Bar,
        owner: str,
        *,
        now: datetime,
        until: datetime,
        replacing: str | None = None,
    ) -> bool:
        """Take ``bar``'s lease for ``owner`` until ``until`` (see the module doc); ``True``
        when ``owner`` holds it now. A bar that is not sealed is a :class:`ValueError`."""
        life = t.bar_lifecycle
        free = sa.or_(
            life.c.lease_owner.is_(None),
            life.c.lease_owner == owner,
            life.c.lease_expires_at.is_(None),
            life.c.lease_expires_at < now,
        )
        if replacing is not None:
            free = sa.or_(free, life.c.lease_owner == replacing)
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(life)
                .where(life.c.bar == bar.key, free)
                .values(lease_owner=owner[:200], lease_expires_at=until)
            )
            if done.rowcount == 1:
                return True
            found = conn.execute(sa.select(life.c.bar).where(life.c.bar == bar.key)).first()
        if found is None:
            raise ValueError(f"bar {bar} is not sealed: seal it before running it")
        return False

    def renew_bar_lease(self, bar: Bar, owner: str, *, until: datetime) -> bool:
        """Extend ``owner``'s lease of ``bar`` to ``until``; ``False`` when it is not theirs."""
        life = t.bar_lifecycle
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(life)
                .where(life.c.bar == bar.key, life.c.lease_owner == owner[:200])
                .values(lease_expires_at=until)
            )
        return done.rowcount == 1

    def release_bar_lease(self, bar: Bar, owner: str) -> bool:
        """Give ``owner``'s lease of ``bar`` up; ``False`` when it was not theirs."""
        life = t.bar_lifecycle
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(life)
                .where(life.c.bar == bar.key, life.c.lease_owner == owner[:200])
                .values(lease_owner=None, lease_expires_at=None)
            )
        return done.rowcount == 1
