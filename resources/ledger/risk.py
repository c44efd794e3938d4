"""The risk stage's record: the trading-state journal, equity marks, prices, denials, gates.

docs/spec-12-risk.md (the project's §12). :meth:`Risk.set_trading_state` appends one row of
the trading-state journal (who put the book, or a venue, in ``active``, ``reducing`` or
``halted``, and why: an operator's command or the kill switch); :meth:`Risk.trading_status` is
the state in force (the latest row of each scope). :meth:`Risk.record_mark` marks the book's
equity when a bar is planned, with its peak and its session's start since the book was last
resumed, for the kill switch. :meth:`Risk.record_prices` keeps a bar's reference prices (the
price collar's previous prices). :meth:`Risk.record_risk_denials` stores every intent the risk
stage cut or refused, with the limit and the value; :meth:`Risk.risk_denials` is how everyone
else reads them (the dashboard, ``allocator book --json``, the gateway).
:meth:`Risk.record_send_gate` keeps the stricter states a bar was sent under when an operator
set them after its plan was frozen.

Why a part of its own: the journal is the operator's and the kill switch's, read by every bar
and by the alert sensor; none of it is a bar's own record (``bars``) or its plan (``sealing``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from allocator.execution.orders import Venue
from allocator.execution.reasons import Reason
from allocator.execution.records import Bar, GatedIntent, parse_bar
from allocator.execution.risk import (
    BOOK,
    RiskDenial,
    RiskMark,
    SendGate,
    StateChange,
    TradingStatus,
)
from allocator.states import TradingState
from resources.ledger import schema as t
from resources.ledger.engine import Database, chunks, insert_ignore, now
from resources.ledger.sealing import lock_bars

__all__ = ["Risk"]

_STATE_LOCK = "risk:states"


def _change(r: Any) -> StateChange:
    return StateChange(
        id=int(r.id),
        scope=str(r.scope),
        state=TradingState(r.state),
        by=str(r.set_by),
        reason=str(r.reason),
        source=str(r.source),
        bar=r.bar,
        at=r.at,
    )


def _denial(r: Any) -> RiskDenial:
    return RiskDenial(
        id=int(r.id),
        bar=str(r.bar),
        stage=str(r.stage),
        intent_id=str(r.intent_id),
        strategy=str(r.strategy),
        symbol=str(r.symbol),
        reason=Reason(r.reason),
        requested_qty=r.requested_qty,
        accepted_qty=r.accepted_qty,
        limit=r.limit_value,
        value=r.observed_value,
        detail=str(r.detail),
        recorded_at=r.recorded_at,
    )


class Risk(Database):
    """The trading-state journal, marks, prices, denials and send gates (a part of ``Ledger``)."""

    # -- the trading state ---------------------------------------------------------------------

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
        """Journal that ``by`` put the book (or ``venue``) in ``state`` for ``reason``.

        Appended, never overwritten: every command is a row, even one that repeats the state
        in force. ``by`` and ``reason`` must not be empty.
        """
        if not by.strip() or not reason.strip():
            raise ValueError("a trading-state change needs who (by) and why (reason)")
        scope = BOOK if venue is None else Venue(venue).value
        row = {
            "scope": scope,
            "state": TradingState(state).value,
            "set_by": by[:200],
            "reason": reason,
            "source": source[:32],
            "bar": None if bar is None else bar.key,
            "at": now(),
        }
        s = t.risk_states
        with self.engine.begin() as conn:
            lock_bars(conn, [_STATE_LOCK])
            new_id = conn.execute(sa.insert(s).values(**row)).inserted_primary_key
            stored = conn.execute(sa.select(s).where(s.c.id == new_id[0])).one()
        return _change(stored)

    def trading_status(self) -> TradingStatus:
        """The states in force: the latest journal row of the book and of each venue."""
        s = t.risk_states
        latest = sa.select(sa.func.max(s.c.id)).group_by(s.c.scope).scalar_subquery()
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(s).where(s.c.id.in_(latest))).all()
        return TradingStatus(changes={str(r.scope): _change(r) for r in rows})

    def state_changes(self, *, after: int = 0, limit: int | None = None) -> list[StateChange]:
        """The journal's rows with an id above ``after``, oldest first (at most ``limit``)."""
        s = t.risk_states
        query = sa.select(s).where(s.c.id > after).order_by(s.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_change(r) for r in conn.execute(query)]

    # -- the kill switch's marks ---------------------------------------------------------------

    def record_mark(self, bar: Bar, equity: Decimal) -> RiskMark:
        """Mark the book's ``equity`` at ``bar`` (once: a bar marked already keeps its mark).

        The peak and the session's start are taken over the marks since the book's last
        resume (the epoch), the session being the bar's UTC date.
        """
        m = t.risk_marks
        s = t.risk_states
        session = bar.key[:10]
        with self.engine.begin() as conn:
            lock_bars(conn, [bar.key])
            known = conn.execute(sa.select(m).where(m.c.bar == bar.key)).first()
            if known is None:
                epoch = conn.execute(
                    sa.select(sa.func.max(s.c.id)).where(
                        s.c.scope == BOOK, s.c.state == TradingState.ACTIVE.value
                    )
                ).scalar()
                epoch = int(epoch or 0)
                earlier = conn.execute(
                    sa.select(m.c.bar, m.c.session, m.c.equity)
                    .where(m.c.epoch == epoch, m.c.bar < bar.key)
                    .order_by(m.c.bar)
                ).all()
                peak = max([equity, *(r.equity for r in earlier)])
                before = [r for r in earlier if r.session < session]
                today = [r for r in earlier if r.session == session]
                start = before[-1].equity if before else (today[0].equity if today else equity)
                conn.execute(
                    sa.insert(m).values(
                        bar=bar.key,
                        session=session,
                        epoch=epoch,
                        equity=equity,
                        peak=peak,
                        session_start=start,
                        marked_at=now(),
                    )
                )
                known = conn.execute(sa.select(m).where(m.c.bar == bar.key)).one()
        return RiskMark(
            bar=known.bar,
            session=known.session,
            epoch=int(known.epoch),
            equity=known.equity,
            peak=known.peak,
            session_start=known.session_start,
        )

    def risk_marks(self) -> list[RiskMark]:
        """Every mark, in bar order."""
        m = t.risk_marks
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(m).order_by(m.c.bar)).all()
        return [
            RiskMark(
                bar=r.bar,
                session=r.session,
                epoch=int(r.epoch),
                equity=r.equity,
                peak=r.peak,
                session_start=r.session_start,
            )
            for r in rows
        ]

    # -- prices --------------------------------------------------------------------------------

    def record_prices(self, bar: Bar, prices: Mapping[str, Decimal]) -> None:
        """Keep ``bar``'s reference prices (a symbol stored already keeps its first price)."""
        rows = [{"bar": bar.key, "symbol": s, "price": p} for s, p in sorted(prices.items())]
        with self.engine.begin() as conn:
            insert_ignore(conn, t.risk_prices, rows, ["bar", "symbol"])

    def has_prices(self, bar: Bar) -> bool:
        """Whether any reference price of ``bar`` is kept."""
        p = t.risk_prices
        with self.engine.connect() as conn:
            return (
                conn.execute(sa.select(p.c.bar).where(p.c.bar == bar.key).limit(1)).first()
                is not None
            )

    def previous_prices(self, bar: Bar, symbols: Iterable[str]) -> dict[str, Decimal]:
        """Each symbol's price in the latest bar before ``bar`` that kept one."""
        p = t.risk_prices
        wanted = sorted(set(symbols))
        out: dict[str, Decimal] = {}
        with self.engine.connect() as conn:
            for part in chunks(wanted, 500):
                latest = (
                    sa.select(p.c.symbol, sa.func.max(p.c.bar).label("bar"))
                    .where(p.c.symbol.in_(part), p.c.bar < bar.key)
                    .group_by(p.c.symbol)
                    .subquery()
                )
                query = sa.select(p.c.symbol, p.c.price).join(
                    latest, sa.and_(p.c.symbol == latest.c.symbol, p.c.bar == latest.c.bar)
                )
                out.update({str(r.symbol): r.price for r in conn.execute(query)})
        return out

    # -- the venues' recent orders (the rate limits) -----------------------------------------

    def recent_venue_orders(
        self, bar: Bar, windows_s: Sequence[int]
    ) -> dict[Venue, tuple[int, ...]]:
        """Orders journaled for each venue by earlier bars within each window before ``bar``.

        A bar counts in a window of ``w`` seconds when its end is in (end − w, end] of
        ``bar``'s end (bar time, not the wall clock); ``bar`` itself is not counted.
        """
        end = bar.end()
        widest = max(windows_s)
        low = (end - timedelta(seconds=widest) - timedelta(days=1)).date().isoformat()
        o = t.orders
        query = (
            sa.select(o.c.bar, o.c.venue, sa.func.count().label("n"))
            .where(o.c.bar >= low, o.c.bar != bar.key)
            .group_by(o.c.bar, o.c.venue)
        )
        counts: dict[Venue, list[int]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        for r in rows:
            try:
                other = parse_bar(str(r.bar)).end()
                venue = Venue(r.venue)
            except ValueError:  # a manual order's "bar"
                continue
            for k, w in enumerate(windows_s):
                if end - timedelta(seconds=w) < other <= end:
                    counts.setdefault(venue, [0] * len(windows_s))[k] += int(r.n)
        return {v: tuple(n) for v, n in counts.items()}

    # -- denials -------------------------------------------------------------------------------

    def record_risk_denials(self, bar: Bar, stage: str, denials: Sequence[GatedIntent]) -> None:
        """Store the intents the risk stage cut or refused at ``stage`` (``plan`` or ``send``).

        Once per (bar, stage): a later call for a bar whose ``stage`` rows are there adds
        nothing (the plan, hence its denials, is the same every time it is rebuilt).
        """
        if stage not in ("plan", "send"):
            raise ValueError(f"stage must be plan or send, got {stage!r}")
        if not denials:
            return
        d = t.risk_denials
        at = now()
        rows = [
            {
                "bar": bar.key,
                "stage": stage,
                "intent_id": g.intent_id,
                "strategy": g.strategy,
                "symbol": g.symbol,
                "reason": str(g.reason),
                "requested_qty": g.requested_qty,
                "accepted_qty": g.accepted_qty,
                "limit_value": g.limit,
                "observed_value": g.value,
                "detail": g.detail,
                "recorded_at": at,
            }
            for g in denials
        ]
        with self.engine.begin() as conn:
            lock_bars(conn, [bar.key])
            known = conn.execute(
                sa.select(d.c.id).where(d.c.bar == bar.key, d.c.stage == stage).limit(1)
            ).first()
            if known is None:
                conn.execute(sa.insert(d), rows)

    def risk_denials(self, bar: Bar | None = None, *, limit: int | None = None) -> list[RiskDenial]:
        """The stored denials: of ``bar`` in the order stored, else the latest ``limit`` of all
        bars, newest first (every one when ``limit`` is ``None``)."""
        d = t.risk_denials
        if bar is not None:
            query = sa.select(d).where(d.c.bar == bar.key).order_by(d.c.id)
        else:
            query = sa.select(d).order_by(d.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_denial(r) for r in conn.execute(query)]

    def risk_denial_counts(self) -> dict[str, int]:
        """How many denials each reason has, over every bar."""
        d = t.risk_denials
        query = sa.select(d.c.reason, sa.func.count()).group_by(d.c.reason)
        with self.engine.connect() as conn:
            return {str(r[0]): int(r[1]) for r in conn.execute(query)}

    # -- the send-time gate --------------------------------------------------------------------

    def send_gate(self, bar: Bar) -> SendGate | None:
        """The stricter states ``bar`` is sent under, ``None`` when its frozen ones stand."""
        g = t.risk_send_gates
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(g).where(g.c.bar == bar.key)).first()
        return None if row is None else _gate(row)

    def record_send_gate(
        self,
        bar: Bar,
        *,
        trading_state: TradingState,
        venue_states: Mapping[Venue, TradingState],
        state_detail: str,
        venue_details: Mapping[Venue, str],
    ) -> SendGate:
        """Store (or make stricter) the states ``bar`` is sent under; return what is stored."""
        g = t.risk_send_gates
        values = {
            "trading_state": trading_state.value,
            "venue_states": json.dumps({v.value: s.value for v, s in sorted(venue_states.items())}),
            "detail": json.dumps(
                {BOOK: state_detail, **{v.value: x for v, x in sorted(venue_details.items())}}
            ),
            "at": now(),
        }
        with self.engine.begin() as conn:
            lock_bars(conn, [bar.key])
            known = conn.execute(sa.select(g.c.bar).where(g.c.bar == bar.key)).first()
            if known is None:
                conn.execute(sa.insert(g).values(bar=bar.key, **values))
            else:
                conn.execute(sa.update(g).where(g.c.bar == bar.key).values(**values))
            row = conn.execute(sa.select(g).where(g.c.bar == bar.key)).one()
        return _gate(row)


def _gate(row: Any) -> SendGate:
    detail = json.loads(row.detail)
    return SendGate(
        bar=str(row.bar),
        trading_state=TradingState(row.trading_state),
        venue_states={Venue(v): TradingState(s) for v, s in json.loads(row.venue_states).items()},
        state_detail=str(detail.get(BOOK, "")),
        venue_details={Venue(k): str(v) for k, v in detail.items() if k != BOOK},
        at=row.at,
    )
