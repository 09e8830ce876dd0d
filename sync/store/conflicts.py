"""Queries on ``conflicts`` (conflicting edits of one field, open until resolved when the
policy is ``manual``). Every function takes the caller's session."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlmodel import Session, col, func, select

from sync.store.models import Conflict


def open_on_records(session: Session, record_ids: Collection[str]) -> Sequence[str]:
    """The record id of every open conflict on the given records (one per conflict)."""
    return session.exec(
        select(Conflict.record_id).where(
            Conflict.status == "open", col(Conflict.record_id).in_(record_ids)
        )
    ).all()


def get(session: Session, conflict_id: int) -> Conflict | None:
    return session.get(Conflict, conflict_id)


def open_per_system(session: Session) -> dict[str, int]:
    """Open conflicts per system whose value disagreed (``theirs_system``); systems without
    any are absent."""
    rows = session.exec(
        select(Conflict.theirs_system, func.count())
        .where(Conflict.status == "open")
        .group_by(Conflict.theirs_system)
    ).all()
    return {str(system): int(n) for system, n in rows}


def in_status(
    session: Session, status: str | None, limit: int, *, newest_first: bool
) -> Sequence[Conflict]:
    """Up to ``limit`` conflicts in ``status`` (``None``: any), oldest first unless
    ``newest_first``."""
    order = col(Conflict.id).desc() if newest_first else col(Conflict.id)
    query = select(Conflict).order_by(order).limit(limit)
    if status is not None:
        query = query.where(Conflict.status == status)
    return session.exec(query).all()
