"""Queries on the ``outbox`` (pending pushes, one open row per record and system) and what is
still owed; how drains claim and settle its rows is ``store.claims``.

``OPEN_STATES`` are the states of a row not yet settled. Every function takes the caller's
session and leaves the transaction to it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from sync.store import bulk
from sync.store.models import Link, Outbox

OPEN_STATES = ("pending", "retry", "parked", "in_flight")
#: open, and not yet handed to a push (no claim on them)
UNSENT_STATES = OPEN_STATES[:3]


def open_row(session: Session, record_id: str, system: str) -> Outbox | None:
    """The open row of (record, system), if any."""
    return session.exec(
        select(Outbox).where(
            Outbox.record_id == record_id,
            Outbox.system == system,
            col(Outbox.status).in_(OPEN_STATES),
        )
    ).first()


def open_rows_of_record(session: Session, record_id: str) -> Sequence[Outbox]:
    """The open rows of one record, every system (one query)."""
    return session.exec(
        select(Outbox).where(Outbox.record_id == record_id, col(Outbox.status).in_(OPEN_STATES))
    ).all()


def open_rows_of_records(
    session: Session, system: str, record_ids: Collection[str]
) -> Sequence[Outbox]:
    """The open rows in ``system`` of the given records."""
    return session.exec(
        select(Outbox).where(
            Outbox.system == system,
            col(Outbox.record_id).in_(record_ids),
            col(Outbox.status).in_(OPEN_STATES),
        )
    ).all()


def busy_record_ids(session: Session, system: str, record_ids: Collection[str]) -> set[str]:
    """Which of the given records have an open row in ``system``."""
    return set(
        session.exec(
            select(Outbox.record_id).where(
                Outbox.system == system,
                col(Outbox.record_id).in_(record_ids),
                col(Outbox.status).in_(OPEN_STATES),
            )
        ).all()
    )


def open_deletes_of_record(session: Session, record_id: str) -> Sequence[Outbox]:
    """The record's open delete rows (any system)."""
    return session.exec(
        select(Outbox).where(
            Outbox.record_id == record_id,
            Outbox.op == "delete",
            col(Outbox.status).in_(OPEN_STATES),
        )
    ).all()


def every_open(session: Session) -> Sequence[Outbox]:
    """Every open row, by system, then in queue order."""
    return session.exec(
        select(Outbox)
        .where(col(Outbox.status).in_(("pending", "retry", "parked", "in_flight")))
        .order_by(col(Outbox.system), col(Outbox.id))
    ).all()


def open_intents(session: Session, system: str) -> Sequence[tuple[Any, ...]]:
    """``(id, record_id, intent_at, intent)`` of the open creates in ``system`` that set an
    intent and whose record is not linked there yet, oldest intent first."""
    linked = select(Link.record_id).where(Link.system == system)
    return session.exec(
        select(Outbox.id, Outbox.record_id, Outbox.intent_at, Outbox.intent)
        .where(
            Outbox.system == system,
            Outbox.op == "create",
            col(Outbox.status).in_(OPEN_STATES),
            col(Outbox.intent_at).is_not(None),
            col(Outbox.record_id).not_in(linked),
        )
        .order_by(col(Outbox.intent_at), col(Outbox.id))
    ).all()


def update_doubts(session: Session, system: str) -> Sequence[tuple[Any, ...]]:
    """``(record_id, intent)`` of the open rows to ``system`` whose update recorded what it
    sends (``engine.intents``: updates in doubt; a create intent has ``intent_at`` set)."""
    return session.exec(
        select(Outbox.record_id, Outbox.intent).where(
            Outbox.system == system,
            col(Outbox.status).in_(OPEN_STATES),
            col(Outbox.intent).is_not(None),
            col(Outbox.intent_at).is_(None),
        )
    ).all()


def count_due(session: Session, now: dt.datetime, system: str | None = None) -> int:
    """Rows ``pending`` and due at ``now`` (not waiting on a retry time); all systems when
    ``system`` is None."""
    query = (
        select(func.count())
        .select_from(Outbox)
        .where(col(Outbox.status).in_(("pending",)), Outbox.next_attempt_at <= now)
    )
    if system:
        query = query.where(Outbox.system == system)
    return int(session.exec(query).one())


def owed_summary(session: Session, states: Collection[str]) -> Sequence[Any]:
    """Per (system, status, op) among rows in ``states``: ``(system, status, op, count,
    earliest next attempt, earliest claim end)``."""
    return session.execute(
        sa.select(
            col(Outbox.system),
            col(Outbox.status),
            col(Outbox.op),
            func.count(),
            func.min(col(Outbox.next_attempt_at)),
            func.min(col(Outbox.claimed_until)),
        )
        .where(col(Outbox.status).in_(states))
        .group_by(col(Outbox.system), col(Outbox.status), col(Outbox.op))
    ).all()


def drop_unsent(session: Session, system: str) -> None:
    """Delete the rows of ``system`` not yet handed to a push (pending, retry, parked)."""
    session.execute(
        sa.delete(Outbox).where(
            col(Outbox.system) == system, col(Outbox.status).in_(("pending", "retry", "parked"))
        )
    )


def drop_unsent_creates(session: Session, record_ids: Collection[str]) -> None:
    """Delete the creates of the given records not yet handed to a push."""
    session.execute(
        sa.delete(Outbox).where(
            col(Outbox.record_id).in_(record_ids),
            col(Outbox.op) == "create",
            col(Outbox.status).in_(("pending", "retry", "parked")),
        )
    )


def open_rows_of_many(session: Session, record_ids: Collection[str]) -> Sequence[Outbox]:
    """The open rows of the given records, every system (one query)."""
    return session.exec(
        select(Outbox).where(
            col(Outbox.record_id).in_(record_ids), col(Outbox.status).in_(OPEN_STATES)
        )
    ).all()


def open_states_locked(session: Session, record_ids: Collection[str]) -> Sequence[Any]:
    """``record_id, system, status, intent_at`` of the open rows of the given records, locked
    until the transaction ends (PostgreSQL: a drain's ``SKIP LOCKED`` claim passes them by, and
    a claim under way is waited for and then seen ``in_flight``)."""
    columns = (Outbox.record_id, Outbox.system, Outbox.status, Outbox.intent_at)
    query = (
        sa.select(*(col(c) for c in columns))
        .where(col(Outbox.record_id).in_(record_ids), col(Outbox.status).in_(OPEN_STATES))
        .order_by(col(Outbox.id))
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.execute(query).all()


def insert_many(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert outbox rows (their columns) with one statement."""
    bulk.insert_rows(session, Outbox.__table__, rows)  # type: ignore[attr-defined]


def get(session: Session, row_id: int) -> Outbox | None:
    return session.get(Outbox, row_id)


# --------------------------------------------------------------------------- operator views


def open_per_system(session: Session) -> dict[str, int]:
    """Open rows per system (systems without any are absent)."""
    rows = session.exec(
        select(Outbox.system, func.count())
        .where(col(Outbox.status).in_(OPEN_STATES))
        .group_by(Outbox.system)
    ).all()
    return {str(system): int(n) for system, n in rows}


def count_open(session: Session) -> int:
    """How many rows are not yet settled (pending, retry, parked or in flight)."""
    query = select(func.count()).select_from(Outbox).where(col(Outbox.status).in_(OPEN_STATES))
    return int(session.exec(query).one())


def progress_since(session: Session, since: dt.datetime) -> Sequence[tuple[str, str, int]]:
    """(system, status, rows) of the rows open now or settled since ``since`` (a run's
    progress: settled of settled + open)."""
    rows = session.exec(
        select(Outbox.system, Outbox.status, func.count())
        .where(col(Outbox.status).in_(OPEN_STATES) | (col(Outbox.updated_at) >= since))
        .group_by(Outbox.system, Outbox.status)
    ).all()
    return [(str(system), str(status), int(n)) for system, status, n in rows]


def retries_due(session: Session) -> Sequence[tuple[str, dt.datetime, str | None]]:
    """Per system with rows waiting for a retry: the next one's time and a last error."""
    rows = session.exec(
        select(Outbox.system, func.min(Outbox.next_attempt_at), func.max(Outbox.last_error))
        .where(Outbox.status == "retry")
        .group_by(Outbox.system)
    ).all()
    return [(str(system), at, error) for system, at, error in rows]


def waiting_references(session: Session, system: str | None = None) -> Sequence[tuple[Any, ...]]:
    """``(system, record_id, waiting)`` of the parked rows waiting for a reference
    (``Outbox.waiting``), all systems when ``system`` is None."""
    query = select(Outbox.system, Outbox.record_id, Outbox.waiting).where(
        Outbox.status == "parked", col(Outbox.waiting).is_not(None)
    )
    if system:
        query = query.where(Outbox.system == system)
    return session.exec(query.order_by(col(Outbox.system), col(Outbox.id))).all()
