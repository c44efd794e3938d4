"""The ledger's tables (SQLAlchemy Core). Quantities, prices, cash and fees are exact decimals:
``NUMERIC`` on PostgreSQL, canonical decimal text on SQLite (whose ``NUMERIC`` is a float).

Revision ``0001`` creates these tables, ``0002`` adds ``reconciliations`` and ``orders.mode``
(and lets ``orders.reference_price`` be NULL), ``0003`` the live bar path's tables, ``0004``
fees in their own currency (``broker_fills.fee_currency``, ``virtual_fees``) and the bar lease
(``bar_lifecycle.lease_*``); a change here needs a new migration.
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
    # the currency of ``fee`` (revision 0004); NULL: the quote currency (every older row)
    sa.Column("fee_currency", sa.String(32), nullable=True),
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
    # who is running the bar now and until when (revision 0004; allocator.execution.lease)
    sa.Column("lease_owner", sa.String(200), nullable=True),
    sa.Column("lease_expires_at", UtcDateTime(), nullable=True),
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

# -- the strategy gateway (revision 0006; docs/decisions/0015-strategy-gateway.md) ------------

gateway_tokens = sa.Table(
    "gateway_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),  # "strategy" or "operator"
    sa.Column("strategy", sa.String(200), nullable=True, index=True),  # NULL for the operator
    sa.Column("label", sa.String(200), nullable=False),  # who holds it (the journal's "who")
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),  # SHA-256, hex
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
)

return_corrections = sa.Table(
    "return_corrections",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("date", sa.String(10), nullable=False),
    sa.Column("strategy", sa.String(200), nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False),  # the daily_returns version it added
    sa.Column("old_value", sa.Float, nullable=True),
    sa.Column("new_value", sa.Float, nullable=True),
    sa.Column("corrected_by", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("corrected_at", UtcDateTime(), nullable=False),
)

# -- fees outside the quote currency (revision 0004; docs/decisions/0016) ---------------------

virtual_fees = sa.Table(
    "virtual_fees",
    metadata,
    sa.Column("bar", sa.String(32), primary_key=True),
    sa.Column("strategy", sa.String(200), primary_key=True),
    sa.Column("symbol", sa.String(64), primary_key=True),
    sa.Column("currency", sa.String(32), primary_key=True),
    sa.Column("amount", ExactDecimal, nullable=False),
    # True: the symbol's base currency, taken out of the position; False: a third currency
    sa.Column("in_base", sa.Boolean, nullable=False),
)

# -- the pre-trade risk stage (revision 0005; docs/spec-12-risk.md) --------------------------

risk_states = sa.Table(
    "risk_states",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("scope", sa.String(16), nullable=False, index=True),  # "book" or a venue
    sa.Column("state", sa.String(16), nullable=False),  # active, reducing, halted
    sa.Column("set_by", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("source", sa.String(32), nullable=False),  # "operator" or "kill_switch"
    sa.Column("bar", sa.String(32), nullable=True),  # the bar whose mark tripped the switch
    sa.Column("at", UtcDateTime(), nullable=False),
)

risk_marks = sa.Table(
    "risk_marks",
    metadata,
    sa.Column("bar", sa.String(32), primary_key=True),
    sa.Column("session", sa.String(10), nullable=False),
    sa.Column("epoch", sa.Integer, nullable=False),  # risk_states.id of the last book resume
    sa.Column("equity", ExactDecimal, nullable=False),
    sa.Column("peak", ExactDecimal, nullable=False),
    sa.Column("session_start", ExactDecimal, nullable=False),
    sa.Column("marked_at", UtcDateTime(), nullable=False),
)

risk_prices = sa.Table(
    "risk_prices",
    metadata,
    sa.Column("bar", sa.String(32), primary_key=True),
    sa.Column("symbol", sa.String(64), primary_key=True, index=True),
    sa.Column("price", ExactDecimal, nullable=False),
)

risk_denials = sa.Table(
    "risk_denials",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("bar", sa.String(32), nullable=False, index=True),
    sa.Column("stage", sa.String(8), nullable=False),  # "plan" or "send"
    sa.Column("intent_id", sa.String(200), nullable=False),
    sa.Column("strategy", sa.String(200), nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("reason", sa.String(20), nullable=False),
    sa.Column("requested_qty", ExactDecimal, nullable=False),
    sa.Column("accepted_qty", ExactDecimal, nullable=False),
    sa.Column("limit_value", ExactDecimal, nullable=True),
    sa.Column("observed_value", ExactDecimal, nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("recorded_at", UtcDateTime(), nullable=False),
)

risk_send_gates = sa.Table(
    "risk_send_gates",
    metadata,
    sa.Column("bar", sa.String(32), primary_key=True),
    sa.Column("trading_state", sa.String(16), nullable=False),
    sa.Column("venue_states", sa.Text, nullable=False),  # JSON {venue: state}
    sa.Column("detail", sa.Text, nullable=False),  # JSON {"book": ..., venue: ...}
    sa.Column("at", UtcDateTime(), nullable=False),
)
