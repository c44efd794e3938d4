"""The ledger's record of every settled bar and the running books it adds up.

:meth:`Bars.record_bar` writes one bar (SPEC §7-§9) in one transaction: every intent's gating
outcome, the broker's fills (deduplicated by the venue's fill id), the strategies' virtual
fills, their running positions and cash, the netting savings, and the bar marked done (a second
recorder of the same bar fails on that row and rolls back). The reads give a bar its starting
positions and the dashboard its history.

Why positions and cash are stored running totals rather than summed from the fills on every
read: a bar reads the positions before it plans, on the hot path, and the sum is exact either
way (decimals added under :data:`allocator.execution.records.exact`, which raises rather than
rounds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from allocator.execution.ledger import SettledBar
from allocator.execution.orders import BrokerFill, BrokerOrder
from allocator.execution.reasons import Reason
from allocator.execution.records import Bar, GatedIntent, VirtualFill, exact
from resources.ledger import schema as t
from resources.ledger.engine import Database, now
from resources.ledger.journal import broker_fill_of, journal_fills, venue_of_order
from resources.ledger.sealing import lock_bars, settle_lifecycle

__all__ = ["BarSavings", "Bars"]


@dataclass(frozen=True, kw_only=True, slots=True)
class BarSavings:
    """A bar's netting savings (SPEC §7): what the accepted intents ``would_pay`` in fees as
    separate orders, the ``fee_paid`` by the net orders, and the difference (quote currency)."""

    would_pay: Decimal
    fee_paid: Decimal
    savings: Decimal


class Bars(Database):
    """Recorded bars, fills, gating, positions, cash and savings (a part of ``Ledger``)."""

    # -- one bar (allocator.execution.ledger.Ledger) ------------------------------------------

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

    def record_bar(
        self, bar: Bar, outcome: SettledBar, broker_orders: Sequence[BrokerOrder]
    ) -> None:
        """Record the settled bar in one transaction (see the module doc).

        The fills of ``broker_orders`` not journaled yet are journaled first; then every
        journaled fill of the bar's orders not settled yet is marked settled by ``bar``
        (``broker_fills.settled_bar``), and the bar's lifecycle row becomes ``settled``.
        """
        venue_of = {o.client_order_id: o for o in broker_orders}
        with self.engine.begin() as conn:
            lock_bars(conn, [bar.key])  # serialised with the inbox and the seal
            # The bar row first: a second recorder of the same bar fails here and rolls back.
            conn.execute(sa.insert(t.bars), [{"bar": bar.key, "recorded_at": now()}])
            _write_gating(conn, bar, outcome.gated)
            for o in venue_of.values():
                if o.fills:
                    journal_fills(conn, venue_of_order(conn, o.client_order_id), o.fills)
            f = t.broker_fills
            bar_orders = sa.select(t.orders.c.client_order_id).where(t.orders.c.bar == bar.key)
            conn.execute(
                sa.update(f)
                .where(f.c.settled_bar.is_(None), f.c.client_order_id.in_(bar_orders))
                .values(settled_bar=bar.key)
            )
            settle_lifecycle(conn, bar.key)
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

    # -- what was recorded --------------------------------------------------------------------

    def recorded_bars(self) -> list[str]:
        """Every recorded bar, in bar order."""
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(t.bars.c.bar).order_by(t.bars.c.bar))]

    def virtual_fills(self, bar: Bar | None = None) -> list[VirtualFill]:
        v = t.virtual_fills
        query = sa.select(v).order_by(v.c.bar, v.c.strategy, v.c.symbol, v.c.internal)
        if bar is not None:
            query = query.where(v.c.bar == bar.key)
        with self.engine.connect() as conn:
            fees = _fees_by_fill(conn, bar)
            return [_virtual_fill_of(r, fees) for r in conn.execute(query)]

    def virtual_fills_by_bar(self) -> dict[str, list[VirtualFill]]:
        """Every recorded bar's virtual fills (bars in order; by strategy, symbol, internal)."""
        v = t.virtual_fills
        query = sa.select(v).order_by(v.c.bar, v.c.strategy, v.c.symbol, v.c.internal)
        out: dict[str, list[VirtualFill]] = {}
        with self.engine.connect() as conn:
            fees = _fees_by_fill(conn, None)
            for r in conn.execute(query):
                out.setdefault(r.bar, []).append(_virtual_fill_of(r, fees))
        return out

    def fees_in_kind(self) -> dict[str, dict[str, Decimal]]:
        """Every strategy's fees paid in a third currency (BNB), summed per currency over the
        recorded bars: strategy -> currency -> amount (>= 0). They are neither cash nor a
        position (docs/decisions/0016-ccxt-fees-and-bar-leases.md); base-coin fees are in the
        positions already."""
        v = t.virtual_fees
        query = (
            sa.select(v.c.strategy, v.c.currency, v.c.amount)
            .where(v.c.in_base.is_(False))
            .order_by(v.c.strategy, v.c.currency, v.c.bar, v.c.symbol)
        )
        out: dict[str, dict[str, Decimal]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(query):
                held = out.setdefault(str(r.strategy), {})
                held[str(r.currency)] = exact.add(held.get(str(r.currency), Decimal(0)), r.amount)
        return out

    def broker_fills(self) -> list[BrokerFill]:
        with self.engine.connect() as conn:
            return [
                broker_fill_of(r)
                for r in conn.execute(sa.select(t.broker_fills).order_by(t.broker_fills.c.fill_id))
            ]

    def broker_fills_by_bar(self) -> dict[str, list[BrokerFill]]:
        """The broker's fills by the bar of their journaled order (bars in order, ``manual``
        among them; fills by fill id)."""
        f, o = t.broker_fills, t.orders
        query = (
            sa.select(o.c.bar, f)
            .select_from(f.join(o, o.c.client_order_id == f.c.client_order_id))
            .order_by(o.c.bar, f.c.fill_id)
        )
        out: dict[str, list[BrokerFill]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(query):
                out.setdefault(r.bar, []).append(broker_fill_of(r))
        return out

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

    def refusal_counts(self) -> dict[str, int]:
        """How many intents were cut or refused, by reason, over every recorded bar."""
        g = t.gating
        query = (
            sa.select(g.c.reason, sa.func.count())
            .where(g.c.reason.is_not(None))
            .group_by(g.c.reason)
        )
        with self.engine.connect() as conn:
            return {str(r[0]): int(r[1]) for r in conn.execute(query)}

    def savings(self, bar: Bar) -> Decimal | None:
        s = t.netting_savings
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(s.c.savings).where(s.c.bar == bar.key)).first()
        return None if found is None else found[0]

    def savings_by_bar(self) -> dict[str, BarSavings]:
        """Every recorded bar's netting savings."""
        with self.engine.connect() as conn:
            return {
                r.bar: BarSavings(would_pay=r.would_pay, fee_paid=r.fee_paid, savings=r.savings)
                for r in conn.execute(sa.select(t.netting_savings))
            }


def base_currency(symbol: str) -> str:
    """The base currency of a ``BASE/QUOTE`` symbol (what ``virtual_fees`` names a base fee)."""
    return symbol.partition("/")[0]


def _fees_in_kind(f: VirtualFill) -> list[tuple[str, Decimal, bool]]:
    """A virtual fill's fees outside the quote currency as ``virtual_fees`` rows:
    (currency, amount, in_base)."""
    rows = [(c, a, False) for c, a in f.other_fees if a]
    if f.base_fee:
        rows.append((base_currency(f.symbol), f.base_fee, True))
    return rows


_FeeKey = tuple[str, str, str]  # (bar, strategy, symbol)


def _fees_by_fill(
    conn: Connection, bar: Bar | None
) -> dict[_FeeKey, tuple[Decimal, tuple[tuple[str, Decimal], ...]]]:
    """Each external virtual fill's base fee and third-currency fees, from ``virtual_fees``."""
    v = t.virtual_fees
    query = sa.select(v).order_by(v.c.bar, v.c.strategy, v.c.symbol, v.c.currency)
    if bar is not None:
        query = query.where(v.c.bar == bar.key)
    base: dict[_FeeKey, Decimal] = {}
    other: dict[_FeeKey, list[tuple[str, Decimal]]] = {}
    for r in conn.execute(query):
        key = (str(r.bar), str(r.strategy), str(r.symbol))
        if r.in_base:
            base[key] = r.amount
        else:
            other.setdefault(key, []).append((str(r.currency), r.amount))
    return {
        key: (base.get(key, Decimal(0)), tuple(other.get(key, ())))
        for key in base.keys() | other.keys()
    }


def _virtual_fill_of(
    r: Any, fees: dict[_FeeKey, tuple[Decimal, tuple[tuple[str, Decimal], ...]]]
) -> VirtualFill:
    base, other = (Decimal(0), ())
    if not r.internal:  # fees are only ever on the external part
        base, other = fees.get((str(r.bar), str(r.strategy), str(r.symbol)), (Decimal(0), ()))
    return VirtualFill(
        strategy=r.strategy,
        symbol=r.symbol,
        qty=r.qty,
        price=r.price,
        fee=r.fee,
        internal=bool(r.internal),
        base_fee=base,
        other_fees=other,
    )


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
    fee_rows = [
        {
            "bar": bar.key,
            "strategy": f.strategy,
            "symbol": f.symbol,
            "currency": currency,
            "amount": amount,
            "in_base": in_base,
        }
        for f in fills
        for currency, amount, in_base in _fees_in_kind(f)
    ]
    if fee_rows:
        conn.execute(sa.insert(t.virtual_fees), fee_rows)
    delta_pos: dict[tuple[str, str], Decimal] = {}
    delta_cash: dict[str, Decimal] = {}
    for f in fills:
        key = (f.strategy, f.symbol)
        # a fee taken in the base coin comes out of the position (VirtualFill.position_change)
        delta_pos[key] = exact.add(delta_pos.get(key, Decimal(0)), f.position_change)
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
