"""Queries on the ``journal`` (one decision about one record: what, from where, why).

Every function takes the caller's session and leaves the transaction to it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from sync.store import bulk
from sync.store.models import Journal


def insert_many(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert journal entries (every row with the same columns) with one statement, in order.
    A Core insert of the table: the ORM's would send a statement per run of rows alike in
    which columns are None, and costs more per row."""
    bulk.insert_rows(session, Journal.__table__, rows)  # type: ignore[attr-defined]


def creates_of(
    session: Session, record_ids: Collection[str], captured_prefix: str
) -> Sequence[tuple[str, str | None, str, dt.datetime]]:
    """``(record_id, system, action, at)`` of the given records' ``create_intent`` entries
    (a push about to create) and ``created`` entries whose reason starts with
    ``captured_prefix`` (capture's "created", a new deal read from a system, not push's)."""
    return session.exec(
        select(Journal.record_id, Journal.system, Journal.action, Journal.at).where(
            col(Journal.record_id).in_(record_ids),
            sa.or_(
                col(Journal.action) == "create_intent",
                sa.and_(
                    col(Journal.action) == "created",
                    col(Journal.reason).startswith(captured_prefix),
                ),
            ),
        )
    ).all()


def of_record(session: Session, record_id: str, limit: int | None = None) -> Sequence[Journal]:
    """The record's entries, oldest first; the first ``limit`` of them (``None``: all)."""
    return session.exec(
        select(Journal).where(Journal.record_id == record_id).order_by(col(Journal.id)).limit(limit)
    ).all()


def of_run(session: Session, run_id: str, limit: int) -> Sequence[Journal]:
    """The first ``limit`` entries a run wrote, oldest first (what the run touched)."""
    return session.exec(
        select(Journal).where(Journal.run_id == run_id).order_by(col(Journal.id)).limit(limit)
    ).all()
