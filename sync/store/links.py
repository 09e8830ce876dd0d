"""Queries on ``links`` (a record's presence in one system, with its shadow).

Every function takes the caller's session and leaves the transaction to it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from sync.store import bulk
from sync.store.models import Link

#: links streamed at a time by :func:`live_before`
LIVE_CHUNK = 5000


def get(session: Session, link_id: int) -> Link | None:
    return session.get(Link, link_id)


def find(session: Session, system: str, external_id: str) -> Link | None:
    """The link of the vendor's deal ``external_id`` in ``system`` (tombstoned or not)."""
    return session.exec(
        select(Link).where(Link.system == system, Link.external_id == external_id)
    ).first()


def of_record(session: Session, record_id: str) -> Sequence[Link]:
    """Every link of one record, whatever its system."""
    return session.exec(select(Link).where(Link.record_id == record_id)).all()


def of_record_in(session: Session, record_id: str, system: str) -> Link | None:
    """The record's link in ``system``."""
    return session.exec(
        select(Link).where(Link.record_id == record_id, Link.system == system)
    ).first()


def of_system(session: Session, system: str) -> Sequence[Link]:
    """Every link of ``system``, tombstoned ones included."""
    return session.exec(select(Link).where(Link.system == system)).all()


def drop_shadow_fields(
    session: Session, system: str, fields: Collection[str], *, chunk: int = LIVE_CHUNK
) -> int:
    """Drop ``fields`` (top-level names) from the shadow and ``sent`` of every link of
    ``system`` holding one; returns how many changed. Read ``chunk`` links at a time by id
    and written back by primary key, never as objects of the session: a million links held
    at once with their shadows are gigabytes."""
    drop, after, changed = set(fields), 0, 0
    while True:
        rows = session.exec(
            select(Link.id, Link.shadow, Link.sent)
            .where(Link.system == system, col(Link.id) > after)
            .order_by(col(Link.id))
            .limit(chunk)
        ).all()
        if not rows:
            return changed
        after = int(rows[-1][0] or 0)
        updates = [
            {
                "id": link_id,
                "shadow": {k: v for k, v in shadow.items() if k not in drop},
                "sent": {k: v for k, v in (sent or {}).items() if k not in drop},
            }
            for link_id, shadow, sent in rows
            if drop & set(shadow or {})
        ]
        if updates:
            session.execute(sa.update(Link), updates)  # by primary key, in one executemany
        changed += len(updates)


def of_records_in(session: Session, system: str, record_ids: Collection[str]) -> Sequence[Link]:
    """The links in ``system`` of the given records."""
    return session.exec(
        select(Link).where(Link.system == system, col(Link.record_id).in_(record_ids))
    ).all()


def live_before(
    session: Session, system: str, linked_before: dt.datetime
) -> Iterator[tuple[int | None, str, str]]:
    """``(id, record_id, external_id)`` of the live links of ``system`` made before
    ``linked_before``: three strings per link, not the shadows, streamed a few thousand at a
    time (a million links held at once as tuples are some 300 MB)."""
    query = select(Link.id, Link.record_id, Link.external_id).where(
        Link.system == system,
        Link.deleted_at == None,  # noqa: E711
        col(Link.linked_at) < linked_before,
    )
    yield from session.exec(query.execution_options(yield_per=LIVE_CHUNK))


def count_live(session: Session, system: str) -> int:
    """How many deals of ``system`` are linked and not tombstoned."""
    query = select(func.count()).select_from(Link)
    query = query.where(Link.system == system, Link.deleted_at == None)  # noqa: E711
    return int(session.exec(query).one())


def count_live_per_system(session: Session) -> dict[str, int]:
    """Live links per system (systems without any are absent)."""
    rows = session.exec(
        select(Link.system, func.count())
        .where(col(Link.deleted_at).is_(None))
        .group_by(col(Link.system))
    ).all()
    return {system: int(count) for system, count in rows}


def live_copies(session: Session) -> Sequence[tuple[str, str, str]]:
    """``(record_id, system, external_id)`` of every live link."""
    return session.exec(
        select(Link.record_id, Link.system, Link.external_id).where(col(Link.deleted_at).is_(None))
    ).all()


def record_ids_of(session: Session, system: str, external_ids: Collection[str]) -> dict[str, str]:
    """``external_id -> record_id`` of the given deals of ``system`` that are linked."""
    links = session.exec(
        select(Link.external_id, Link.record_id).where(
            Link.system == system, col(Link.external_id).in_(external_ids)
        )
    ).all()
    return dict(links)


def forget_stamps(session: Session, system: str) -> None:
    """Forget the vendor stamps of every link of ``system``: its next capture compares every
    deal instead of skipping those whose stamp did not move."""
    session.execute(
        sa.update(Link)
        .where(col(Link.system) == system)
        .values(vendor_modified=None, confirmed_at=None, written_stamp=None)
    )


def move_system(session: Session, source: str, target: str) -> int:
    """Move every link of ``source`` to the system name ``target``; returns how many."""
    moved = session.execute(sa.update(Link).where(col(Link.system) == source).values(system=target))
    return int(getattr(moved, "rowcount", 0) or 0)


def stamps_of(
    session: Session, system: str, external_ids: Collection[str]
) -> Sequence[tuple[str, dt.datetime | None, dt.datetime | None]]:
    """``(external_id, vendor_modified, confirmed_at)`` of the given deals of ``system`` that
    are linked: a few columns, not the links with their shadows."""
    return session.exec(
        select(Link.external_id, Link.vendor_modified, Link.confirmed_at).where(
            Link.system == system,
            col(Link.external_id).in_(external_ids),
        )
    ).all()


def shadows_of(
    session: Session, system: str, external_ids: Collection[str]
) -> dict[str, Mapping[str, Any]]:
    """``external_id -> shadow`` of the given deals of ``system`` that are linked."""
    return dict(
        session.exec(
            select(Link.external_id, Link.shadow).where(
                Link.system == system,
                col(Link.external_id).in_(external_ids),
            )
        ).all()
    )


def confirm(session: Session, system: str, external_ids: Collection[str], at: dt.datetime) -> None:
    """Set ``confirmed_at`` of the given deals of ``system`` to ``at``."""
    session.execute(
        sa.update(Link)
        .where(col(Link.system) == system, col(Link.external_id).in_(external_ids))
        .values(confirmed_at=at)
    )


def of_deals_in(session: Session, system: str, external_ids: Collection[str]) -> Sequence[Link]:
    """The links of the given deals of ``system``."""
    return session.exec(
        select(Link).where(Link.system == system, col(Link.external_id).in_(external_ids))
    ).all()


def linked_among(session: Session, system: str, record_ids: Collection[str]) -> Sequence[str]:
    """Which of the given records have a link in ``system`` (tombstoned or not)."""
    return session.exec(
        select(Link.record_id).where(Link.system == system, col(Link.record_id).in_(record_ids))
    ).all()


def of_records(session: Session, record_ids: Collection[str]) -> Sequence[Link]:
    """Every link of the given records, whatever its system."""
    return session.exec(select(Link).where(col(Link.record_id).in_(record_ids))).all()


def systems_of(session: Session, record_ids: Collection[str]) -> dict[str, set[str]]:
    """``record id -> systems`` it has a link in (tombstoned links too: that system held it)."""
    query = sa.select(col(Link.record_id), col(Link.system)).where(
        col(Link.record_id).in_(record_ids)
    )
    found: dict[str, set[str]] = {record_id: set() for record_id in record_ids}
    for record_id, system in session.execute(query).all():
        found[record_id].add(system)
    return found


def insert_many(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert links (every row with the same columns, all but the id) with one statement. A
    Core insert of the table: the ORM's would send a statement per run of rows alike in which
    columns are None."""
    bulk.insert_rows(session, Link.__table__, rows)  # type: ignore[attr-defined]


def id_of_record_in(session: Session, record_id: str, system: str) -> int | None:
    """The id of the record's link in ``system``, if it has one."""
    return session.exec(
        select(Link.id).where(Link.system == system, Link.record_id == record_id)
    ).first()


def with_external_id(session: Session, external_id: str) -> Link | None:
    """A link of the vendor id ``external_id``, in whichever system (the first found)."""
    return session.exec(select(Link).where(Link.external_id == external_id)).first()


def states(session: Session, link_ids: Collection[int]) -> dict[int, tuple[Any, ...]]:
    """``id -> (shadow, sent, vendor_modified, deleted_at, filtered_at)`` of the given links:
    what a push's apply decided on a snapshot re-checks before rewriting them. On PostgreSQL
    they are locked, in id order, until the transaction ends."""
    columns = (Link.id, Link.shadow, Link.sent, Link.vendor_modified)
    query = (
        sa.select(*(col(c) for c in columns), col(Link.deleted_at), col(Link.filtered_at))
        .where(col(Link.id).in_(link_ids))
        .order_by(col(Link.id))
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return {int(row[0]): tuple(row[1:]) for row in session.execute(query).all()}
