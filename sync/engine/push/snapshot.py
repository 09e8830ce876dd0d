"""Step 3 of a drain, read first: an apply's reads and decisions made on a read snapshot,
before the store's write lock; the write transaction then only checks that what it read still
holds, and writes.

On SQLite the write lock is the whole file's, and its holder competes for the GIL with every
send thread and every other drain: an apply that read its rows, records and links and decided
each outcome inside the lock held it ~3× its own CPU, while the other drains queued behind it
with nothing to send (issue 25). Here the lock covers a re-check of the outbox rows (status,
claim, ``updated_at``: one indexed query) and of the links an update rewrites, then the writes.

Nothing is given up for it. A row that moved since the snapshot — re-enqueued by a capture,
taken by another worker after our claim ran out, a link whose shadow a capture moved — makes
:func:`write` give the group back untouched (``None``), and ``apply`` applies it the way it
always did, reading under the lock. A create's new link still meets the unique constraints
(a capture that linked the deal meanwhile: ``IntegrityError``, and ``apply`` goes row by row).
Only plain outcomes are applied this way — done, created, updated, retried, parked; a dead
letter, a 404 or a delete writes more than the applier gathers (``plain``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlmodel import Session

from sync.connectors.errors import ConnectorError, NotFound, Rejected
from sync.engine.context import Engine
from sync.engine.letters import outbound_open
from sync.engine.push import rows as outbox_rows
from sync.engine.push.applier import Identity, _Applier
from sync.engine.push.prepare import _Result
from sync.mapping.errors import UnresolvedReference
from sync.store import claims as stored_claims
from sync.store import links as stored_links
from sync.store import records as stored_records
from sync.store import refs as stored_refs
from sync.store.models import Link, RefMap

log = structlog.get_logger("crmsync.push")


@dataclass
class Loaded:
    """What applying a group of outcomes reads: their rows, the records whose create landed
    (whole where the target gave the deal ids, else only whether they exist) and the links of
    their records in the system."""

    rows: dict[int, outbox_rows.Row]
    records: dict[str, Identity]
    links: dict[str, Link]
    alive: set[str]


def load(session: Session, results: Sequence[_Result]) -> Loaded:
    """Read what applying ``results`` needs (a query each)."""
    # Records matter only where a create landed (its new link): whole where the target gave
    # the deal ids (its identity may grow), otherwise only whether it is still there.
    landed = [r for r in results if r.job.kind == "create" and r.answer is not None]
    wanted = {r.job.record_id for r in landed if r.after.get("external_ids")}
    rows = outbox_rows.load(session, [r.job.row_id for r in results])
    record_ids = list({row.record_id for row in rows.values()})
    found = stored_records.fields_of(session, list(wanted)) if wanted else {}
    records = {record_id: Identity(record_id, fields) for record_id, fields in found.items()}
    system = results[0].job.system
    links = {
        link.record_id: link for link in stored_links.of_records_in(session, system, record_ids)
    }
    alive = stored_records.existing(session, {r.job.record_id for r in landed} - wanted)
    return Loaded(rows, records, links, alive)


def plain(result: _Result) -> bool:
    """Whether applying ``result`` writes only what the applier gathers (no dead letter, no
    404 policy, no delete)."""
    exc = result.error
    if exc is None:
        return result.job.kind in ("done", "create", "update")
    if isinstance(exc, UnresolvedReference):
        return True
    return isinstance(exc, ConnectorError) and not isinstance(exc, (NotFound, Rejected))


@dataclass
class Planned:
    """A group's outcomes decided on a snapshot, with what the snapshot held of everything
    the writes depend on."""

    applier: _Applier
    outcomes: list[str]
    rows: dict[int, tuple[Any, ...]]
    links: dict[int, tuple[Any, ...]]
    fields: dict[str, dict[str, Any]]
    letters: bool


def _row_version(row: outbox_rows.Row) -> tuple[Any, ...]:
    return tuple(getattr(row, name) for name in stored_claims.VERSION_COLUMNS)


def _link_state(link: Link) -> tuple[Any, ...]:
    return (link.shadow, link.sent, link.vendor_modified, link.deleted_at, link.filtered_at)


def plan(engine: Engine, session: Session, results: Sequence[_Result]) -> Planned | None:
    """Decide every outcome of ``results`` on a read snapshot; None when one of them is not
    ``plain``. ``session``, the write session to come, must not have begun: the applier holds
    it for ``write`` and decides without a statement (nothing here takes the write lock)."""
    if not results or not all(plain(result) for result in results):
        return None
    system = results[0].job.system
    with engine.read_session() as read:
        loaded = load(read, results)
        letters = outbound_open(read, system, {r.job.record_id for r in results})
    # the snapshot's values, before the outcomes change them (each change assigns anew)
    rows = {row_id: _row_version(row) for row_id, row in loaded.rows.items()}
    links = {link.id: _link_state(link) for link in loaded.links.values() if link.id is not None}
    fields = {record_id: record.fields for record_id, record in loaded.records.items()}
    applier = _Applier(engine, session, loaded.rows, loaded.records, loaded.links, loaded.alive)
    outcomes = [applier.apply(result) for result in results]
    return Planned(applier, outcomes, rows, links, fields, letters)


def write(planned: Planned, results: Sequence[_Result], taken: Sequence[RefMap]) -> bool:
    """Write what ``planned`` decided, with the references learnt meanwhile (``taken``), in
    its session's transaction, and commit — once the rows, links and records it read are
    found unchanged; otherwise roll back and return False (nothing written)."""
    applier = planned.applier
    session = applier.session
    if not _unchanged(session, planned):
        session.rollback()
        log.info("apply_raced", system=results[0].job.system, rows=len(results))
        return False
    if planned.letters:  # a deal with an open letter landed: close it (usually none)
        applier.resolve_letters(results)
    applier.write()
    stored_refs.store_learnt(session, taken)
    session.commit()
    return True


def _unchanged(session: Session, planned: Planned) -> bool:
    """Whether the rows, the links about to be rewritten and the records whose identity grows
    hold what the snapshot read (on PostgreSQL the rows and links are locked, in id order,
    until the commit)."""
    if not stored_claims.unchanged(session, planned.rows):
        return False
    touched = sorted(link.id for link in planned.applier.touched if link.id is not None)
    if touched:
        states = stored_links.states(session, touched)
        if states != {link_id: planned.links[link_id] for link_id in touched}:
            return False
    grown = [record.id for record in planned.applier.reindex]
    if grown:
        now = stored_records.fields_of(session, grown)
        if now != {record_id: planned.fields[record_id] for record_id in grown}:
            return False
    return True
