"""Queries on ``cursors`` (capture progress per system). Every function takes the caller's
session and leaves the transaction to it."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlmodel import Session, col, select

from sync.store.models import Cursor


def get(session: Session, system: str) -> Cursor | None:
    return session.get(Cursor, system)


def polled_systems(session: Session) -> set[str]:
    """The systems polled at least once."""
    polled = session.exec(select(Cursor.system).where(col(Cursor.last_poll_at).is_not(None)))
    return set(polled.all())


def drop(session: Session, system: str) -> None:
    """Forget the system's cursor: its next capture starts from the beginning."""
    session.execute(sa.delete(Cursor).where(col(Cursor.system) == system))


def every(session: Session) -> Sequence[Cursor]:
    """The cursor of every system polled or scanned so far."""
    return session.exec(select(Cursor)).all()
