"""Queries on ``records`` (the canonical deals) and their identity keys (``record_keys``),
and the one statement set that folds matched records into one.

Every function takes the caller's session and leaves the transaction to it."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from sync.store import bulk
from sync.store.db import insert_ignoring
from sync.store.models import (
    Conflict,
    DeadLetter,
    Journal,
    Link,
    Outbox,
    PendingDelete,
    Record,
    RecordKey,
)


def get(session: Session, record_id: str) -> Record | None:
    return session.get(Record, record_id)


def every(session: Session) -> Sequence[Record]:
    """Every record, tombstoned ones included."""
    return session.exec(select(Record)).all()


def live(session: Session) -> Sequence[Record]:
    """Every record not tombstoned."""
    return session.exec(select(Record).where(col(Record.deleted_at).is_(None))).all()


def many(session: Session, record_ids: Collection[str]) -> Sequence[Record]:
    """The records with the given ids (those that exist, in no particular order)."""
    return session.exec(select(Record).where(col(Record.id).in_(record_ids))).all()


def plan_view(
    session: Session, record_ids: Collection[str], *, provenance: bool = True
) -> Sequence[Any]:
    """``id, fields, provenance, held, deleted_at`` of the records with the given ids, as rows
    with attribute access: what planning a push reads, without an ORM object per record (a
    load builds thousands; their identity-map upkeep cost more than the query). Without
    ``provenance`` that column reads None (not loaded: a create does not need it)."""
    kept = col(Record.provenance) if provenance else sa.null().label("provenance")
    columns = (col(Record.id), col(Record.fields), kept, col(Record.held), col(Record.deleted_at))
    query = sa.select(*columns).where(col(Record.id).in_(record_ids))
    return session.execute(query).all()


def fields_of(session: Session, record_ids: Collection[str]) -> dict[str, dict[str, Any]]:
    """``id -> fields`` of the given records that exist: one column, no ORM object (a
    push's answer that gives a deal its ids reads and grows nothing else)."""
    query = sa.select(col(Record.id), col(Record.fields)).where(col(Record.id).in_(record_ids))
    return {record_id: fields for record_id, fields in session.execute(query).all()}


def set_fields(session: Session, changes: Sequence[tuple[str, Mapping[str, Any], Any]]) -> None:
    """Set ``fields`` and ``updated_at`` of each record ``(id, fields, updated_at)``, one
    statement for all."""
    table = Record.__table__  # type: ignore[attr-defined]
    rows = [{"id": i, "fields": f, "updated_at": at} for i, f, at in changes]
    bulk.update_rows(session, table, rows)


def existing(session: Session, record_ids: Collection[str]) -> set[str]:
    """Which of the given records exist (tombstoned or not): their ids only, not the rows."""
    if not record_ids:
        return set()
    found = session.exec(select(Record.id).where(col(Record.id).in_(list(record_ids)))).all()
    return set(found)


def live_ids_after(session: Session, after: str, limit: int) -> list[str]:
    """Up to ``limit`` live record ids greater than ``after``, in id order (keyset paging)."""
    return list(
        session.exec(
            select(Record.id)
            .where(col(Record.deleted_at).is_(None), col(Record.id) > after)
            .order_by(col(Record.id))
            .limit(limit)
        ).all()
    )


def live_holds(session: Session) -> Sequence[Sequence[Any]]:
    """The ``held`` list of every live record."""
    return session.exec(select(Record.held).where(col(Record.deleted_at).is_(None))).all()


def absorb(session: Session, moves: Mapping[str, str], unsent: Sequence[str]) -> None:
    """Fold each record ``gone`` of ``moves`` (gone -> kept) into the record it joins: its
    not yet sent pushes (status in ``unsent``) are dropped, every row of it in links, keys,
    journal, conflicts, dead letters, stopped deletes and the outbox moves to the kept record,
    and it is deleted. One statement per table."""
    gone = list(moves)
    session.execute(
        sa.delete(Outbox).where(col(Outbox.record_id).in_(gone), col(Outbox.status).in_(unsent))
    )
    tables: tuple[Any, ...] = (
        Link,
        RecordKey,
        Journal,
        Conflict,
        DeadLetter,
        PendingDelete,
        Outbox,
    )
    for table in tables:
        column = col(table.record_id)
        session.execute(
            sa.update(table).where(column.in_(gone)).values(record_id=sa.case(moves, value=column))
        )
    session.execute(sa.delete(Record).where(col(Record.id).in_(gone)))


def lock(session: Session, record_ids: Collection[str]) -> None:
    """Lock the rows of these records until the transaction ends, in id order (PostgreSQL;
    SQLite's write transaction already holds the whole file). A transaction that links to,
    updates or claims pushes of one of them waits for this one, then sees what it did."""
    if record_ids and session.get_bind().dialect.name == "postgresql":
        query = sa.select(col(Record.id)).where(col(Record.id).in_(record_ids))
        session.execute(query.order_by(col(Record.id)).with_for_update())


# --------------------------------------------------------------------------- identity keys


def keys_among(
    session: Session, namespaces: Collection[str], values: Collection[str]
) -> Sequence[RecordKey]:
    """Key rows whose namespace is one of ``namespaces`` and value one of ``values``."""
    return session.exec(
        select(RecordKey).where(
            col(RecordKey.namespace).in_(namespaces),
            col(RecordKey.value).in_(values),
        )
    ).all()


def insert_many(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert records (their columns) with one statement."""
    bulk.insert_rows(session, Record.__table__, rows)  # type: ignore[attr-defined]


def insert_keys(session: Session, rows: Sequence[dict[str, str]]) -> None:
    """Insert identity key rows (``record_id``, ``namespace``, ``value``) with one statement;
    a key another worker stored meanwhile stays that record's (the first to want a key keeps
    it, as ``index_keys_of`` decides among the keys it read)."""
    table = RecordKey.__table__  # type: ignore[attr-defined]
    insert_ignoring(session, table, rows, ("namespace", "value"))


def named(session: Session, text: str, limit: int) -> Sequence[Record]:
    """Up to ``limit`` live records whose name contains ``text``, in any case (``%`` and ``_``
    are plain characters here), oldest first."""
    name = sa.func.lower(col(Record.fields)["name"].as_string())
    return session.exec(
        select(Record)
        .where(col(Record.deleted_at).is_(None), name.contains(text.lower(), autoescape=True))
        .order_by(col(Record.created_at), col(Record.id))
        .limit(limit)
    ).all()
