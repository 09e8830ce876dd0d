"""cursors.pace: a scan system's last complete listing, from which its poll interval stretches

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 05:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cursors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pace", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cursors", schema=None) as batch_op:
        batch_op.drop_column("pace")
