"""Push: drain one system's outbox (DESIGN §2.4–2.6).

Each row is claimed (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any number of workers can
drain one outbox without double sends), then:

- update: diff the canonical projection against the shadow and send only the changed fields;
  the shadow is then set from the vendor's answer for the fields sent;
- create: journal the intent *before* sending; if an earlier attempt's outcome is unknown, look
  the deal up in the target first and adopt it — no retry ever duplicates a deal;
- delete: delete in the target (a 404 is success: it is gone).

Failures: a 4xx goes to dead letters with the vendor's message (the run goes on); a 404 on
update is a delete in the target (its policy applies); transient errors and 429s wait with
exponential backoff (or the vendor's signal); an unresolvable reference parks the row.

No transaction is open while a vendor answers. A drain works in three steps per claimed batch:

1. *prepare* (the draining thread): load the batch's rows, records and links in three queries,
   compute each diff and payload, and commit the intents of the batch's creates in one
   transaction — an intent is durable before its request leaves;
2. *send* (a bounded pool of threads, ``systems.<name>.concurrency``): the vendor call, and the
   vendor's answer mapped to canonical fields; no session is open (except a create recovery's
   look-up and its fresh intent);
3. *apply* (the draining thread): the outcomes that arrived, in one short write transaction:
   shadows from the answers, journal, outbox status, dead letters, retries, the 404 policy.
   Each row is re-checked: still claimed by us, and not re-enqueued meanwhile (a capture
   changed the deal while it was in flight: the row goes back to ``pending`` and is diffed
   again). A row that loses a race (a unique link) is put back for a soon retry.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa
import structlog
from sqlmodel import Session, col, select

from sync.connectors.base import VendorRecord
from sync.connectors.errors import (
    AuthFailed,
    ConnectorError,
    NotFound,
    RateLimited,
    Rejected,
)
from sync.engine import first_run, money
from sync.engine.bindings import push_blocked
from sync.engine.deletes import vendor_deleted
from sync.engine.identity import index_keys
from sync.engine.intents import Intent, adopted_base, best_intent, in_doubt, similarity
from sync.engine.journal import Notes, dead_letter, note, push_reason
from sync.engine.letters import resolve_pushed
from sync.engine.outbound import desired, push_diff
from sync.engine.state import Counts, Engine, aware_utc, to_utc
from sync.mapping.errors import MappingError, UnresolvedReference
from sync.store.db import supports_threads
from sync.store.models import Cursor, Link, Outbox, Record, utcnow

log = structlog.get_logger("crmsync.push")
MAX_BACKOFF = 3600.0
#: how far before a create intent we look for the deal it may have made (vendor clock skew)
RECOVERY_SLACK = dt.timedelta(minutes=10)
#: outcomes are applied together once this many arrived, or the oldest waited ``FLUSH_SECONDS``
#: (fewer commits; a record's journal entry is late by at most that)
APPLY_GROUP = 32
FLUSH_SECONDS = 0.05

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
    intent_at: dt.datetime | None = None
    #: what the earlier attempt sent (``Outbox.intent``): a recovery looks for a deal like it
    intent_sent: dict[str, Any] | None = None
    name: Any = None
    #: an error found while preparing (an unresolvable reference, a mapping error)
    error: Exception | None = None
    run_id: str | None = None


@dataclass
class _Result:
    job: _Job
    answer: VendorRecord | None = None
    after: dict[str, Any] = field(default_factory=dict)  # the answer in canonical form
    adopted: bool = False
    error: Exception | None = None


def initial_capture_done(engine: Engine) -> bool:
    """Creates wait until every system has been read once, so a deal that exists in a system
    not yet read is matched (e.g. by Salesforce id) instead of duplicated."""
    with engine.read_session() as session:
        polled = session.exec(select(Cursor).where(col(Cursor.last_poll_at).is_not(None))).all()
    return {c.system for c in polled} >= set(engine.systems)


def claim(engine: Engine, system: str, limit: int, *, creates: bool = True) -> list[int]:
    """Claim due rows of one system's outbox; returns their ids."""
    now = utcnow()
    with engine.session() as session:
        query = (
            select(Outbox.id)
            .where(
                Outbox.system == system,
                sa.or_(
                    sa.and_(
                        col(Outbox.status).in_(("pending", "retry", "parked")),
                        col(Outbox.next_attempt_at) <= now,
                    ),
                    sa.and_(col(Outbox.status) == "in_flight", col(Outbox.claimed_until) < now),
                ),
            )
            .order_by(col(Outbox.next_attempt_at), col(Outbox.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if not creates:
            query = query.where(Outbox.op != "create")
        ids = [row_id for row_id in session.exec(query).all() if row_id is not None]
        if ids:
            session.execute(
                sa.update(Outbox)
                .where(col(Outbox.id).in_(ids))
                .values(
                    status="in_flight",
                    claimed_by=engine.worker_id,
                    claimed_until=engine.claims.until(),
                )
            )
        session.commit()
    # short claims, renewed while this process lives (sync.engine.claims)
    engine.claims.hold(ids)
    engine.claims.renew_if_due()
    return ids


def drain(
    engine: Engine,
    system: str,
    *,
    batch: int = 50,
    run_id: str | None = None,
    max_rows: int | None = None,
    concurrency: int | None = None,
) -> Counts:
    """Push every due row of one system's outbox, up to ``concurrency`` (default: the system's
    ``concurrency`` setting) vendor calls at a time. Returns counts (pushed, created, …).
    Nothing is pushed to a held system (``sync.engine.bindings.push_blocked``)."""
    if (blocked := push_blocked(engine, system)) is not None:
        log.info("drain_held", system=system, reason=blocked)
        return Counts()
    engine.refs.prime()
    workers = concurrency or engine.config.systems[system].concurrency
    if not supports_threads(engine.db):
        workers = 1  # one shared connection: sessions on two threads would share a transaction
    # creates wait for every system's first read, then for the first run's match (first_run)
    creates = initial_capture_done(engine) and first_run.creates_allowed(engine)
    drainer = _Drainer(engine, system, run_id, workers, creates)
    try:
        if workers == 1:
            return drainer.run_inline(batch, max_rows)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"push-{system}") as pool:
            return drainer.run(pool, batch, max_rows)
    finally:
        engine.claims.drop(drainer.ids)  # whatever this drain still held is settled or let go


class _Drainer:
    """One drain of one system: claims, prepares, hands sends to the pool, applies outcomes."""

    def __init__(
        self, engine: Engine, system: str, run_id: str | None, workers: int, creates: bool
    ) -> None:
        self.engine, self.system, self.run_id = engine, system, run_id
        self.workers, self.creates = workers, creates
        self.counts = Counts()
        self.claimed = 0
        self.ids: list[int] = []

    def _claim(self, batch: int, max_rows: int | None) -> list[_Job] | None:
        """The next batch, prepared; None when nothing more is due (or ``max_rows`` is met)."""
        limit = batch if max_rows is None else min(batch, max_rows - self.claimed)
        if limit <= 0:
            return None
        ids = claim(self.engine, self.system, limit, creates=self.creates)
        if not ids:
            return None
        self.claimed += len(ids)
        self.ids += ids
        jobs = prepare(self.engine, self.system, ids, self.run_id)
        self.engine.claims.drop(set(ids) - {job.row_id for job in jobs})  # no longer ours
        return jobs

    def run_inline(self, batch: int, max_rows: int | None) -> Counts:
        while (jobs := self._claim(batch, max_rows)) is not None:
            apply_results(
                self.engine, [send(self.engine, job, self.run_id) for job in jobs], self.counts
            )
        return self.counts

    def run(self, pool: ThreadPoolExecutor, batch: int, max_rows: int | None) -> Counts:
        inflight: dict[Future[_Result], _Job] = {}
        ready: list[_Result] = []
        first_ready = 0.0
        exhausted = False
        try:
            while True:
                # Keep the pool fed: claim the next batch while the last one is still sending.
                # Rows that need no call (unchanged) are applied a group at a time too.
                while not exhausted and len(inflight) <= self.workers and len(ready) < APPLY_GROUP:
                    jobs = self._claim(batch, max_rows)
                    if jobs is None:
                        exhausted = True
                        break
                    for job in jobs:
                        if job.kind == "done" or job.error is not None:
                            ready.append(_Result(job, error=job.error))
                        else:
                            inflight[pool.submit(send, self.engine, job, self.run_id)] = job
                    if ready and not first_ready:
                        first_ready = time.monotonic()
                if inflight:
                    # With outcomes waiting, wake up in time to apply them.
                    left = first_ready + FLUSH_SECONDS - time.monotonic()
                    timeout = max(0.0, left) if ready else None
                    finished, _ = wait(inflight, timeout=timeout, return_when=FIRST_COMPLETED)
                    if finished and not ready:
                        first_ready = time.monotonic()
                    for future in finished:
                        ready.append(future.result())  # raises a bug in send: see _abandon
                        del inflight[future]
                due = time.monotonic() - first_ready >= FLUSH_SECONDS
                if ready and (not inflight or len(ready) >= APPLY_GROUP or due):
                    apply_results(self.engine, ready, self.counts)
                    ready, first_ready = [], 0.0
                if exhausted and not inflight and not ready:
                    return self.counts
        except BaseException:
            self._abandon(inflight, ready)
            raise

    def _abandon(self, inflight: dict[Future[_Result], _Job], ready: list[_Result]) -> None:
        """The drain is failing: record what the vendors already did, put the rest back
        (the rows not sent, and those whose send failed unexpectedly, wait for a retry)."""
        unsent = [job.row_id for future, job in inflight.items() if future.cancel()]
        done, _ = wait([future for future in inflight if not future.cancelled()])
        results = ready + [f.result() for f in done if f.exception() is None]
        failed = [inflight[f].row_id for f in done if f.exception() is not None]
        with contextlib.suppress(Exception):
            apply_results(self.engine, results, self.counts)
        with contextlib.suppress(Exception):
            _release(self.engine, unsent + failed)


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
        jobs = [job for job in jobs if job not in fresh or job.row_id in sendable]
    updates = [job for job in jobs if job.kind == "update" and not job.error]
    if updates:
        _commit_doubts(engine, updates)
    return jobs


def _commit_doubts(engine: Engine, jobs: Sequence[_Job]) -> None:
    """Record what each update sends on its row before it leaves (``intents``: updates in
    doubt), one statement for the batch. A row taken from us since ``prepare`` checked it is
    left alone; sending its update twice is harmless (same values), unlike a create."""
    table = Outbox.__table__  # type: ignore[attr-defined]
    with engine.session() as session:
        session.execute(
            sa.update(table)
            .where(
                table.c.id == sa.bindparam("row"),
                table.c.status == "in_flight",
                table.c.claimed_by == engine.worker_id,
            )
            .values(intent=sa.bindparam("sent")),
            [{"row": job.row_id, "sent": in_doubt(job.intent_sent, job.diff)} for job in jobs],
        )
        session.commit()


def _load(
    session: Session, system: str, ids: Iterable[int], *, records_of: set[str] | None = None
) -> tuple[dict[int, Outbox], dict[str, Record], dict[str, Link]]:
    """The rows, their records (all, or only ``records_of``) and their links in ``system``:
    three queries for a whole batch."""
    rows = {
        row.id: row
        for row in session.exec(select(Outbox).where(col(Outbox.id).in_(list(ids)))).all()
        if row.id is not None
    }
    record_ids = list({row.record_id for row in rows.values()})
    if not record_ids:
        return rows, {}, {}
    wanted = record_ids if records_of is None else list(records_of)
    records = (
        {
            record.id: record
            for record in session.exec(select(Record).where(col(Record.id).in_(wanted))).all()
        }
        if wanted
        else {}
    )
    links = {
        link.record_id: link
        for link in session.exec(
            select(Link).where(Link.system == system, col(Link.record_id).in_(record_ids))
        ).all()
    }
    return rows, records, links


def _plan(engine: Engine, job: _Job, record: Record | None, link: Link | None) -> None:
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
        job.recover = job.intent_at is not None
        if not job.recover:
            job.payload = _create_payload(engine, job)
        return
    diff = push_diff(engine, job.system, record, link)
    if not diff:
        job.outcome = "unchanged"
        return
    job.kind, job.external_id, job.diff = "update", link.external_id, diff
    job.reason = push_reason(diff, record.provenance, job.reason)  # who won each value
    job.reason += money.note_for(engine, job.system, record.fields, diff)
    job.payload = engine.mapper.to_vendor(job.system, diff, engine.refs, for_create=False)


def _create_payload(engine: Engine, job: _Job) -> dict[str, Any]:
    fields = {k: v for k, v in job.wanted.items() if v is not None}
    return dict(
        engine.mapper.to_vendor(
            job.system, fields, engine.refs, for_create=True, record_id=job.record_id
        )
    )


def _commit_intents(engine: Engine, jobs: Sequence[_Job], run_id: str | None) -> set[int]:
    """Journal the creates' intents in one transaction; returns the rows that are still ours
    (only those may be sent)."""
    now = utcnow()
    with engine.session() as session:
        result = session.execute(
            sa.update(Outbox)
            .where(
                col(Outbox.id).in_([job.row_id for job in jobs]),
                col(Outbox.status) == "in_flight",
                col(Outbox.claimed_by) == engine.worker_id,
            )
            .values(intent_at=now, attempts=col(Outbox.attempts) + 1)
            .returning(col(Outbox.id))
        )
        ours = {row_id for (row_id,) in result.all()}
        if ours:  # what each create sends: a capture meeting its deal first adopts it by this
            table = Outbox.__table__  # type: ignore[attr-defined]
            session.execute(
                sa.update(table)
                .where(table.c.id == sa.bindparam("row"))
                .values(intent=sa.bindparam("sent")),
                [{"row": job.row_id, "sent": job.wanted} for job in jobs if job.row_id in ours],
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


# --------------------------------------------------------------------------- 2. send


def send(engine: Engine, job: _Job, run_id: str | None) -> _Result:
    """The vendor call of one job (any thread; no transaction open). Never raises for vendor
    or mapping errors: they travel in the result to be applied."""
    result = _Result(job, error=job.error)
    if job.kind == "done" or job.error is not None:
        return result
    connector = engine.connector(job.system)
    try:
        if job.kind == "delete":
            assert job.external_id is not None
            with contextlib.suppress(NotFound):  # already gone: that is what we wanted
                connector.delete(job.external_id)
            return result
        if job.kind == "update":
            assert job.external_id is not None and job.payload is not None
            result.answer = connector.update(job.external_id, job.payload)
        else:
            try:
                result.answer = _recover(engine, job) if job.recover else None
            except _AlreadyLinked:
                job.kind, job.outcome = "done", "adopted"
                return result
            result.adopted = result.answer is not None
            if result.answer is None:
                if job.recover and not _fresh_intent(engine, job, run_id):
                    job.kind, job.outcome = "done", "skipped"  # no longer ours: send nothing
                    return result
                assert job.payload is not None
                result.answer = connector.create(job.payload, idempotency_key=job.idempotency_key)
        result.after = engine.mapper.to_canonical(job.system, result.answer.data, engine.refs)
    except Rejected as exc:
        exc.payload = job.payload  # type: ignore[attr-defined]
        result.error = exc
    except (ConnectorError, MappingError) as exc:
        result.error = exc
    return result


def _fresh_intent(engine: Engine, job: _Job, run_id: str | None) -> bool:
    """A recovery found nothing: a new intent is durable before the create is sent again."""
    job.payload = _create_payload(engine, job)
    job.recover = False
    return job.row_id in _commit_intents(engine, [job], run_id)


class _AlreadyLinked(Exception):
    """The deal an unknown-outcome create made is already linked to the record that asked."""


def _recover(engine: Engine, job: _Job) -> VendorRecord | None:
    """An earlier create's outcome is unknown: find the deal it may have made and adopt it.
    By name first; when no free deal has the name (someone renamed it there meanwhile), every
    deal created since the intent is compared with what the create sent, by the rule capture
    uses for open intents (``intents.best_intent``)."""
    if job.intent_at is None:
        return None
    with engine.read_session() as session:
        linked = session.exec(
            select(Link.id).where(Link.system == job.system, Link.record_id == job.record_id)
        ).first()
    if linked is not None:
        raise _AlreadyLinked  # linked since this row was prepared (a capture adopted it)
    since = aware_utc(job.intent_at - RECOVERY_SLACK)
    assert since is not None
    connector = engine.connector(job.system)
    if job.name:
        free = _free_candidates(engine, job, connector.find_candidates(str(job.name), since))
        # Even one deal of that name must look like what was sent: two records of one name
        # may be created at once, and the other's deal is not ours to adopt.
        if found := _most_alike(engine, job, free):
            return found
    return _most_alike(
        engine, job, _free_candidates(engine, job, connector.find_candidates(None, since))
    )


def _free_candidates(
    engine: Engine, job: _Job, candidates: list[VendorRecord]
) -> list[VendorRecord]:
    """The candidates no other record holds; raises ``_AlreadyLinked`` when ours does."""
    if not candidates:
        return []
    with engine.read_session() as session:
        taken = dict(
            session.exec(
                select(Link.external_id, Link.record_id).where(
                    Link.system == job.system,
                    col(Link.external_id).in_([c.external_id for c in candidates]),
                )
            ).all()
        )
    if job.record_id in taken.values():
        raise _AlreadyLinked  # a capture met the deal first and adopted it for this record
    # a candidate carrying another deal's record id is that deal; ours wins outright
    free = [
        c
        for c in candidates
        if c.external_id not in taken
        and engine.mapper.record_id_of(job.system, c.data) in (None, job.record_id)
    ]
    own = [c for c in free if engine.mapper.record_id_of(job.system, c.data) == job.record_id]
    if engine.mapper.holds_record_id(job.system):
        return own  # our create carried our id: a deal without it is somebody else's
    return own or free


def _most_alike(engine: Engine, job: _Job, free: list[VendorRecord]) -> VendorRecord | None:
    """The free deal most like what the create sent, if one qualifies (``intents`` rule)."""
    assert job.intent_at is not None
    sent = {k: v for k, v in (job.intent_sent or job.wanted).items() if v is not None}
    intent = Intent(job.row_id, job.record_id, job.intent_at, sent)
    now = {job.record_id: job.wanted}  # the record may have been edited since
    best: tuple[VendorRecord, tuple[bool, float]] | None = None
    renames = 0  # candidates that qualify only as a rename of what was sent
    for candidate in free:
        full = (
            engine.connector(job.system).get(candidate.external_id)
            if candidate.partial
            else candidate
        )
        try:
            theirs = engine.mapper.to_canonical(job.system, full.data, engine.refs)
        except (MappingError, UnresolvedReference):
            continue
        match = best_intent([intent], theirs, to_utc(full.modified), now, to_utc(full.created))
        if match is None:
            continue
        rank = (any(similarity(s, theirs).name_agrees for s in (sent, job.wanted)), match[1])
        renames += not rank[0]
        if best is None or rank > best[1]:
            best = (full, rank)
    if best is None or (not best[1][0] and renames > 1):
        return None  # several renamed deals could be ours: none can be sure
    return best[0]


# --------------------------------------------------------------------------- 3. apply


def apply_results(engine: Engine, results: Sequence[_Result], counts: Counts) -> None:
    """Record the outcomes of several sends in one write transaction. Should one of them lose
    a race (a unique constraint), each is applied on its own savepoint instead and the loser is
    put back for a soon retry."""
    if not results:
        return
    taken = engine.refs.take_pending()
    try:
        with engine.session() as session:
            outcomes = _apply_all(engine, session, results, isolate=False)
            session.add_all(taken)
            session.commit()
    except sa.exc.IntegrityError:
        engine.refs.give_back(taken)
        taken = engine.refs.take_pending()
        with engine.session() as session:
            outcomes = _apply_all(engine, session, results, isolate=True)
            session.add_all(taken)
            try:
                session.commit()
            except sa.exc.IntegrityError:  # a learnt reference was stored meanwhile
                session.rollback()
                outcomes = _apply_all(engine, session, results, isolate=True)
                session.commit()
    for outcome in outcomes:
        counts.add(outcome)
    engine.claims.drop(r.job.row_id for r in results)


def _apply_all(
    engine: Engine, session: Session, results: Sequence[_Result], *, isolate: bool
) -> list[str]:
    # Records are only needed where a create landed (its identity, its new link).
    wanted = {r.job.record_id for r in results if r.job.kind == "create" and r.answer is not None}
    rows, records, links = _load(
        session, results[0].job.system, [r.job.row_id for r in results], records_of=wanted
    )
    applier = _Applier(engine, session, rows, records, links)
    if not isolate:
        # No flush between rows: the group's writes go out together at commit. A conflict
        # between rows surfaces there, and the group is re-applied row by row.
        with session.no_autoflush:
            outcomes = [applier.apply(result) for result in results]
            _resolve_letters(applier, results)
            applier.notes.write(session)
        return outcomes
    outcomes = []
    for result in results:
        try:
            with session.begin_nested():
                outcomes.append(applier.apply(result))
                applier.notes.write(session)
        except sa.exc.IntegrityError as exc:  # lost a race with a concurrent capture
            applier.notes = Notes()
            links.pop(result.job.record_id, None)
            row = session.get(Outbox, result.job.row_id)
            if row is not None:
                _release_row(row, f"concurrent change: {exc.orig}")
                session.add(row)
            outcomes.append("retries")
    _resolve_letters(applier, results)
    applier.notes.write(session)
    return outcomes


def _resolve_letters(applier: _Applier, results: Sequence[_Result]) -> None:
    """Close the dead letters of the deals that just went through (see ``letters``): their
    row is done (a row put back after losing a race is not)."""
    landed = set()
    for result in results:
        row = applier.rows.get(result.job.row_id)
        if result.error is None and row is not None and row.status == "done":
            landed.add(result.job.record_id)
    system, run_id = results[0].job.system, results[0].job.run_id
    resolve_pushed(applier.session, system, landed, applier.notes, run_id)


@dataclass
class _Applier:
    """Applies outcomes in one session, over the rows, records and links loaded for them."""

    engine: Engine
    session: Session
    rows: dict[int, Outbox]
    records: dict[str, Record]
    links: dict[str, Link]
    notes: Notes = field(default_factory=Notes)

    def apply(self, result: _Result) -> str:
        job = result.job
        row = self.rows.get(job.row_id)
        if row is None:
            return "skipped"
        ours = row.status == "in_flight" and row.claimed_by == self.engine.worker_id
        if not ours:
            # Our claim expired and another worker took the row: record what the vendor did
            # (never lose a created deal), leave the row to its new owner.
            if result.error is not None or job.kind == "done":
                return "skipped"
            row = Outbox.model_validate(row.model_dump())  # a detached scratch copy
        moved = row.updated_at != job.stamp
        try:
            return self._outcome(result, row)
        finally:
            if ours:
                row.claimed_by, row.claimed_until = None, None
                if moved and row.status == "done":
                    # Re-enqueued while in flight (a capture changed the deal): diff again.
                    row.status, row.next_attempt_at = "pending", utcnow()
                row.updated_at = utcnow()
                self.session.add(row)

    def _outcome(self, result: _Result, row: Outbox) -> str:
        exc, session = result.error, self.session
        if exc is None:
            row.status = "done"
            return self._success(result)
        if isinstance(exc, UnresolvedReference):
            _park(row, f"unresolved reference: {exc}")
            return "parked"
        if isinstance(exc, MappingError):
            _dead(session, row, str(exc), None)
            return "dead_letters"
        if isinstance(exc, Rejected):
            _dead(session, row, _vendor_words(exc), getattr(exc, "payload", None))
            return "dead_letters"
        if isinstance(exc, NotFound):
            link = self.links.get(result.job.record_id)
            return _not_found(self.engine, session, row, link, exc, result.job.run_id)
        assert isinstance(exc, ConnectorError)
        # RateLimited, OutcomeUnknown, Retryable, AuthFailed, anything else: retry later
        _retry(self.engine, row, exc)
        job = result.job
        if job.kind == "create" and not job.recover and isinstance(exc, (RateLimited, AuthFailed)):
            # the vendor refused the create before doing anything (no earlier attempt is in
            # doubt either: a recovery found nothing first), so the retry needs no look-up —
            # under a 429 storm look-ups would only add to the storm
            row.intent_at, row.intent = None, None
        return "retries"

    def _success(self, result: _Result) -> str:
        job = result.job
        link = self.links.get(job.record_id)
        if job.kind == "done":
            return job.outcome
        if job.kind == "delete":
            if link is not None and link.deleted_at is None:
                link.deleted_at = utcnow()
                self.session.add(link)
                self._note(job, "deleted_remote", f"deleted in {job.system}: {job.reason}")
            return "deleted"
        answer = result.answer
        assert answer is not None
        if job.kind == "update":
            row = self.rows.get(job.row_id)
            if row is not None:
                row.intent = None  # answered: nothing of it is in doubt any more
            if link is not None and link.deleted_at is None:
                _apply_answer(link, answer, result.after, job.diff)
                self.session.add(link)
            reason = f"{job.reason}: sent {', '.join(sorted(job.diff))}"
            self._note(job, "pushed", reason, new=job.diff)
            return "pushed"
        record = self.records.get(job.record_id)
        if link is not None or record is None:  # a concurrent capture saw our new deal first
            return "adopted"
        if self._adopt_identity(job, record, result.after):
            index_keys(self.session, record, self.engine.config.sync.natural_key)
        link = Link(
            record_id=record.id,
            system=job.system,
            external_id=answer.external_id,
            shadow=result.after,
            vendor_modified=to_utc(answer.modified),
            # Every outbound field, the empty ones too: what the target put where we sent
            # nothing (a default owner, a required close date) is its lossy copy of "nothing",
            # so the next push neither blanks it there nor spreads it to the other systems.
            sent={name: [value, result.after.get(name)] for name, value in job.wanted.items()},
        )
        if result.adopted:
            # The deal may have been edited there since it was made: the base is what the
            # create sent, so the next capture merges such an edit instead of our overwriting it.
            row = self.rows.get(job.row_id)
            sent = (row.intent if row is not None else None) or job.wanted
            link.shadow, link.sent = adopted_base(sent, result.after)
            if link.shadow != result.after:
                link.vendor_modified = None  # read it again: it holds a change of its own
        self.session.add(link)
        self.links[record.id] = link
        action = "adopted" if result.adopted else "created"
        self._note(job, action, f"{action} in {job.system} as {answer.external_id}")
        return action

    def _adopt_identity(self, job: _Job, record: Record, theirs: dict[str, Any]) -> bool:
        """The ids the target gave the new deal (e.g. its Salesforce id) join the deal's
        ``external_ids``: they identify it, so identity resolution and ``salesforceId``
        matching can use them. Other values the target invented stay its own (see
        ``Link.sent``). Returns whether the deal's identity changed (its keys then need
        indexing)."""
        ids = theirs.get("external_ids") or {}
        known = record.fields.get("external_ids") or {}
        new = {key: value for key, value in ids.items() if value and key not in known}
        if not new:
            return False
        record.fields = {**record.fields, "external_ids": {**known, **new}}
        record.updated_at = utcnow()
        self.session.add(record)
        reason = f"ids given by {job.system} on create"
        self._note(job, "field_changed", reason, field="external_ids", new=new)
        return True

    def _note(self, job: _Job, action: str, reason: str, **extra: Any) -> None:
        self.notes.add(job.record_id, action, reason, system=job.system, run_id=job.run_id, **extra)


def _apply_answer(
    link: Link, answer: VendorRecord, after: dict[str, Any], sent: dict[str, Any]
) -> None:
    """Shadow := the vendor's answer for the fields we sent. If the answer shows other fields
    changed too (a concurrent edit there), keep the old stamp so the next capture merges it.
    ``link`` is the link as it is now (a capture may have moved its shadow meanwhile)."""
    shadow = dict(link.shadow)
    untouched_moved = any(after.get(name) != shadow.get(name) for name in after if name not in sent)
    for name in sent:
        shadow[name] = after.get(name)
    link.sent = {**link.sent, **{name: [value, after.get(name)] for name, value in sent.items()}}
    link.shadow = shadow
    if not untouched_moved:
        link.vendor_modified = to_utc(answer.modified)
    link.synced_at = utcnow()


def _release_row(row: Outbox, reason: str) -> None:
    """Put a row back for a soon retry after it lost a race (the retry re-reads the links and
    finds, e.g., that a capture already linked the deal it created)."""
    row.status, row.claimed_by, row.claimed_until = "retry", None, None
    row.last_error = reason[:1000]
    row.next_attempt_at = utcnow()
    row.updated_at = utcnow()


def _release(engine: Engine, row_ids: Sequence[int]) -> None:
    """Put claimed rows that were never sent back for the next drain."""
    if not row_ids:
        return
    with engine.session() as session:
        session.execute(
            sa.update(Outbox)
            .where(col(Outbox.id).in_(row_ids), col(Outbox.claimed_by) == engine.worker_id)
            .values(status="retry", claimed_by=None, claimed_until=None, next_attempt_at=utcnow())
        )
        session.commit()
    engine.claims.drop(row_ids)


def _vendor_words(exc: Rejected) -> str:
    fields = "; ".join(f"{k}: {v}" for k, v in exc.field_errors.items())
    return f"{exc}" + (f" — {fields}" if fields else "")


def _not_found(
    engine: Engine,
    session: Session,
    row: Outbox,
    link: Link | None,
    exc: NotFound,
    run_id: str | None,
) -> str:
    row.status = "done"
    if link is None:
        _dead(session, row, str(exc), None)
        return "dead_letters"
    vendor_deleted(engine, session, row.system, link, "404 on push", run_id)
    return "deleted"


def _park(row: Outbox, reason: str) -> None:
    row.status = "parked"
    row.last_error = reason[:1000]
    row.next_attempt_at = utcnow() + dt.timedelta(seconds=60)


def _retry(engine: Engine, row: Outbox, exc: ConnectorError) -> None:
    row.attempts += 1
    wait = min(MAX_BACKOFF, engine.backoff_base * 2.0 ** min(row.attempts - 1, 12))
    if isinstance(exc, RateLimited) and exc.retry_after:
        wait = max(exc.retry_after, 0.5)
    row.status = "retry"
    row.last_error = str(exc)[:1000]
    row.next_attempt_at = utcnow() + dt.timedelta(seconds=wait)


def _dead(session: Session, row: Outbox, error: str, payload: Any) -> None:
    row.status = "dead"
    row.last_error = error[:1000]
    dead_letter(
        session,
        system=row.system,
        direction="outbound",
        op=row.op,
        error=error,
        payload=payload,
        record_id=row.record_id,
    )
    note(
        session,
        row.record_id,
        "dead_letter",
        f"{row.op} in {row.system} refused: {error}",
        system=row.system,
    )
