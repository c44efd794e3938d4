"""The strategy gateway's part of the ledger: tokens, the returns policy and what a bot may read.

docs/decisions/0015-strategy-gateway.md. A token is ``secrets.token_urlsafe(32)`` (256 bits);
only its SHA-256 is stored (``gateway_tokens``), so the ledger never holds a usable token and a
stolen copy of it grants nothing. :meth:`Gateway.token_owner` finds the row by the hash and
compares the hashes again with :func:`hmac.compare_digest`. A strategy has at most one live
token (``rotate`` revokes the old one in the same transaction); the operator's tokens are rows
of their own ``kind`` and never name a strategy.

Returns through the gateway (:meth:`Gateway.submit_strategy_returns`) follow stricter rules
than the operator's ``allocator returns submit``: a session on or before the latest published
allocation is ``settled`` (the rules engine has already used it), a date before the strategy's
last stored return is ``backdated``, and a correction is only taken from the operator's token
and is journaled (``return_corrections``) with who made it and why.

The read methods give one strategy's own rows only: every query filters on the strategy the
token decided, never on a name from the request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from allocator.execution.inbox import ReturnRow, RowRefusal
from allocator.execution.reasons import Reason
from allocator.execution.records import Bar, Intent
from resources.ledger import schema as t
from resources.ledger.engine import Database, now
from resources.ledger.inbox import SubmitReport, _intent_of, register_names, store_returns
from resources.ledger.sealing import lock_bars

__all__ = [
    "OPERATOR",
    "STRATEGY",
    "Gateway",
    "GatewayRefusal",
    "StrategyEvent",
    "TokenOwner",
    "hash_token",
    "new_token",
]

STRATEGY = "strategy"
OPERATOR = "operator"
TOKEN_BYTES = 32


def new_token() -> str:
    """A fresh bearer token: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The stored form of ``token``: its SHA-256 as 64 hex digits."""
    return hashlib.sha256(token.encode("utf-8", errors="surrogateescape")).hexdigest()


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenOwner:
    """Whom a live token belongs to: a strategy (``strategy`` set) or the operator."""

    kind: str
    strategy: str | None
    label: str

    @property
    def is_operator(self) -> bool:
        return self.kind == OPERATOR


@dataclass(frozen=True, kw_only=True, slots=True)
class GatewayRefusal:
    """One stored refusal of a strategy's intent: ``late`` at the inbox (``id`` > 0, from
    ``intent_refusals``) or a gating cut of a settled bar (``id`` 0)."""

    id: int
    intent_id: str
    bar: str
    reason: str
    detail: str
    requested_qty: Decimal | None = None
    accepted_qty: Decimal | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StrategyEvent:
    """A rule event of one strategy (``events`` row): bench, readmit or breaker."""

    id: int
    date: str
    kind: str
    detail: str


def _issue(conn: Connection, kind: str, strategy: str | None, label: str) -> str:
    token = new_token()
    conn.execute(
        sa.insert(t.gateway_tokens).values(
            kind=kind,
            strategy=strategy,
            label=label[:200],
            token_hash=hash_token(token),
            created_at=now(),
        )
    )
    return token


def _revoke(conn: Connection, *where: Any) -> int:
    g = t.gateway_tokens
    result = conn.execute(
        sa.update(g).where(g.c.revoked_at.is_(None), *where).values(revoked_at=now())
    )
    return int(result.rowcount or 0)


class Gateway(Database):
    """Gateway tokens, the gateway's returns policy and per-strategy reads (a part of
    ``Ledger``)."""

    # -- tokens -------------------------------------------------------------------------------

    def add_strategy(self, name: str) -> str:
        """Register ``name`` (when new) and issue its token; return the token (shown once).
        A strategy that already has a live token is a :class:`ValueError` (rotate it)."""
        g = t.gateway_tokens
        with self.engine.begin() as conn:
            live = conn.execute(
                sa.select(g.c.id).where(
                    g.c.kind == STRATEGY, g.c.strategy == name, g.c.revoked_at.is_(None)
                )
            ).first()
            if live is not None:
                raise ValueError(
                    f"strategy {name!r} already has a token: `allocator strategy rotate` it"
                )
            register_names(conn, [name])
            return _issue(conn, STRATEGY, name, name)

    def rotate_token(self, name: str) -> str:
        """Revoke ``name``'s live token and issue a new one (one transaction); return it.
        An unregistered strategy is a :class:`ValueError`."""
        g = t.gateway_tokens
        with self.engine.begin() as conn:
            known = conn.execute(
                sa.select(t.strategies.c.name).where(t.strategies.c.name == name)
            ).first()
            if known is None:
                raise ValueError(f"strategy {name!r} is not registered: `allocator strategy add`")
            _revoke(conn, g.c.kind == STRATEGY, g.c.strategy == name)
            return _issue(conn, STRATEGY, name, name)

    def revoke_tokens(self, name: str) -> int:
        """Revoke every live token of strategy ``name``; return how many were revoked."""
        g = t.gateway_tokens
        with self.engine.begin() as conn:
            return _revoke(conn, g.c.kind == STRATEGY, g.c.strategy == name)

    def issue_operator_token(self, label: str) -> str:
        """Issue an operator token held by ``label`` (who signs corrections), revoking that
        holder's earlier one; return it (shown once)."""
        g = t.gateway_tokens
        with self.engine.begin() as conn:
            _revoke(conn, g.c.kind == OPERATOR, g.c.label == label[:200])
            return _issue(conn, OPERATOR, None, label)

    def token_owner(self, token: str) -> TokenOwner | None:
        """The owner of a live ``token``; ``None`` for an unknown or revoked one."""
        digest = hash_token(token)
        g = t.gateway_tokens
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(g.c.kind, g.c.strategy, g.c.label, g.c.token_hash).where(
                    g.c.token_hash == digest, g.c.revoked_at.is_(None)
                )
            ).first()
        if row is None or not hmac.compare_digest(str(row.token_hash), digest):
            return None
        return TokenOwner(kind=row.kind, strategy=row.strategy, label=row.label)

    def token_holders(self) -> list[tuple[str, str | None, str, datetime, datetime | None]]:
        """Every token row as (kind, strategy, label, created, revoked): never the hash."""
        g = t.gateway_tokens
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    g.c.kind, g.c.strategy, g.c.label, g.c.created_at, g.c.revoked_at
                ).order_by(g.c.id)
            ).all()
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    # -- returns ------------------------------------------------------------------------------

    def submit_strategy_returns(
        self,
        rows: Sequence[ReturnRow],
        *,
        correction: bool,
        by: str,
        why: str,
        source: str = "gateway",
    ) -> SubmitReport:
        """Store returns received by the gateway (see the module doc for the rules).

        Without ``correction``: a date on or before the latest published allocation is
        refused ``settled``, a date before the strategy's last stored return (or an earlier
        row of the same request) ``backdated``,
        and the ledger's own rules follow (``restated`` for another value of a stored date).
        With ``correction`` (the caller has checked the operator's token) every row restates
        its date, journaled with ``by`` and ``why``. One transaction, serialised per strategy.
        """
        names = sorted({r.strategy for r in rows})
        r_ = t.daily_returns
        with self.engine.begin() as conn:
            lock_bars(conn, [f"returns/{n}" for n in names])
            if correction:
                return store_returns(conn, rows, correction=True, source=source, by=by, why=why)
            settled = conn.execute(sa.select(sa.func.max(t.allocations.c.date))).scalar()
            last = dict(
                conn.execute(
                    sa.select(r_.c.strategy, sa.func.max(r_.c.date))
                    .where(r_.c.strategy.in_(names))
                    .group_by(r_.c.strategy)
                ).all()
            )
            refused: list[RowRefusal] = []
            kept: list[ReturnRow] = []
            numbers: list[int] = []
            for number, row in enumerate(rows, start=1):
                key = f"{row.date}/{row.strategy}"
                latest = last.get(row.strategy)
                if settled is not None and row.date <= settled:
                    detail = (
                        f"session {row.date} is settled: allocations are published to {settled}"
                    )
                    refused.append(
                        RowRefusal(
                            source=source, row=number, key=key, reason=Reason.SETTLED, detail=detail
                        )
                    )
                elif latest is not None and row.date < latest:
                    detail = f"{row.date} is before this strategy's last stored return ({latest})"
                    refused.append(
                        RowRefusal(
                            source=source,
                            row=number,
                            key=key,
                            reason=Reason.BACKDATED,
                            detail=detail,
                        )
                    )
                else:
                    kept.append(row)
                    numbers.append(number)
                    last[row.strategy] = max(latest or row.date, row.date)
            report = store_returns(conn, kept, correction=False, source=source, by=by, why=why)
        # the ledger numbers the rows it was given: give them back their request's numbers
        stored = [
            RowRefusal(
                source=x.source,
                row=numbers[x.row - 1],
                key=x.key,
                reason=x.reason,
                detail=x.detail,
            )
            for x in report.refused
        ]
        return SubmitReport(
            accepted=report.accepted,
            unchanged=report.unchanged,
            refused=tuple(sorted([*refused, *stored], key=lambda x: x.row)),
        )

    def corrections(self, strategy: str | None = None) -> list[dict[str, Any]]:
        """The journal of return corrections (oldest first)."""
        c = t.return_corrections
        query = sa.select(c).order_by(c.c.id)
        if strategy is not None:
            query = query.where(c.c.strategy == strategy)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    # -- what one strategy may read -------------------------------------------------------------

    def latest_allocation(self, strategy: str) -> Any | None:
        """``strategy``'s row of the latest published allocation (``None``: none yet)."""
        a = t.allocations
        with self.engine.connect() as conn:
            latest = conn.execute(sa.select(sa.func.max(a.c.date))).scalar()
            if latest is None:
                return None
            return conn.execute(
                sa.select(a).where(a.c.date == latest, a.c.strategy == strategy)
            ).first()

    def last_rebalance(self) -> str | None:
        """The session of the latest ``rebalance`` event (a recompute of the base weights)."""
        e = t.events
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(sa.func.max(e.c.date)).where(e.c.kind == "rebalance")
            ).scalar()
        return None if found is None else str(found)

    def strategy_positions(self, strategy: str) -> tuple[dict[str, Decimal], Decimal]:
        """``strategy``'s virtual positions (zeros omitted) and its cash."""
        p, c = t.positions, t.cash
        with self.engine.connect() as conn:
            held = {
                r.symbol: r.qty
                for r in conn.execute(sa.select(p).where(p.c.strategy == strategy))
                if r.qty != 0
            }
            cash = conn.execute(sa.select(c.c.amount).where(c.c.strategy == strategy)).scalar()
        return held, cash if cash is not None else Decimal(0)

    def last_reference_prices(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        """The latest reference price the journal planned each of ``symbols`` with (by the
        order's bar), else the latest virtual fill price; a symbol never priced is absent."""
        o, v = t.orders, t.virtual_fills
        out: dict[str, Decimal] = {}
        if not symbols:
            return out
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(o.c.symbol, o.c.bar, o.c.reference_price)
                .where(o.c.symbol.in_(sorted(symbols)), o.c.reference_price.is_not(None))
                .order_by(o.c.bar)
            )
            for r in rows:
                out[r.symbol] = r.reference_price
            missing = sorted(set(symbols) - set(out))
            if missing:
                for r in conn.execute(
                    sa.select(v.c.symbol, v.c.price)
                    .where(v.c.symbol.in_(missing))
                    .order_by(v.c.bar)
                ):
                    out[r.symbol] = r.price
        return out

    def strategy_fills(self, strategy: str, since: str = "", bar: Bar | None = None) -> list[Any]:
        """``strategy``'s virtual fills of the bars after ``since`` (of ``bar``), bar order."""
        v = t.virtual_fills
        query = (
            sa.select(v)
            .where(v.c.strategy == strategy, v.c.bar > since)
            .order_by(v.c.bar, v.c.symbol, v.c.internal)
        )
        if bar is not None:
            query = query.where(v.c.bar == bar.key)
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def strategy_intents(self, strategy: str, bar: Bar) -> list[Intent]:
        i = t.intents
        query = (
            sa.select(i).where(i.c.strategy == strategy, i.c.bar == bar.key).order_by(i.c.intent_id)
        )
        with self.engine.connect() as conn:
            return [_intent_of(r) for r in conn.execute(query)]

    def strategy_refusals(
        self, strategy: str, *, bar: Bar | None = None, after_id: int = 0
    ) -> list[GatewayRefusal]:
        """``strategy``'s intents refused at the inbox (``late``) with an id above
        ``after_id`` (of ``bar``), oldest first."""
        r = t.intent_refusals
        query = sa.select(r).where(r.c.strategy == strategy, r.c.id > after_id).order_by(r.c.id)
        if bar is not None:
            query = query.where(r.c.bar == bar.key)
        with self.engine.connect() as conn:
            return [
                GatewayRefusal(
                    id=int(x.id), intent_id=x.intent_id, bar=x.bar, reason=x.reason, detail=x.detail
                )
                for x in conn.execute(query)
            ]

    def strategy_cuts(self, strategy: str, bar: Bar) -> list[GatewayRefusal]:
        """``strategy``'s intents that gating cut or refused in the settled ``bar``."""
        g = t.gating
        query = (
            sa.select(g)
            .where(g.c.strategy == strategy, g.c.bar == bar.key, g.c.reason.is_not(None))
            .order_by(g.c.intent_id)
        )
        with self.engine.connect() as conn:
            return [
                GatewayRefusal(
                    id=0,
                    intent_id=x.intent_id,
                    bar=x.bar,
                    reason=x.reason,
                    detail=x.detail,
                    requested_qty=x.requested_qty,
                    accepted_qty=x.accepted_qty,
                )
                for x in conn.execute(query)
            ]

    def strategy_events(self, strategy: str, after_id: int = 0) -> list[StrategyEvent]:
        """``strategy``'s rule events (bench, readmit, breaker) with an id above ``after_id``."""
        e = t.events
        query = sa.select(e).where(e.c.strategy == strategy, e.c.id > after_id).order_by(e.c.id)
        with self.engine.connect() as conn:
            return [
                StrategyEvent(id=int(x.id), date=x.date, kind=x.kind, detail=x.detail)
                for x in conn.execute(query)
            ]

    def bars_recorded_after(self, after: str) -> list[str]:
        """Recorded (settled) bars with a key after ``after``, in bar order."""
        b = t.bars
        with self.engine.connect() as conn:
            return [
                str(r[0])
                for r in conn.execute(sa.select(b.c.bar).where(b.c.bar > after).order_by(b.c.bar))
            ]

    def event_cursor(self) -> tuple[str, int, int]:
        """Where an event stream starts now: (last recorded bar, last refusal id, last event
        id)."""
        with self.engine.connect() as conn:
            bar = conn.execute(sa.select(sa.func.max(t.bars.c.bar))).scalar()
            refusal = conn.execute(sa.select(sa.func.max(t.intent_refusals.c.id))).scalar()
            event = conn.execute(sa.select(sa.func.max(t.events.c.id))).scalar()
        return (str(bar or ""), int(refusal or 0), int(event or 0))
