"""Initial ledger schema: every table of resources/ledger/schema.py at revision 0001.

Revision ID: 0001
Revises: (none)
"""

import sqlalchemy as sa
from alembic import op

from resources.ledger.schema import ExactDecimal

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "allocations",
        sa.Column("date", sa.String(length=10), nullable=False),
        sa.Column("strategy", sa.String(length=200), nullable=False),
        sa.Column("capital", ExactDecimal(), nullable=False),
        sa.Column("final_weight", sa.Float(), nullable=False),
        sa.Column("breaker_state", sa.String(length=20), nullable=False),
        sa.Column("benched", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("date", "strategy"),
    )
    op.create_table(
        "bars",
        sa.Column("bar", sa.String(length=32), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bar"),
    )
    op.create_table(
        "broker_fills",
        sa.Column("venue", sa.String(length=16), nullable=False),
        sa.Column("fill_id", sa.String(length=200), nullable=False),
        sa.Column("client_order_id", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("qty", ExactDecimal(), nullable=False),
        sa.Column("price", ExactDecimal(), nullable=False),
        sa.Column("fee", ExactDecimal(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("venue", "fill_id"),
    )
    with op.batch_alter_table("broker_fills", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_broker_fills_client_order_id"), ["client_order_id"], unique=False
        )

    op.create_table(
        "cash",
        sa.Column("strategy", sa.String(length=200), nullable=False),
        sa.Column("amount", ExactDecimal(), nullable=False),
        sa.PrimaryKeyConstraint("strategy"),
    )
    op.create_table(
        "daily_returns",
        sa.Column("date", sa.String(length=10), nullable=False),
        sa.Column("strategy", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("correction", sa.Boolean(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("date", "strategy", "version"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("date", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("strategy", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("date", "kind", "strategy", "detail", name="uq_events_row"),
    )
    op.create_table(
        "gating",
        sa.Column("intent_id", sa.String(length=200), nullable=False),
        sa.Column("bar", sa.String(length=32), nullable=False),
        sa.Column("strategy", sa.String(length=200), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("requested_qty", ExactDecimal(), nullable=False),
        sa.Column("accepted_qty", ExactDecimal(), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=True),
        sa.Column("routed_from", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("intent_id"),
    )
    with op.batch_alter_table("gating", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gating_bar"), ["bar"], unique=False)

    op.create_table(
        "intents",
        sa.Column("intent_id", sa.String(length=200), nullable=False),
        sa.Column("strategy", sa.String(length=200), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("asset_class", sa.String(length=16), nullable=False),
        sa.Column("qty", ExactDecimal(), nullable=False),
        sa.Column("bar", sa.String(length=32), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("intent_id"),
    )
    with op.batch_alter_table("intents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_intents_bar"), ["bar"], unique=False)

    op.create_table(
        "netting_savings",
        sa.Column("bar", sa.String(length=32), nullable=False),
        sa.Column("would_pay", ExactDecimal(), nullable=False),
        sa.Column("fee_paid", ExactDecimal(), nullable=False),
        sa.Column("savings", ExactDecimal(), nullable=False),
        sa.PrimaryKeyConstraint("bar"),
    )
    op.create_table(
        "orders",
        sa.Column("client_order_id", sa.String(length=32), nullable=False),
        sa.Column("bar", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("venue", sa.String(length=16), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("qty", ExactDecimal(), nullable=False),
        sa.Column("reference_price", ExactDecimal(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("filled_qty", ExactDecimal(), nullable=False),
        sa.Column("avg_price", ExactDecimal(), nullable=True),
        sa.Column("fee", ExactDecimal(), nullable=False),
        sa.Column("venue_order_id", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_order_id"),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orders_bar"), ["bar"], unique=False)

    op.create_table(
        "paper_orders",
        sa.Column("venue", sa.String(length=64), nullable=False),
        sa.Column("client_order_id", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("venue", "client_order_id"),
    )
    op.create_table(
        "positions",
        sa.Column("strategy", sa.String(length=200), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("qty", ExactDecimal(), nullable=False),
        sa.PrimaryKeyConstraint("strategy", "symbol"),
    )
    op.create_table(
        "strategies",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "virtual_fills",
        sa.Column("bar", sa.String(length=32), nullable=False),
        sa.Column("strategy", sa.String(length=200), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("internal", sa.Boolean(), nullable=False),
        sa.Column("qty", ExactDecimal(), nullable=False),
        sa.Column("price", ExactDecimal(), nullable=False),
        sa.Column("fee", ExactDecimal(), nullable=False),
        sa.Column("cash", ExactDecimal(), nullable=False),
        sa.PrimaryKeyConstraint("bar", "strategy", "symbol", "internal"),
    )


def downgrade() -> None:

    op.drop_table("virtual_fills")
    op.drop_table("strategies")
    op.drop_table("positions")
    op.drop_table("paper_orders")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_bar"))

    op.drop_table("orders")
    op.drop_table("netting_savings")
    with op.batch_alter_table("intents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intents_bar"))

    op.drop_table("intents")
    with op.batch_alter_table("gating", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gating_bar"))

    op.drop_table("gating")
    op.drop_table("events")
    op.drop_table("daily_returns")
    op.drop_table("cash")
    with op.batch_alter_table("broker_fills", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_broker_fills_client_order_id"))

    op.drop_table("broker_fills")
    op.drop_table("bars")
    op.drop_table("allocations")
