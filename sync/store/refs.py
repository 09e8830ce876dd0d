"""Queries on ``ref_maps`` (canonical key <-> vendor id per system and kind). Every function
takes the caller's session and leaves the transaction to it."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from sync.store.models import RefMap


def every(session: Session) -> Sequence[RefMap]:
    """Every stored reference, all systems and kinds."""
    return session.exec(select(RefMap)).all()


def move_system(session: Session, source: str, target: str) -> None:
    """Move every reference of ``source`` to the system name ``target``."""
    session.execute(sa.update(RefMap).where(col(RefMap.system) == source).values(system=target))


def of_kind(session: Session, kind: str) -> Sequence[RefMap]:
    """Every stored reference of one kind (``company``: the company links), all systems."""
    return session.exec(select(RefMap).where(col(RefMap.kind) == kind)).all()


def insert_learnt(session: Session, rows: Sequence[RefMap]) -> None:
    """Store references learnt meanwhile (one statement); a key already stored for the system
    and kind keeps its row. Another process (a second drain of the system, a poll) learns the
    same company at the same time, or did since this one read the map: first come keeps it,
    as the map's unique key says, where a plain insert failed the caller's whole transaction."""
    if not rows:
        return
    values = [
        {c: getattr(row, c) for c in ("system", "kind", "key", "vendor_id", "source", "updated_at")}
        for row in rows
    ]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert = dialect.insert(RefMap).values(values)
    session.execute(insert.on_conflict_do_nothing(index_elements=["system", "kind", "key"]))
