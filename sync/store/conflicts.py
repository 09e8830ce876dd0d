"""Queries on ``conflicts`` (conflicting edits of one field, open until resolved when the
policy is ``manual``). Every function takes the caller's session."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlmodel import Session, col, select

from sync.store.models import Conflict


def open_on_records(session: Session, record_ids: Collection[str]) -> Sequence[str]:
    """The record id of every open conflict on the given records (one per conflict)."""
    return session.exec(
        select(Conflict.record_id).where(
            Conflict.status == "open", col(Conflict.record_id).in_(record_ids)
        )
    ).all()
