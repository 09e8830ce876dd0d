"""Queries on ``ref_maps`` (canonical key <-> vendor id per system and kind). Every function
takes the caller's session and leaves the transaction to it."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
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
