"""first_run: the guided first run's state (match review, approval) for the store

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-30 12:45:00

A store that already holds records was synced before guided first runs existed: it is marked
``approved`` so an upgrade never stops its creates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "first_run",
        sa.Column("key", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("deals", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("decided_by", sa.String(length=80), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM records LIMIT 1")).first() is not None:
        now = dt.datetime.now(dt.UTC)
        op.bulk_insert(
            table,
            [
                {
                    "key": "store",
                    "state": "approved",
                    "deals": {},
                    "summary": {"note": "store synced before guided first runs"},
                    "decided_by": "migration 0006",
                    "decided_at": now,
                    "created_at": now,
                }
            ],
        )


def downgrade() -> None:
    op.drop_table("first_run")
