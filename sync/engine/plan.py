"""``crmsync plan``: the real planner over a copy of the state, writing nothing anywhere.

It runs the real capture and merge (vendor reads only) against a throw-away copy of the
store — a file copy for SQLite, a transaction rolled back at the end for PostgreSQL — and
reports, per system and record, the fields a push would change and why. Reference
auto-creation is off (``dry_run``), and no outbox is drained.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from sync.connectors.errors import ConnectorError
from sync.engine import bindings, derived, first_run, money, unresolved
from sync.engine.capture import capture
from sync.engine.context import Counts, Engine
from sync.engine.outbound import desired, push_diff
from sync.mapping.errors import MappingError
from sync.store import journal, letters, links, outbox, records

#: how the merge journals values two systems held differently when their deals were matched
MATCHED = "held different values when matched"


@dataclass(frozen=True)
class PlannedWrite:
    system: str
    record_id: str
    op: str
    changes: dict[str, tuple[Any, Any]]  # field -> (their current value, the value to send)
    reason: str
    name: str | None = None


@dataclass(frozen=True)
class NotPlanned:
    """A deal the plan cannot say what will be written for, and why: a read the mapping
    cannot map (a stage it lacks), a write a vendor refused (dead letters), a push parked
    waiting for a reference or a currency."""

    system: str
    what: str  # "cannot be read" | "refused" | "parked"
    why: str
    record_id: str | None = None
    external_id: str | None = None
    name: str | None = None


@dataclass
class PlanReport:
    writes: list[PlannedWrite] = field(default_factory=list)
    #: what the plan leaves out, each with why (counted nowhere else)
    not_planned: list[NotPlanned] = field(default_factory=list)
    captured: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def _scratch(engine: Engine) -> Iterator[Engine]:
    url = engine.db.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        with tempfile.TemporaryDirectory(prefix="crmsync-plan-") as tmp:
            copy = Path(tmp) / "plan.db"
            with sqlite3.connect(str(url.database)) as src, sqlite3.connect(copy) as dst:
                src.backup(dst)
            scratch_db = sa.create_engine(f"sqlite:///{copy}")
            yield _clone(engine, scratch_db, None)
            scratch_db.dispose()
        return
    with engine.db.connect() as conn:
        outer = conn.begin()
        try:
            yield _clone(engine, engine.db, conn)
        finally:
            outer.rollback()


def _clone(engine: Engine, db: sa.Engine, conn: sa.Connection | None) -> Engine:
    clone = Engine(
        config=engine.config,
        db=db,
        mapper=engine.mapper,
        transports=engine.transports,
        limiter=engine.limiter,
        retry=engine.retry,
        dry_run=True,
    )
    if conn is not None:
        clone._session_bind = conn
    return clone


def plan(engine: Engine, systems: list[str] | None = None) -> PlanReport:
    report = PlanReport()
    with _scratch(engine) as scratch:
        for system in systems or scratch.systems:
            try:
                report.captured[system] = _capture(scratch, system).values
            except Exception as exc:  # a vendor that cannot be read is reported, not fatal
                report.errors[system] = f"{type(exc).__name__}: {exc}"
        with _session(scratch) as session:
            report.writes = _planned(scratch, session)
            report.not_planned = _not_planned(session, systems)
            report.not_planned += _parked(report.writes)
            report.writes = [w for w in report.writes if w.op not in ("park", "unknown")]
        if first_run.creates_wait(scratch):  # the guided first run holds every write
            report.writes = [_waiting(w) for w in report.writes]
        scratch.close()
    return report


def _capture(engine: Engine, system: str) -> Counts:
    """The capture a cycle would run: nothing from a held system; a changed mapping or a
    system back in the config read completely and caught up (the backfill shows as writes)."""
    prepared = bindings.before_capture(engine, system)
    if prepared.held:
        raise SystemHeld(prepared.held)
    counts = capture(engine, system, rescan=prepared.full)
    counts.merge(bindings.after_capture(engine, system, prepared))
    return counts


class SystemHeld(Exception):
    """The system is held (``crmsync status`` says why): plan reads nothing from it."""


@contextlib.contextmanager
def _session(engine: Engine) -> Iterator[Session]:
    with engine.session() as session:
        yield session


def _planned(engine: Engine, session: Session) -> list[PlannedWrite]:
    rows = outbox.every_open(session)
    writes = []
    for row in rows:
        record = records.get(session, row.record_id)
        if record is None:
            continue
        name = record.fields.get("name")
        if row.status == "parked":  # waits for a reference (or a currency) to resolve
            why = f"waiting: {row.last_error or row.reason}"
            writes.append(PlannedWrite(row.system, row.record_id, "park", {}, why, name))
            continue
        link = links.of_record_in(session, row.record_id, row.system)
        reason = row.reason
        try:
            if row.op == "delete" or link is None:
                want = {} if row.op == "delete" else desired(engine, row.system, record)
                changes = {k: (None, v) for k, v in want.items() if v is not None}
                op = row.op if row.op == "delete" else "create"
            else:
                diff = push_diff(engine, row.system, record, link)
                if not diff:
                    continue
                derived.ride_along(engine, row.system, diff, desired(engine, row.system, record))
                _, waits = unresolved.vendor_payload(
                    engine, row.system, diff, for_create=False, held=link.shadow
                )
                reason += "".join(f"; {w.describe()}" for w in waits)
                changes = {k: (link.shadow.get(k), v) for k, v in diff.items()}
                op = "update" if diff else "wait"
                reason += _matched_differences(session, row.record_id, diff)
            sent = {name: new for name, (_, new) in changes.items()}
            reason += money.note_for(engine, row.system, record.fields, sent)
        except money.CurrencyMismatch as exc:  # the push would be parked: say why
            changes, op, reason = {}, "park", str(exc)
        except (MappingError, ConnectorError) as exc:  # e.g. Close's currency not readable
            changes, op, reason = {}, "unknown", f"{type(exc).__name__}: {exc}"
        writes.append(PlannedWrite(row.system, row.record_id, op, changes, reason, name))
    return writes


def _not_planned(session: Session, systems: list[str] | None) -> list[NotPlanned]:
    """The open dead letters after the scratch capture: reads that cannot be mapped, writes a
    vendor refused (each a deal no write is planned for until someone acts)."""
    found = []
    for letter in letters.in_status(session, "open", None):
        if systems and letter.system not in systems:
            continue
        record = records.get(session, letter.record_id) if letter.record_id else None
        found.append(
            NotPlanned(
                letter.system,
                "cannot be read" if letter.direction == "inbound" else f"{letter.op} refused",
                f"dead letter {letter.id}: {letter.error}",
                letter.record_id,
                letter.external_id,
                record.fields.get("name") if record else None,
            )
        )
    return found


def _parked(writes: list[PlannedWrite]) -> list[NotPlanned]:
    """Pushes that would be parked (a currency the system cannot hold) or cannot be mapped."""
    return [
        NotPlanned(
            w.system,
            "parked" if w.op == "park" else "cannot be planned",
            w.reason,
            w.record_id,
            None,
            w.name,
        )
        for w in writes
        if w.op in ("park", "unknown")
    ]


def waiting_updates(engine: Engine) -> list[PlannedWrite]:
    """The updates the outbox owes, from the store alone (no vendor read): while the first
    run waits for its review, what approval will write to deals already linked by an id
    whose values differed (``crmsync match`` shows them)."""
    with engine.read_session() as session:
        return [write for write in _planned(engine, session) if write.op == "update"]


def _matched_differences(session: Session, record_id: str, fields: Iterable[str]) -> str:
    """For values two systems held differently when their deals were matched (linked by an
    id on the first run): the policy that chose the one this write sends, from the journal."""
    wanted, why = set(fields), {}
    for entry in reversed(journal.of_record(session, record_id)):  # the newest word first
        if entry.field in wanted and entry.field not in why and MATCHED in entry.reason:
            why[entry.field] = entry.reason
    return "".join(f"; {name}: {reason}" for name, reason in sorted(why.items()))


def _waiting(write: PlannedWrite) -> PlannedWrite:
    return PlannedWrite(
        write.system,
        write.record_id,
        write.op,
        write.changes,
        f"{write.reason}; waits for the first-run match (crmsync match --approve)",
        write.name,
    )
