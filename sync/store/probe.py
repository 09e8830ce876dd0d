"""The cheapest question to the database: is it there? (The admin API's health check.)"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine


def ping(db: Engine) -> None:
    """Run ``SELECT 1`` on a fresh connection; raises ``SQLAlchemyError`` when unreachable."""
    with db.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
