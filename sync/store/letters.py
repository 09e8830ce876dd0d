"""Queries on ``dead_letters`` (what could not be synced, with the vendor's message).

Every function takes the caller's session and leaves the transaction to it."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import ColumnElement
from sqlmodel import Session, col, func, select

from sync.store.models import DeadLetter

#: a replayed letter is still unresolved until the replay goes through
UNRESOLVED = ("open", "replayed")


def find_open(
    session: Session, system: str, record_id: str | None, external_id: str | None, op: str
) -> DeadLetter | None:
    """The open letter about this deal and operation in ``system`` (one per such), if any."""
    return session.exec(
        select(DeadLetter).where(
            DeadLetter.system == system,
            DeadLetter.status == "open",
            DeadLetter.record_id == record_id,
            DeadLetter.external_id == external_id,
            DeadLetter.op == op,
        )
    ).first()


def unresolved_outbound(
    session: Session, system: str, record_ids: Collection[str]
) -> Sequence[DeadLetter]:
    """The unresolved outbound letters of the given records in ``system``."""
    return _unresolved(session, system, "outbound", col(DeadLetter.record_id).in_(record_ids))


def unresolved_inbound(
    session: Session, system: str, external_ids: Collection[str]
) -> Sequence[DeadLetter]:
    """The unresolved inbound letters about the given deals of ``system``."""
    return _unresolved(session, system, "inbound", col(DeadLetter.external_id).in_(external_ids))


def _unresolved(
    session: Session, system: str, direction: str, about: ColumnElement[bool]
) -> Sequence[DeadLetter]:
    return session.exec(
        select(DeadLetter).where(
            col(DeadLetter.status).in_(UNRESOLVED),
            DeadLetter.system == system,
            DeadLetter.direction == direction,
            about,
        )
    ).all()


def refused_record_ids(
    session: Session, system: str, record_ids: Collection[str]
) -> set[str | None]:
    """Which of the given records have an open letter in ``system`` (a refused push waits for
    a person)."""
    return set(
        session.exec(
            select(DeadLetter.record_id).where(
                DeadLetter.system == system,
                DeadLetter.status == "open",
                col(DeadLetter.record_id).in_(record_ids),
            )
        ).all()
    )


def open_about(
    session: Session, system: str, record_ids: Collection[str], external_ids: Collection[str]
) -> Sequence[DeadLetter]:
    """The open letters in ``system`` about any of these records or vendor deals, oldest
    first (verify names them as the reason a deal is absent or cannot be read)."""
    if not record_ids and not external_ids:
        return []
    return session.exec(
        select(DeadLetter)
        .where(
            DeadLetter.system == system,
            DeadLetter.status == "open",
            col(DeadLetter.record_id).in_(record_ids)
            | col(DeadLetter.external_id).in_(external_ids),
        )
        .order_by(col(DeadLetter.id))
    ).all()


def unresolved_of_deals(
    session: Session, system: str, external_ids: Collection[str], record_ids: Collection[str]
) -> Sequence[DeadLetter]:
    """The unresolved letters, either direction, about these deals of ``system`` (by vendor id
    or record id)."""
    return session.exec(
        select(DeadLetter).where(
            col(DeadLetter.status).in_(UNRESOLVED),
            DeadLetter.system == system,
            col(DeadLetter.external_id).in_(external_ids)
            | col(DeadLetter.record_id).in_(record_ids),
        )
    ).all()


def unresolved_of_record(session: Session, record_id: str) -> Sequence[DeadLetter]:
    """The unresolved letters about one record, in every system and either direction."""
    return session.exec(
        select(DeadLetter).where(
            col(DeadLetter.status).in_(UNRESOLVED), DeadLetter.record_id == record_id
        )
    ).all()


def unresolved_unlinked_inbound(session: Session, system: str) -> Sequence[DeadLetter]:
    """The unresolved inbound letters of ``system`` about deals no record holds yet (a read
    that could not be mapped, of a deal never captured): usually none or a few."""
    return session.exec(
        select(DeadLetter).where(
            col(DeadLetter.status).in_(UNRESOLVED),
            DeadLetter.system == system,
            DeadLetter.direction == "inbound",
            col(DeadLetter.record_id).is_(None),
        )
    ).all()


def get(session: Session, letter_id: int) -> DeadLetter | None:
    return session.get(DeadLetter, letter_id)


def open_per_system(session: Session) -> dict[str, int]:
    """Open letters per system (systems without any are absent)."""
    rows = session.exec(
        select(DeadLetter.system, func.count())
        .where(DeadLetter.status == "open")
        .group_by(DeadLetter.system)
    ).all()
    return {str(system): int(n) for system, n in rows}


def in_status(session: Session, status: str, limit: int | None) -> Sequence[DeadLetter]:
    """Up to ``limit`` letters in ``status`` (``None``: all of them), oldest first."""
    return session.exec(
        select(DeadLetter)
        .where(DeadLetter.status == status)
        .order_by(col(DeadLetter.id))
        .limit(limit)
    ).all()


def open_ids(session: Session) -> list[int]:
    """The ids of every open letter (in no particular order)."""
    query = select(DeadLetter.id).where(DeadLetter.status == "open")
    return [i for i in session.exec(query).all() if i is not None]
