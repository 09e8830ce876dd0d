"""Queries on ``ref_maps`` (canonical key <-> vendor id per system and kind). Every function
takes the caller's session and leaves the transaction to it."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlmodel import Session, col, select

from sync.store.db import insert_ignoring
from sync.store.models import RefMap

_COLUMNS = ("system", "kind", "key", "vendor_id", "source", "updated_at")


def every(session: Session) -> Sequence[RefMap]:
    """Every stored reference, all systems and kinds."""
    return session.exec(select(RefMap)).all()


def move_system(session: Session, source: str, target: str) -> None:
    """Move every reference of ``source`` to the system name ``target``."""
    session.execute(sa.update(RefMap).where(col(RefMap.system) == source).values(system=target))


def of_kind(session: Session, kind: str) -> Sequence[RefMap]:
    """Every stored reference of one kind (``company``: the company links), all systems."""
    return session.exec(select(RefMap).where(col(RefMap.kind) == kind)).all()


def store_learnt(session: Session, rows: Sequence[RefMap]) -> None:
    """Store references learnt during a run, one statement. One another worker process
    stored meanwhile (every process learns the same company links) is left as stored: the
    unique key failing made the whole transaction apply again row by row."""
    table = RefMap.__table__  # type: ignore[attr-defined]
    values = [{name: getattr(row, name) for name in _COLUMNS} for row in rows]
    insert_ignoring(session, table, values, ("system", "kind", "key"))
