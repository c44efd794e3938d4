"""The ledger's tables (SQLAlchemy Core). Quantities, prices, cash and fees are exact decimals:
``NUMERIC`` on PostgreSQL, canonical decimal text on SQLite (whose ``NUMERIC`` is a float).

Revision ``0001`` creates these tables, ``0002`` adds ``reconciliations`` and ``orders.mode``
(and lets ``orders.reference_price`` be NULL); a change here needs a new migration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["ExactDecimal", "UtcDateTime", "metadata"]


class ExactDecimal(TypeDecorator[Decimal]):
    """A decimal stored without rounding on every backend."""

    impl = sa.String(80)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.Numeric(asdecimal=True))
        return dialect.type_descriptor(sa.String(80))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"ledger decimals must be Decimal, got {type(value).__name__}")
        if not value.is_finite():
            raise ValueError(f"ledger decimals must be finite, got {value}")
        return value if dialect.name == "postgresql" else format(value, "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC instant on every backend (SQLite keeps no zone: it is added back)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"ledger instants must be timezone-aware, got {value!r}")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


metadata = sa.MetaData()

strategies = sa.Table(
    "strategies",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

daily_returns = sa.Table(
    "daily_returns",
    metadata,
    sa.Column("date", sa.String(10), primary_key=True),
    sa.Column("strategy", sa.String(200), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("correction", sa.Boolean, nullable=False),
    sa.Column("submitted_at", UtcDateTime(), nullable=False),
)

allocations = sa.Table(
    "allocations",
    metadata,
    sa.Column("date", sa.String(10), primary_key=True),
    sa.Column("strategy", sa.String(200), primary_key=True),
    sa.Column("capital", ExactDecimal, nullable=False),
    sa.Column("final_weight", sa.Float, nullable=False),
    sa.Column("breaker_state", sa.String(20), nullable=False),
    sa.Column("benched", sa.Boolean, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("date", sa.String(10), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("strategy", sa.String(200), nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.UniqueConstraint("date", "kind", "strategy", "detail", name="uq_events_row"),
)

intents = sa.Table(
    "intents",
    metadata,
    sa.Column("intent_id", sa.String(200), primary_key=True),
    sa.Column("strategy", sa.String(200), nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("asset_class", sa.String(16), nullable=False),
    sa.Column("qty", ExactDecimal, nullable=False),
    sa.Column("bar", sa.String(32), nullable=False, index=True),
    sa.Column("received_at", UtcDateTime(), nullable=False),
)

gating = sa.Table(
    "gating",
    metadata,
    sa.Column("intent_id", sa.String(200), primary_key=True),
    sa.Column("bar", sa.String(32), nullable=False, index=True),
    sa.Column("strategy", sa.String(200), nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("requested_qty", ExactDecimal, nullable=False),
    sa.Column("accepted_qty", ExactDecimal, nullable=False),
    sa.Column("reason", sa.String(20), nullable=True),
    sa.Column("routed_from", sa.String(64), nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("client_order_id", sa.String(32), primary_key=True),
    sa.Column("bar", sa.String(32), nullable=False, index=True),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("venue", sa.String(16), nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("qty", ExactDecimal, nullable=False),
    sa.Column("reference_price", ExactDecimal, nullable=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("filled_qty", ExactDecimal, nullable=False),
    sa.Column("avg_price", ExactDecimal, nullable=True),
    sa.Column("fee", ExactDecimal, nullable=False),
    sa.Column("venue_order_id", sa.String(200), nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("mode", sa.String(8), nullable=False, server_default="paper"),
)

broker_fills = sa.Table(
    "broker_fills",
    metadata,
    sa.Column("venue", sa.String(16), primary_key=True),
    sa.Column("fill_id", sa.String(200), primary_key=True),
    sa.Column("client_order_id", sa.String(32), nullable=False, index=True),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("qty", ExactDecimal, nullable=False),
    sa.Column("price", ExactDecimal, nullable=False),
    sa.Column("fee", ExactDecimal, nullable=False),
    sa.Column("ts", UtcDateTime(), nullable=True),
    # the bar that settled this fill; NULL while it is journaled but not yet settled (SPEC §9)
    sa.Column("settled_bar", sa.String(32), nullable=True, index=True),
)

virtual_fills = sa.Table(
    "virtual_fills",
    metadata,
    sa.Column("bar", sa.String(32), primary_key=True),
    sa.Column("strategy", sa.String(200), primary_key=True),
    sa.Column("symbol", sa.String(64), primary_key=True),
    sa.Column("internal", sa.Boolean, primary_key=True),
    sa.Column("qty", ExactDecimal, nullable=False),
    sa.Column("price", ExactDecimal, nullable=False),
    sa.Column("fee", ExactDecimal, nullable=False),
    sa.Column("cash", ExactDecimal, nullable=False),
)

positions = sa.Table(
    "positions",
    metadata,
    sa.Column("strategy", sa.String(200), primary_key=True),
    sa.Column("symbol", sa.String(64), primary_key=True),
    sa.Column("qty", ExactDecimal, nullable=False),
)

cash = sa.Table(
    "cash",
    metadata,
    sa.Column("strategy", sa.String(200), primary_key=True),
    sa.Column("amount", ExactDecimal, nullable=False),
)

netting_savings = sa.Table(
    "netting_savings",
    metadata,
    sa.Column("bar", sa.String(32), primary_key=True),
    sa.Column("would_pay", ExactDecimal, nullable=False),
    sa.Column("fee_paid", ExactDecimal, nullable=False),
    sa.Column("savings", ExactDecimal, nullable=False),
)

bars = sa.Table(
    "bars",
    metadata,
    sa.Column("bar", sa.String(32), primary_key=True),
    sa.Column("recorded_at", UtcDateTime(), nullable=False),
)

paper_orders = sa.Table(
    "paper_orders",
    metadata,
    sa.Column("venue", sa.String(64), primary_key=True),
    sa.Column("client_order_id", sa.String(32), primary_key=True),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)

reconciliations = sa.Table(
    "reconciliations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("venue", sa.String(16), nullable=False, index=True),
    sa.Column("checked_at", UtcDateTime(), nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("differences", sa.Text, nullable=False),
    sa.Column("halted", sa.Boolean, nullable=False),
    sa.Column("cleared_at", UtcDateTime(), nullable=True),
    sa.Column("cleared_by", sa.Integer, nullable=True),
    sa.Column("source", sa.String(64), nullable=False),
)

# -- the live bar path (revision 0003; docs/decisions/0012-live-bar-path.md) -----------------

bar_lifecycle = sa.Table(
    "bar_lifecycle",
    metadata,
    sa.Column("bar", sa.String(32), primary_key=True),
    # sealed -> planned -> settled; failed (a run failed, retried later); abandoned (operator)
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("sealed_at", UtcDateTime(), nullable=False),
    sa.Column("sealed_by", sa.String(200), nullable=False),
    sa.Column("plan", sa.Text, nullable=True),  # the frozen plan inputs and orders, JSON
    sa.Column("plan_digest", sa.String(64), nullable=True),
    sa.Column("planned_at", UtcDateTime(), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("next_retry_at", UtcDateTime(), nullable=True),
    sa.Column("settled_at", UtcDateTime(), nullable=True),
    sa.Column("abandoned_by", sa.String(200), nullable=True),
    sa.Column("abandoned_reason", sa.Text, nullable=True),
)

intent_refusals = sa.Table(
    "intent_refusals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("intent_id", sa.String(200), nullable=False, index=True),
    sa.Column("strategy", sa.String(200), nullable=False),
    sa.Column("bar", sa.String(32), nullable=False, index=True),
    sa.Column("reason", sa.String(20), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
)

lane_halts = sa.Table(
    "lane_halts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("lane", sa.String(16), nullable=False),  # "bar"
    sa.Column("bar", sa.String(32), nullable=True),  # the bar that halted it
    sa.Column("halted_at", UtcDateTime(), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("cleared_at", UtcDateTime(), nullable=True),
    sa.Column("cleared_by", sa.String(200), nullable=True),
    sa.Column("clear_reason", sa.Text, nullable=True),
)
