"""system states (binding, mapping fingerprint, holds), pending deletes, links.filtered_at

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 12:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("filtered_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "system_states",
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("binding", sa.JSON(), nullable=False),
        sa.Column("pending_binding", sa.JSON(), nullable=True),
        sa.Column("shelved", sa.JSON(), nullable=False),
        sa.Column("mapping", sa.JSON(), nullable=False),
        sa.Column("held", sa.String(length=16), nullable=True),
        sa.Column("held_message", sa.String(length=2000), nullable=True),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("system"),
    )
    op.create_table(
        "pending_deletes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(length=40), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("how", sa.String(length=200), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_pending_deletes_system", "pending_deletes", ["system"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_pending_deletes_system", table_name="pending_deletes")
    op.drop_table("pending_deletes")
    op.drop_table("system_states")
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.drop_column("filtered_at")
