"""Step 1 of a drain: claim outbox rows, load a batch's rows, records and links, compute each
diff and payload, and commit the creates' intents (and updates in doubt) before any request
leaves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sqlmodel import Session

from sync.connectors.base import VendorRecord
from sync.connectors.errors import (
    ConnectorError,
)
from sync.engine import derived, money, unresolved
from sync.engine.context import Engine
from sync.engine.intents import in_doubt
from sync.engine.journal import Notes, push_reason
from sync.engine.outbound import Canonical, desired, push_diff
from sync.engine.unresolved import Waiting
from sync.mapping.errors import MappingError, UnresolvedReference
from sync.store import claims as stored_claims
from sync.store import links as stored_links
from sync.store import records as stored_records
from sync.store.models import Link
from sync.timefmt import utcnow

Kind = Literal["create", "update", "delete", "done"]


@dataclass
class _Job:
    """One claimed row as prepared: what to send, and what it was sent against."""

    row_id: int
    record_id: str
    system: str
    op: str
    reason: str
    #: the row's ``updated_at`` when prepared: a later value means it was re-enqueued
    stamp: dt.datetime
    idempotency_key: str
    kind: Kind = "done"
    #: for ``done``: the outcome decided without a vendor call (skipped, unchanged)
    outcome: str = "skipped"
    external_id: str | None = None
    diff: dict[str, Any] = field(default_factory=dict)
    wanted: dict[str, Any] = field(default_factory=dict)
    payload: dict[str, Any] | None = None
    #: create whose earlier outcome is unknown: look the deal up before sending
    recover: bool = False
    #: create whose earlier outcome is unknown, sent again as is (``resends_plainly``) to a
    #: vendor where the first create that lands makes the deal: what that one sent stays the
    #: row's intent (an adopted deal's base), not what this one sends
    keep_intent: bool = False
    intent_at: dt.datetime | None = None
    #: what the earlier attempt sent (``Outbox.intent``): a recovery looks for a deal like it
    intent_sent: dict[str, Any] | None = None
    name: Any = None
    #: an error found while preparing (an unresolvable reference, a mapping error)
    error: Exception | None = None
    #: references left out of the write (``engine.unresolved``): the row waits for them
    waiting: list[Waiting] = field(default_factory=list)
    run_id: str | None = None


@dataclass
class _Result:
    job: _Job
    answer: VendorRecord | None = None
    after: dict[str, Any] = field(default_factory=dict)  # the answer in canonical form
    adopted: bool = False
    error: Exception | None = None


def claim(engine: Engine, system: str, limit: int, *, creates: bool = True) -> list[int]:
    """Claim due rows of one system's outbox; returns their ids."""
    now = utcnow()
    if stored_claims.locks_rows(engine.db):
        with engine.session() as session:
            ids = stored_claims.lock_due(session, system, now, limit, creates=creates)
            if ids:
                stored_claims.claim_rows(session, ids, engine.worker_id, engine.claims.until())
            session.commit()
    else:
        ids = _claim_read_first(engine, system, now, limit, creates=creates)
    # short claims, renewed while this process lives (sync.engine.claims)
    engine.claims.hold(ids)
    engine.claims.renew_if_due()
    return ids


#: fresh snapshots a claim reads, on SQLite, while other processes take every row it found
CLAIM_TRIES = 5


def _claim_read_first(
    engine: Engine, system: str, now: dt.datetime, limit: int, *, creates: bool
) -> list[int]:
    """SQLite: the due rows are found on a snapshot, outside the write lock (inside it each
    row a query returns hands the GIL over once, behind the send threads); the claim re-checks
    that they are still due. Rows another process claimed meanwhile are left to it; should it
    have taken all, the due rows are read again (a drain that came back empty-handed would
    end while rows are still due)."""
    for _ in range(CLAIM_TRIES):
        with engine.read_session() as session:
            due = stored_claims.lock_due(session, system, now, limit, creates=creates)
        if not due:
            return []
        with engine.session() as session:
            until = engine.claims.until()
            ids = stored_claims.claim_if_due(
                session, due, engine.worker_id, now, until, creates=creates
            )
            session.commit()
        if ids:
            return ids
    return []


# --------------------------------------------------------------------------- 1. prepare


def prepare(engine: Engine, system: str, ids: Sequence[int], run_id: str | None) -> list[_Job]:
    """Load claimed rows with their records and links (one query each), decide what each
    needs, and make the creates' intents durable. Rows no longer ours are left out."""
    with engine.read_session() as session:
        rows, records, links = _load(session, system, ids)
    jobs: list[_Job] = []
    for row_id in ids:
        row = rows.get(row_id)
        if row is None or row.status != "in_flight" or row.claimed_by != engine.worker_id:
            continue
        job = _Job(
            row_id=row_id,
            record_id=row.record_id,
            system=row.system,
            op=row.op,
            reason=row.reason,
            stamp=row.updated_at,
            idempotency_key=row.idempotency_key,
            intent_at=row.intent_at,
            intent_sent=row.intent,
            run_id=run_id,
        )
        try:
            _plan(engine, job, records.get(row.record_id), links.get(row.record_id))
        except (MappingError, UnresolvedReference, ConnectorError) as exc:
            job.error = exc
        jobs.append(job)
    fresh = [job for job in jobs if job.kind == "create" and not job.recover and not job.error]
    if fresh:
        sendable = _commit_intents(engine, fresh, run_id)
        # by row id: ``job not in fresh`` compared whole dataclasses, O(batch²) field by field
        unsendable = {job.row_id for job in fresh} - sendable
        jobs = [job for job in jobs if job.row_id not in unsendable]
    updates = [job for job in jobs if job.kind == "update" and not job.error]
    if updates:
        _commit_doubts(engine, updates)
    return jobs


def _commit_doubts(engine: Engine, jobs: Sequence[_Job]) -> None:
    """Record what each update sends on its row before it leaves (``intents``: updates in
    doubt), one statement for the batch. A row taken from us since ``prepare`` checked it is
    left alone; sending its update twice is harmless (same values), unlike a create."""
    with engine.session() as session:
        stored_claims.record_doubts(
            session,
            engine.worker_id,
            [(job.row_id, in_doubt(_doubts_of(job), job.diff)) for job in jobs],
        )
        session.commit()


def _doubts_of(job: _Job) -> dict[str, Any] | None:
    """The earlier in-doubt values of an update row (a create row's intent is not that)."""
    return job.intent_sent if job.intent_at is None else None


def _load(
    session: Session, system: str, ids: Iterable[int]
) -> tuple[dict[int, Any], dict[str, _Planned], dict[str, Link]]:
    """The rows, their records and their links in ``system``: a query each for a whole batch
    (records in two when some are linked and some not: a create never reads the record's
    provenance, the largest of its columns, so only the linked ones load it)."""
    rows = {row.id: row for row in stored_claims.prepare_view(session, list(ids))}
    record_ids = list({row.record_id for row in rows.values()})
    if not record_ids:
        return rows, {}, {}
    links = {
        link.record_id: link for link in stored_links.of_records_in(session, system, record_ids)
    }
    records: dict[str, _Planned] = {}
    for linked in (True, False):
        wanted = [record_id for record_id in record_ids if (record_id in links) == linked]
        if wanted:
            view = stored_records.plan_view(session, wanted, provenance=linked)
            records.update((record.id, record) for record in view)
    return rows, records, links


class _Planned(Canonical, Protocol):
    """What planning a push reads of a record (``records.plan_view``; ``provenance`` None for
    a record not linked in the system: its create does not read it)."""

    id: str
    provenance: dict[str, Any]


def _plan(engine: Engine, job: _Job, record: _Planned | None, link: Link | None) -> None:
    """Fill in what the job sends (or decide it needs no call); may raise MappingError."""
    if record is None:
        return
    if job.op == "delete":
        if link is not None and link.deleted_at is None:
            job.kind, job.external_id = "delete", link.external_id
        return
    if record.deleted_at is not None or (link is not None and link.deleted_at is not None):
        return
    if engine.dry_run:
        raise RuntimeError("dry run must not write")  # plan never drains; belt and braces
    if link is None:
        job.kind, job.name = "create", record.fields.get("name")
        job.wanted = desired(engine, job.system, record)
        job.reason += money.note_for(engine, job.system, record.fields, job.wanted)
        again = job.intent_at is not None
        job.recover = again and not resends_plainly(engine, job.system)
        first_wins = engine.connector(job.system).idempotent_by_record_id
        job.keep_intent = again and not job.recover and first_wins and bool(job.intent_sent)
        if not job.recover:
            job.payload = _create_payload(engine, job)
        return
    diff = push_diff(engine, job.system, record, link)
    if not diff:
        job.outcome = "unchanged"
        return
    riders = derived.ride_along(engine, job.system, diff, desired(engine, job.system, record))
    payload, job.waiting = unresolved.vendor_payload(
        engine, job.system, diff, for_create=False, held=link.shadow
    )
    if not diff:  # nothing but references unknown there: nothing to send yet
        job.outcome = "parked"
        return
    job.kind, job.external_id, job.diff = "update", link.external_id, diff
    job.reason = push_reason(diff, record.provenance, job.reason)  # who won each value
    if riders:
        job.reason += f"; {derived.sent_with(riders, diff)}"
    job.reason += money.note_for(engine, job.system, record.fields, diff)
    job.payload = payload


def resends_plainly(engine: Engine, system: str) -> bool:
    """Whether a create whose outcome is unknown is simply sent again, with no look-up: the
    vendor makes one deal of it however often it is sent — by an upsert on our key
    (``idempotent_creates``: Salesforce), or because the mapping writes crmsync's id to the
    property the vendor keeps unique (``idempotent_by_record_id``: HubSpot's answers name the
    deal that holds it, to adopt)."""
    connector = engine.connector(system)
    if connector.idempotent_creates:
        return True
    unique = connector.record_id_property
    return connector.idempotent_by_record_id and unique in engine.mapper.record_id_paths(system)


def _create_payload(engine: Engine, job: _Job) -> dict[str, Any]:
    """The create's payload; an owner unknown there is left out of it (and of ``wanted``, so
    what the vendor assigns is not taken for its copy of ours) or sent as its fallback."""
    fields = {k: v for k, v in job.wanted.items() if v is not None}
    payload, job.waiting = unresolved.vendor_payload(
        engine, job.system, fields, for_create=True, record_id=job.record_id
    )
    for waiting in job.waiting:
        if waiting.field in fields:
            job.wanted[waiting.field] = fields[waiting.field]  # the fallback
        else:
            job.wanted.pop(waiting.field, None)
    return payload


def _commit_intents(engine: Engine, jobs: Sequence[_Job], run_id: str | None) -> set[int]:
    """Journal the creates' intents in one transaction; returns the rows that are still ours
    (only those may be sent)."""
    now = utcnow()
    with engine.session() as session:
        ours = stored_claims.mark_intents(
            session, [job.row_id for job in jobs], engine.worker_id, now
        )
        if ours:  # what each create sends: a capture meeting its deal first adopts it by this
            stored_claims.set_intents(
                session,
                [
                    (job.row_id, (job.keep_intent and job.intent_sent) or job.wanted)
                    for job in jobs
                    if job.row_id in ours
                ],
            )
        notes = Notes()
        for job in jobs:
            if job.row_id in ours:
                job.intent_at = now
                notes.add(
                    job.record_id,
                    "create_intent",
                    f"creating in {job.system}: {job.reason}",
                    system=job.system,
                    new={k: v for k, v in job.wanted.items() if v is not None},
                    run_id=run_id,
                )
        notes.write(session)
        session.commit()
    return ours
