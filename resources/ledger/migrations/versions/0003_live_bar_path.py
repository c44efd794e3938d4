"""The live bar path: each bar's lifecycle, refused intents, lane halts, unsettled fills.

Revision ID: 0003
Revises: 0002

- ``bar_lifecycle``: one row per sealed bar (SPEC §7 sealing, §9): its state (``sealed``,
  ``planned``, ``settled``, ``failed``, ``abandoned``), who sealed it and when, the frozen plan
  (its inputs and orders as JSON, with a digest), the failed attempts with the last error and
  the next retry, and an operator's abandonment.
- ``intent_refusals``: every intent refused by the inbox after it was stored or because its bar
  was sealed (reason ``late``), so the submitter can see it later.
- ``lane_halts``: the bar lane halted after a bar's last retry failed, and cleared by an
  operator (rows appended; ``cleared_*`` set once).
- ``broker_fills.settled_bar``: fills are journaled as they arrive and marked with the bar that
  settled them; rows written before this revision were all settled by their bar, which the
  journal of their order names.

Why a new table and not more columns on ``bars``: ``bars`` keeps meaning "settled" for every
reader that exists; a bar's life before that has its own row.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bar_lifecycle",
        sa.Column("bar", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sealed_by", sa.String(length=200), nullable=False),
        sa.Column("plan", sa.Text(), nullable=True),
        sa.Column("plan_digest", sa.String(length=64), nullable=True),
        sa.Column("planned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("abandoned_by", sa.String(length=200), nullable=True),
        sa.Column("abandoned_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("bar"),
    )
    op.create_table(
        "intent_refusals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("intent_id", sa.String(length=200), nullable=False),
        sa.Column("strategy", sa.String(length=200), nullable=False),
        sa.Column("bar", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_intent_refusals_intent_id", "intent_refusals", ["intent_id"])
    op.create_index("ix_intent_refusals_bar", "intent_refusals", ["bar"])
    op.create_table(
        "lane_halts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lane", sa.String(length=16), nullable=False),
        sa.Column("bar", sa.String(length=32), nullable=True),
        sa.Column("halted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_by", sa.String(length=200), nullable=True),
        sa.Column("clear_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("broker_fills") as batch:
        batch.add_column(sa.Column("settled_bar", sa.String(length=32), nullable=True))
        batch.create_index("ix_broker_fills_settled_bar", ["settled_bar"])
    orders = sa.table("orders", sa.column("client_order_id"), sa.column("bar"))
    fills = sa.table("broker_fills", sa.column("client_order_id"), sa.column("settled_bar"))
    op.execute(
        fills.update().values(
            settled_bar=sa.select(orders.c.bar)
            .where(orders.c.client_order_id == fills.c.client_order_id)
            .scalar_subquery()
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("broker_fills") as batch:
        batch.drop_index("ix_broker_fills_settled_bar")
        batch.drop_column("settled_bar")
    op.drop_table("lane_halts")
    op.drop_index("ix_intent_refusals_bar", table_name="intent_refusals")
    op.drop_index("ix_intent_refusals_intent_id", table_name="intent_refusals")
    op.drop_table("intent_refusals")
    op.drop_table("bar_lifecycle")
