"""Fees in the currency they were charged in (ccxt base-coin and third-coin fees); bar leases.

Revision ID: 0004
Revises: 0003

- ``broker_fills.fee_currency``: the currency of the fill's ``fee``; NULL is the quote currency,
  which every row written before this revision is (the adapters' fees were all quote amounts
  or, for ccxt, valued in it).
- ``virtual_fees``: each strategy's share of a bar's fees outside the quote currency, per
  (bar, strategy, symbol, currency): ``in_base`` true for the symbol's base coin (a Binance buy
  pays in the coin received; the share is taken out of the strategy's position), false for a
  third currency (BNB), recorded in that currency. docs/decisions/0016-ccxt-fees-and-bar-leases.md.
- ``bar_lifecycle.lease_owner`` and ``lease_expires_at``: the one process running the bar
  (claimed with a conditional UPDATE, renewed by a heartbeat, released at the end; taken over
  only once expired or its owner is gone), so two runners never both send.
"""

import sqlalchemy as sa
from alembic import op

from resources.ledger.schema import ExactDecimal

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("broker_fills") as batch:
        batch.add_column(sa.Column("fee_currency", sa.String(length=32), nullable=True))
    with op.batch_alter_table("bar_lifecycle") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "virtual_fees",
        sa.Column("bar", sa.String(length=32), nullable=False),
        sa.Column("strategy", sa.String(length=200), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=32), nullable=False),
        sa.Column("amount", ExactDecimal(), nullable=False),
        sa.Column("in_base", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("bar", "strategy", "symbol", "currency"),
    )


def downgrade() -> None:
    op.drop_table("virtual_fees")
    with op.batch_alter_table("bar_lifecycle") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")
    with op.batch_alter_table("broker_fills") as batch:
        batch.drop_column("fee_currency")
