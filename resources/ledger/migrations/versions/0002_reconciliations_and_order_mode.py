"""Reconciliations (venue halts) and the mode of every order.

Revision ID: 0002
Revises: 0001

- ``reconciliations``: one row per reconciliation of a venue against the ledger (SPEC §9):
  when, whether it agreed, the differences as JSON, whether it halted new entries on the venue
  and, for a halting row, when a later clean reconciliation cleared it. Rows are only appended
  (and ``cleared_at``/``cleared_by`` set once), never overwritten.
- ``orders.mode``: ``paper`` or ``live``, journaled with the order; rows journaled before this
  revision were all sent by the paper broker and are marked ``paper``.
- ``orders.reference_price`` becomes nullable: a manual order (``allocator broker submit``)
  has no bar and so no reference price unless one is given.
"""

import sqlalchemy as sa
from alembic import op

from resources.ledger.schema import ExactDecimal

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconciliations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("venue", sa.String(length=16), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("differences", sa.Text(), nullable=False),
        sa.Column("halted", sa.Boolean(), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_by", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("reconciliations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reconciliations_venue"), ["venue"], unique=False)
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("mode", sa.String(length=8), nullable=False, server_default="paper")
        )
        batch_op.alter_column("reference_price", existing_type=ExactDecimal(), nullable=True)


def downgrade() -> None:
    # reference_price stays nullable: manual orders may hold NULL there.
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("mode")
    with op.batch_alter_table("reconciliations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reconciliations_venue"))
    op.drop_table("reconciliations")
