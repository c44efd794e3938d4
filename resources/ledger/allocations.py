"""The ledger's published allocations, the budgets a bar reads from them, and the rule events.

The rules engine publishes one allocation per (session, strategy) (SPEC §6: published at ``t``,
used from ``t + 1``) and its bench, readmit, breaker and rebalance events (SPEC §11
``events.csv``). A bar reads each strategy's budget from the latest allocation published
strictly before its session; the bar sensor reads which strategies are active from it.

Why a rerun replaces allocations but never duplicates events: a rerun of a session recomputes
the same allocation (the latest one is the truth), while an event is a fact that happened once.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import sqlalchemy as sa

from allocator.execution.records import StrategyBudget
from allocator.rebalance import AllocationRow, EventRow  # what the rule set decides
from allocator.states import published_state
from resources.ledger import schema as t
from resources.ledger.engine import Database
from resources.ledger.inbox import register_names

__all__ = ["AllocationRow", "Allocations", "EventRow"]


class Allocations(Database):
    """Published allocations, budgets and rule events (a part of ``Ledger``)."""

    def write_allocations(self, rows: Iterable[AllocationRow]) -> None:
        """Publish allocations; a (date, strategy) already published is replaced (a rerun)."""
        items = list(rows)
        with self.engine.begin() as conn:
            register_names(conn, {r.strategy for r in items})
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
            state = published_state(r.breaker_state, bool(r.benched))
            out[r.strategy] = StrategyBudget(
                capital=r.capital, max_leverage=max_leverage, state=state
            )
        return out

    def active_strategies(self) -> set[str]:
        """The strategies not benched in the latest published allocation; every registered
        strategy before the first allocation (whose intents a bar waits for)."""
        a = t.allocations
        latest = sa.select(sa.func.max(a.c.date)).scalar_subquery()
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(a.c.strategy, a.c.benched).where(a.c.date == latest))
            published = rows.all()
            if published:
                return {r.strategy for r in published if not r.benched}
            return {r[0] for r in conn.execute(sa.select(t.strategies.c.name))}

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
