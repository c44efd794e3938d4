"""The book's trading state, operator risk commands and risk denials.

Revision ID: 0005
Revises: 0004

docs/spec-12-risk.md (the project's §12):

- ``risk_states``: the trading-state journal, appended: the book's (``scope`` ``book``) or a
  venue's state (``active``, ``reducing``, ``halted``), who set it and why (an operator's
  ``allocator halt|reduce-only|resume``, or the kill switch, naming the bar).
- ``risk_marks``: the book's equity marked when each bar is planned, with its peak and its
  session's start since the last resume (the kill switch's inputs).
- ``risk_prices``: each bar's reference prices, the price collar's "previous bar's price".
- ``risk_denials``: every intent cut or refused by the risk stage, with its reason, the limit
  and the value, at plan time or at the send-time gate.
- ``risk_send_gates``: the stricter states a bar was sent under when they were set after its
  plan was frozen.
"""

import sqlalchemy as sa
from alembic import op

from resources.ledger.schema import ExactDecimal

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "risk_states",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("set_by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("bar", sa.String(length=32), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_risk_states_scope", "risk_states", ["scope"])
    op.create_table(
        "risk_marks",
        sa.Column("bar", sa.String(length=32), nullable=False),
        sa.Column("session", sa.String(length=10), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("equity", ExactDecimal(), nullable=False),
        sa.Column("peak", ExactDecimal(), nullable=False),
        sa.Column("session_start", ExactDecimal(), nullable=False),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bar"),
    )
    op.create_table(
        "risk_prices",
        sa.Column("bar", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("price", ExactDecimal(), nullable=False),
        sa.PrimaryKeyConstraint("bar", "symbol"),
    )
    op.create_index("ix_risk_prices_symbol", "risk_prices", ["symbol"])
    op.create_table(
        "risk_denials",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("bar", sa.String(length=32), nullable=False),
        sa.Column("stage", sa.String(length=8), nullable=False),
        sa.Column("intent_id", sa.String(length=200), nullable=False),
        sa.Column("strategy", sa.String(length=200), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("requested_qty", ExactDecimal(), nullable=False),
        sa.Column("accepted_qty", ExactDecimal(), nullable=False),
        sa.Column("limit_value", ExactDecimal(), nullable=True),
        sa.Column("observed_value", ExactDecimal(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_risk_denials_bar", "risk_denials", ["bar"])
    op.create_table(
        "risk_send_gates",
        sa.Column("bar", sa.String(length=32), nullable=False),
        sa.Column("trading_state", sa.String(length=16), nullable=False),
        sa.Column("venue_states", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bar"),
    )


def downgrade() -> None:
    op.drop_table("risk_send_gates")
    op.drop_index("ix_risk_denials_bar", table_name="risk_denials")
    op.drop_table("risk_denials")
    op.drop_index("ix_risk_prices_symbol", table_name="risk_prices")
    op.drop_table("risk_prices")
    op.drop_table("risk_marks")
    op.drop_index("ix_risk_states_scope", table_name="risk_states")
    op.drop_table("risk_states")
