"""The strategy gateway: token hashes, return corrections.

Revision ID: 0006
Revises: 0005

- ``gateway_tokens``: one row per issued token, only its SHA-256 (hex) stored. ``kind`` is
  ``strategy`` (``strategy`` names it) or ``operator`` (``strategy`` NULL); ``label`` says who
  holds it; ``revoked_at`` is set by ``allocator strategy rotate`` / ``revoke``.
- ``return_corrections``: every correction of a stored daily return, with the version it added,
  the old and new values, who made it and why.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("strategy", sa.String(length=200), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index(
        op.f("ix_gateway_tokens_strategy"), "gateway_tokens", ["strategy"], unique=False
    )
    op.create_table(
        "return_corrections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("date", sa.String(length=10), nullable=False),
        sa.Column("strategy", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("old_value", sa.Float(), nullable=True),
        sa.Column("new_value", sa.Float(), nullable=True),
        sa.Column("corrected_by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("corrected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_return_corrections_strategy"), "return_corrections", ["strategy"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_return_corrections_strategy"), table_name="return_corrections")
    op.drop_table("return_corrections")
    op.drop_index(op.f("ix_gateway_tokens_strategy"), table_name="gateway_tokens")
    op.drop_table("gateway_tokens")
