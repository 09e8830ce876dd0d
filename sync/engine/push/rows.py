"""The outbox rows as step 3 of a drain (apply) reads and settles them: a few columns read
in one query, the columns each outcome changes written back one statement per kind of
change — no ORM object per row (loading them and flushing their changes cost more than the
rest of an apply)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from sync.store import claims as stored_claims


@dataclass
class Row:
    """One outbox row being settled: the columns apply reads, and every column it sets
    (``changed``: what ``write`` stores)."""

    id: int
    record_id: str
    system: str
    op: str
    status: str
    attempts: int
    intent: dict[str, Any] | None
    intent_at: dt.datetime | None
    claimed_by: str | None
    updated_at: dt.datetime
    created_at: dt.datetime
    waiting: list[Any] | None  # the references a parked row waits for (read: journaled once)
    # written, never read: not loaded
    claimed_until: dt.datetime | None = None
    next_attempt_at: dt.datetime | None = None
    last_error: str | None = None
    changed: dict[str, Any] = field(default_factory=dict)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name != "changed" and "changed" in self.__dict__:  # set after __init__: a change
            self.changed[name] = value

    def scratch(self) -> Row:
        """A copy whose changes are never written (a row another worker took meanwhile)."""
        return Row(**{k: v for k, v in vars(self).items() if k != "changed"})


def load(session: Session, ids: Iterable[int]) -> dict[int, Row]:
    """The rows ``ids`` that exist, by id (one query)."""
    return {
        int(values[0]): Row(*values) for values in stored_claims.settle_view(session, list(ids))
    }


def write(session: Session, rows: Sequence[Row]) -> None:
    """Store what changed on each row (one statement per set of changed columns), and
    forget the changes."""
    stored_claims.write_changes(session, [(row.id, row.changed) for row in rows if row.changed])
    for row in rows:
        row.changed = {}
