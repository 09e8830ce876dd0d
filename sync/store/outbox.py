"""Queries on the ``outbox`` (pending pushes, one open row per record and system), its
claims, and what is still owed.

``OPEN_STATES`` are the states of a row not yet settled. Every function takes the caller's
session and leaves the transaction to it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

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


# --------------------------------------------------------------------------- claims


def in_flight_holders(session: Session) -> Sequence[str | None]:
    """The distinct holders of rows ``in_flight``."""
    return session.exec(
        select(Outbox.claimed_by)
        .where(col(Outbox.status) == "in_flight", col(Outbox.claimed_by).is_not(None))
        .distinct()
    ).all()


def release_holders(session: Session, holders: Collection[str], now: dt.datetime) -> int:
    """Put the ``in_flight`` rows of ``holders`` back to ``retry``, due at ``now``, unclaimed;
    returns how many."""
    released = session.execute(
        sa.update(Outbox)
        .where(col(Outbox.status) == "in_flight", col(Outbox.claimed_by).in_(holders))
        .values(status="retry", claimed_by=None, claimed_until=None, next_attempt_at=now)
    )
    return int(getattr(released, "rowcount", 0) or 0)


def _still_held(ids: Collection[int], holder: str) -> tuple[Any, ...]:
    """The rows ``ids`` that are still ``in_flight`` under ``holder``'s claim (a claim that ran
    out may have been released and retaken: those rows are someone else's now)."""
    return (
        col(Outbox.id).in_(ids),
        col(Outbox.status) == "in_flight",
        col(Outbox.claimed_by) == holder,
    )


def renew_claims(session: Session, ids: Collection[int], holder: str, until: dt.datetime) -> int:
    """Move the claim expiry of the rows ``ids`` still ``in_flight`` for ``holder`` to
    ``until``; returns how many. On PostgreSQL a row locked right now is skipped, not waited
    for: its holder is settling it (the drain's apply, on another connection of this very
    process) — a renewal stuck behind that apply let the other claims run out under load and
    other workers took them and sent them again. The next beat renews what was skipped."""
    free = _lock_in_order(session, ids, skip_locked=True)
    result = session.execute(
        sa.update(Outbox).where(*_still_held(free, holder)).values(claimed_until=until)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _lock_in_order(
    session: Session, ids: Collection[int], *, skip_locked: bool = False
) -> Collection[int]:
    """Take the row locks of ``ids`` in ascending id order before updating them (PostgreSQL;
    a no-op on SQLite, which locks the whole file). Two transactions that update overlapping
    rows — the claim renewer and a drain settling outcomes — then wait for each other instead
    of deadlocking: an UPDATE alone locks in whatever order it meets the rows. Returns the
    ids locked (``skip_locked``: those no other transaction holds; all ids on SQLite)."""
    if not ids or session.get_bind().dialect.name != "postgresql":
        return ids
    locked = session.execute(
        sa.select(col(Outbox.id))
        .where(col(Outbox.id).in_(ids))
        .order_by(col(Outbox.id))
        .with_for_update(skip_locked=skip_locked)
    )
    return [row_id for (row_id,) in locked]


def lock_in_order(session: Session, ids: Collection[int]) -> None:
    """Take the row locks of ``ids`` now, in ascending id order (PostgreSQL; see
    :func:`_lock_in_order`), for a transaction that then updates them in another order."""
    _lock_in_order(session, ids)


def stranded_systems(session: Session, systems: Collection[str], now: dt.datetime) -> list[str]:
    """Among ``systems``, those with ``in_flight`` rows whose claim ran out before ``now``."""
    found = session.exec(
        select(Outbox.system)
        .where(
            col(Outbox.system).in_(systems),
            col(Outbox.status) == "in_flight",
            col(Outbox.claimed_until) < now,
        )
        .distinct()
    ).all()
    return sorted(str(system) for system in found)


def open_rows_of_many(session: Session, record_ids: Collection[str]) -> Sequence[Outbox]:
    """The open rows of the given records, every system (one query)."""
    return session.exec(
        select(Outbox).where(
            col(Outbox.record_id).in_(record_ids), col(Outbox.status).in_(OPEN_STATES)
        )
    ).all()


def insert_many(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert outbox rows (their columns) with one statement."""
    session.execute(sa.insert(Outbox), rows)


# --------------------------------------------------------------------------- push


def _claimable(now: dt.datetime) -> Any:
    """Rows a drain may claim at ``now``: unsent and due, or in flight under a claim that ran
    out (its holder died). The claim itself and ``due_systems`` ask the same question."""
    return sa.or_(
        sa.and_(col(Outbox.status).in_(UNSENT_STATES), col(Outbox.next_attempt_at) <= now),
        sa.and_(col(Outbox.status) == "in_flight", col(Outbox.claimed_until) < now),
    )


def lock_due(
    session: Session, system: str, now: dt.datetime, limit: int, *, creates: bool = True
) -> list[int]:
    """Lock (``FOR UPDATE SKIP LOCKED``) and return the ids of up to ``limit`` rows of
    ``system`` due at ``now`` — unsent and due, or in flight with a lapsed claim — in queue
    order; creates left out unless ``creates``."""
    query = (
        select(Outbox.id)
        .where(
            Outbox.system == system,
            _claimable(now),
        )
        .order_by(col(Outbox.next_attempt_at), col(Outbox.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if not creates:
        query = query.where(Outbox.op != "create")
    return [row_id for row_id in session.exec(query).all() if row_id is not None]


def claim_rows(session: Session, ids: Collection[int], holder: str, until: dt.datetime) -> None:
    """Mark the rows ``ids`` ``in_flight``, claimed by ``holder`` until ``until``."""
    session.execute(
        sa.update(Outbox)
        .where(col(Outbox.id).in_(ids))
        .values(status="in_flight", claimed_by=holder, claimed_until=until)
    )


def prepare_view(session: Session, ids: Collection[int]) -> Sequence[Any]:
    """The columns a drain's prepare reads of the rows ``ids`` that exist, as rows with
    attribute access (``row.status``…): no ORM object per row (their identity-map upkeep cost
    more than the query)."""
    columns = (
        Outbox.id,
        Outbox.record_id,
        Outbox.system,
        Outbox.op,
        Outbox.reason,
        Outbox.status,
        Outbox.claimed_by,
        Outbox.updated_at,
        Outbox.idempotency_key,
        Outbox.intent_at,
        Outbox.intent,
    )
    query = sa.select(*(col(c) for c in columns)).where(col(Outbox.id).in_(ids))
    return session.execute(query).all()


def settle_view(session: Session, ids: Collection[int]) -> Sequence[tuple[Any, ...]]:
    """``(id, record_id, system, op, status, attempts, intent, intent_at, claimed_by,
    updated_at, created_at, waiting)`` of the rows ``ids`` that exist: what settling a push
    reads."""
    columns = (
        Outbox.id,
        Outbox.record_id,
        Outbox.system,
        Outbox.op,
        Outbox.status,
        Outbox.attempts,
        Outbox.intent,
        Outbox.intent_at,
        Outbox.claimed_by,
        Outbox.updated_at,
        Outbox.created_at,
        Outbox.waiting,
    )
    query = sa.select(*(col(c) for c in columns)).where(col(Outbox.id).in_(ids))
    return [tuple(row) for row in session.execute(query).all()]


def write_changes(session: Session, changes: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
    """Set the given columns of each row ``(id, {column: value})``: one statement per set of
    columns (rows settled alike share it)."""
    table = Outbox.__table__  # type: ignore[attr-defined]
    _lock_in_order(session, [row_id for row_id, _ in changes])
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row_id, values in sorted(changes, key=lambda change: change[0]):
        bound = {f"v_{name}": value for name, value in values.items()}
        by_columns.setdefault(tuple(sorted(values)), []).append({"row": row_id, **bound})
    for columns, params in by_columns.items():
        statement = (
            sa.update(table)
            .where(table.c.id == sa.bindparam("row"))
            .values({name: sa.bindparam(f"v_{name}") for name in columns})
        )
        session.execute(statement, params)


def get(session: Session, row_id: int) -> Outbox | None:
    return session.get(Outbox, row_id)


def record_doubts(
    session: Session, holder: str, sent: Sequence[tuple[int, Mapping[str, Any]]]
) -> None:
    """Store what each update row ``(id, values)`` sends as its ``intent`` and clear its
    ``intent_at``, one statement for the batch; rows no longer ``in_flight`` for ``holder``
    are left alone."""
    table = Outbox.__table__  # type: ignore[attr-defined]
    session.execute(
        sa.update(table)
        .where(
            table.c.id == sa.bindparam("row"),
            table.c.status == "in_flight",
            table.c.claimed_by == holder,
        )
        # intent_at cleared: a create row whose deal got linked meanwhile now sends an
        # update, and its create intent is moot (``open_intents`` skips linked ones)
        .values(intent=sa.bindparam("sent"), intent_at=None),
        [{"row": row_id, "sent": values} for row_id, values in sent],
    )


def mark_intents(session: Session, ids: Collection[int], holder: str, now: dt.datetime) -> set[int]:
    """Set ``intent_at`` to ``now`` and count an attempt on the rows ``ids`` still
    ``in_flight`` for ``holder``; returns those rows' ids."""
    result = session.execute(
        sa.update(Outbox)
        .where(*_still_held(ids, holder))
        .values(intent_at=now, attempts=col(Outbox.attempts) + 1)
        .returning(col(Outbox.id))
    )
    return {row_id for (row_id,) in result.all()}


def set_intents(session: Session, sent: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
    """Store what each create row ``(id, values)`` sends as its ``intent``, one statement for
    the batch."""
    table = Outbox.__table__  # type: ignore[attr-defined]
    session.execute(
        sa.update(table)
        .where(table.c.id == sa.bindparam("row"))
        .values(intent=sa.bindparam("sent")),
        [{"row": row_id, "sent": values} for row_id, values in sent],
    )


def release_claimed(session: Session, ids: Collection[int], holder: str, now: dt.datetime) -> None:
    """Put the rows ``ids`` claimed by ``holder`` back to ``retry``, due at ``now``,
    unclaimed."""
    session.execute(
        sa.update(Outbox)
        .where(col(Outbox.id).in_(ids), col(Outbox.claimed_by) == holder)
        .values(status="retry", claimed_by=None, claimed_until=None, next_attempt_at=now)
    )


def forget_intents(session: Session, ids: Collection[int], holder: str) -> None:
    """Clear the create intents of rows ``ids`` still claimed by ``holder`` (their request
    never left: there is nothing to look up)."""
    session.execute(
        sa.update(Outbox)
        .where(col(Outbox.id).in_(ids), col(Outbox.claimed_by) == holder)
        .values(intent_at=None, intent=None)
    )


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


def due_systems(session: Session, now: dt.datetime) -> list[str]:
    """The systems with rows a drain could claim at ``now`` (due, or in flight with a claim
    that ran out), sorted."""
    due = session.exec(select(Outbox.system).where(_claimable(now)).distinct()).all()
    return sorted(str(system) for system in due)


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
