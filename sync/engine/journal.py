"""Small helpers that write the journal, conflicts, dead letters and outbox rows.

The questions they ask of the store live in ``sync.store`` (``journal``, ``letters``,
``outbox``); ``OPEN_STATES`` is the outbox's, named here too for the engine modules that
import it from this one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from sqlmodel import Session

from sync.store import journal, letters, outbox
from sync.store.models import DeadLetter, Journal, Outbox
from sync.store.outbox import OPEN_STATES as OPEN_STATES
from sync.timefmt import utcnow


def entry(
    record_id: str,
    action: str,
    reason: str,
    *,
    system: str | None = None,
    field: str | None = None,
    old: Any = None,
    new: Any = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """The columns of one journal entry (what happened to a record, from where, and why)."""
    return {
        "record_id": record_id,
        "action": action,
        "reason": reason[:1000],
        "system": system,
        "field": field,
        "old": old,
        "new": new,
        "run_id": run_id,
        "at": utcnow(),
    }


def push_reason(fields: Iterable[str], provenance: Mapping[str, Any], fallback: str) -> str:
    """Why a push sends ``fields``: the system each value came from (the record's provenance),
    e.g. ``changed in close (amount) and parsalink (description)``.

    The outbox row's own reason names only the last capture that touched the record, which
    is not where every value it carries came from. ``fallback`` when no field has a source."""
    by_source: dict[str, list[str]] = {}
    for name in sorted(fields):
        source = (provenance.get(name) or {}).get("system")
        if source:
            by_source.setdefault(str(source), []).append(name)
    if not by_source:
        return fallback
    parts = [f"{source} ({', '.join(names)})" for source, names in by_source.items()]
    return "changed in " + " and ".join(parts)


def note(session: Session, record_id: str, action: str, reason: str, **details: Any) -> None:
    """Add one journal entry; ``details`` are :func:`entry`'s keywords."""
    session.add(Journal(**entry(record_id, action, reason, **details)))


class Notes:
    """Journal entries gathered over a batch and inserted with one statement when written: a
    batch of pushes journals thousands, and building an ORM object for each costs more than
    the insert. Entries are inserted in the order they were added."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, record_id: str, action: str, reason: str, **details: Any) -> None:
        """Gather one entry; ``details`` are :func:`entry`'s keywords."""
        self.rows.append(entry(record_id, action, reason, **details))

    def write(self, session: Session) -> None:
        """Insert the gathered entries in ``session``'s transaction."""
        if self.rows:
            journal.insert_many(session, self.rows)
            self.rows = []


def dead_letter(
    session: Session,
    *,
    system: str,
    direction: str,
    op: str,
    error: str,
    payload: Any = None,
    record_id: str | None = None,
    external_id: str | None = None,
) -> DeadLetter:
    """Park something that failed for good, with the vendor's message and the payload."""
    existing = letters.find_open(session, system, record_id, external_id, op)
    if existing is not None:
        existing.error, existing.payload = error[:4000], payload
        existing.attempts += 1
        existing.updated_at = utcnow()
        session.add(existing)
        return existing
    letter = DeadLetter(
        system=system,
        direction=direction,
        op=op,
        error=error[:4000],
        payload=payload,
        record_id=record_id,
        external_id=external_id,
    )
    session.add(letter)
    return letter


def enqueue(session: Session, record_id: str, system: str, op: str, reason: str) -> Outbox:
    """One open outbox row per (record, system): reuse it (coalescing) or add one.

    A delete supersedes a pending create/update; a create stays a create."""
    row = outbox.open_row(session, record_id, system)
    return enqueue_into(session, row, record_id, system, op, reason)


def open_rows(session: Session, record_id: str) -> dict[str, Outbox]:
    """The open outbox rows of one record, by system (one query for every system)."""
    rows = outbox.open_rows_of_record(session, record_id)
    return {row.system: row for row in rows}


def outbox_row(
    record_id: str, system: str, op: str, reason: str, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Every column of a new outbox row (capture inserts a page's rows in one statement, all
    queued at one ``now``: the stamp is then bound once for the page)."""
    now = now or utcnow()
    return {
        "record_id": record_id,
        "system": system,
        "op": op,
        "status": "pending",
        "reason": reason[:500],
        "attempts": 0,
        "next_attempt_at": now,
        "intent_at": None,
        "intent": None,
        "idempotency_key": f"{record_id}:{system}",
        "waiting": None,
        "last_error": None,
        "claimed_by": None,
        "claimed_until": None,
        "created_at": now,
        "updated_at": now,
    }


def enqueue_into(
    session: Session, row: Outbox | None, record_id: str, system: str, op: str, reason: str
) -> Outbox:
    """:func:`enqueue` given the open row of (record, system) already looked up (or None)."""
    if row is None:
        row = Outbox(**outbox_row(record_id, system, op, reason))
    else:
        if op == "delete" or row.op not in ("create",):
            row.op = op
        row.reason = reason[:500]
        if row.status == "parked":
            row.status = "pending"
        row.updated_at = utcnow()
    session.add(row)
    return row
