"""Queries on ``system_states`` (binding, mapping fingerprints, holds of each configured
system) and on ``pending_deletes`` (the deletes the mass-delete guard stopped).

Every function takes the caller's session and leaves the transaction to it."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from sync.store.models import PendingDelete, SystemState


def get(session: Session, system: str) -> SystemState | None:
    return session.get(SystemState, system)


def held(session: Session) -> Sequence[SystemState]:
    """The state of every held system."""
    return session.exec(select(SystemState).where(col(SystemState.held).is_not(None))).all()


def not_removed(session: Session) -> Sequence[SystemState]:
    """The state of every system not marked as removed from the config."""
    return session.exec(select(SystemState).where(col(SystemState.removed_at).is_(None))).all()


# --------------------------------------------------------------------------- pending deletes


def pending_deletes_of(session: Session, system: str) -> Sequence[PendingDelete]:
    """The deletes the guard holds for ``system`` (in no particular order)."""
    return session.exec(select(PendingDelete).where(PendingDelete.system == system)).all()


def pending_deletes(session: Session, system: str | None = None) -> list[PendingDelete]:
    """The held deletes in the order they were held; every system when ``system`` is None."""
    query = select(PendingDelete).order_by(col(PendingDelete.id))
    if system:
        query = query.where(PendingDelete.system == system)
    return list(session.exec(query).all())


def drop_pending_deletes(session: Session, system: str) -> None:
    """Forget every held delete of ``system``."""
    session.execute(sa.delete(PendingDelete).where(col(PendingDelete.system) == system))


def every(session: Session) -> Sequence[SystemState]:
    """The state of every system the store knows, removed ones included."""
    return session.exec(select(SystemState)).all()


def pending_deletes_per_system(session: Session) -> dict[str, int]:
    """Held deletes per system (systems without any are absent)."""
    rows = session.exec(
        select(PendingDelete.system, func.count()).group_by(PendingDelete.system)
    ).all()
    return {str(system): int(n) for system, n in rows}
