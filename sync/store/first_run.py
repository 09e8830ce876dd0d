"""The ``first_run`` row (one, ``key = "store"``): the guided first run's state.

Every function takes the caller's session and leaves the transaction to it."""

from __future__ import annotations

from sqlmodel import Session

from sync.store.models import FirstRun

KEY = "store"


def get(session: Session, *, for_update: bool = False) -> FirstRun | None:
    """The row, if the first run was decided; ``for_update`` locks it (``SELECT … FOR
    UPDATE`` where the database has it) until the transaction ends."""
    if for_update:
        return session.get(FirstRun, KEY, with_for_update=True)
    return session.get(FirstRun, KEY)
