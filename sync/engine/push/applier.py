"""The outcomes of a drain's sends applied in one session (step 3, ``apply``): a created
deal's link and identity, an update's shadow, the journal, and each row's new state — done,
parked, retried with backoff, dead-lettered, or the 404 policy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from sync.connectors.base import VendorRecord
from sync.connectors.errors import (
    AuthFailed,
    ConnectorError,
    NotFound,
    RateLimited,
    Rejected,
)
from sync.engine import derived, unresolved
from sync.engine.context import Engine
from sync.engine.deletes import vendor_deleted
from sync.engine.identity import index_keys_of
from sync.engine.intents import adopted_base
from sync.engine.journal import Notes, dead_letter, note
from sync.engine.letters import resolve_pushed
from sync.engine.push import rows as outbox_rows
from sync.engine.push.prepare import _Job, _Result
from sync.engine.unresolved import Waiting
from sync.mapping.derived import Derived
from sync.mapping.errors import MappingError, UnresolvedReference
from sync.store import links as stored_links
from sync.store import records as stored_records
from sync.store.models import Link
from sync.timefmt import as_utc, maybe_utc, utcnow

MAX_BACKOFF = 3600.0


@dataclass
class Identity:
    """A record whose create landed, as far as its identity goes: the ids a target gives the
    new deal join its ``fields`` (written back by ``_Applier.write``)."""

    id: str
    fields: dict[str, Any]


@dataclass
class _Applier:
    """Applies outcomes in one session, over the rows, records and links loaded for them."""

    engine: Engine
    session: Session
    rows: dict[int, outbox_rows.Row]
    records: dict[str, Identity]
    links: dict[str, Link]
    #: records known to exist that were not loaded (a create landed for them, no ids came back)
    alive: set[str] = field(default_factory=set)
    notes: Notes = field(default_factory=Notes)
    #: links of the deals created in the targets, as columns, inserted together by ``write``
    #: (an ORM object per link, flushed one by one, cost more than the rest of the apply)
    new_links: list[dict[str, Any]] = field(default_factory=list)
    #: the records linked by ``new_links`` (a second outcome for one of them is no create)
    created: set[str] = field(default_factory=set)
    #: records whose identity grew (ids the target gave them): their keys need indexing
    reindex: list[Identity] = field(default_factory=list)
    #: our rows, settled: their changes are written by ``write``
    settled: list[outbox_rows.Row] = field(default_factory=list)
    #: links whose shadow or tombstone an outcome changed: added to the session by ``write``
    #: (an apply that read them in a snapshot writes them in another session)
    touched: list[Link] = field(default_factory=list)
    #: how long each landed push took from its change being queued, by system: observed once
    #: the apply committed (a group re-applied after losing a race would count it twice)
    propagation: list[tuple[str, float]] = field(default_factory=list)

    def write(self) -> None:
        """Write what the outcomes applied so far gathered: new links, identity keys,
        journal, our rows' new states — a statement or two each."""
        if self.new_links:
            stored_links.insert_many(self.session, self.new_links)
            self.new_links = []
        if self.reindex:
            now = utcnow()
            changes = [(record.id, record.fields, now) for record in self.reindex]
            stored_records.set_fields(self.session, changes)
            index_keys_of(self.session, self.reindex, self.engine.config.sync.natural_key)
            self.reindex = []
        self.session.add_all(self.touched)
        self.touched = []
        self.notes.write(self.session)
        if self.settled:
            outbox_rows.write(self.session, self.settled)
            self.settled = []

    def forget(self) -> None:
        """Drop what was gathered and not written (its savepoint was rolled back)."""
        self.new_links, self.reindex, self.notes, self.settled = [], [], Notes(), []
        self.touched = []

    def resolve_letters(self, results: Sequence[_Result]) -> None:
        """Close the dead letters of the deals that just went through (see ``letters``):
        their row is done (a row put back after losing a race is not)."""
        landed = set()
        for result in results:
            row = self.rows.get(result.job.row_id)
            if result.error is None and row is not None and row.status == "done":
                landed.add(result.job.record_id)
        system, run_id = results[0].job.system, results[0].job.run_id
        resolve_pushed(self.session, system, landed, self.notes, run_id)

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
            row = row.scratch()
        moved = row.updated_at != job.stamp
        try:
            return self._outcome(result, row)
        finally:
            if ours:
                row.claimed_by, row.claimed_until = None, None
                if moved and row.status in ("done", "parked"):
                    # Re-enqueued while in flight (a capture changed the deal): diff again.
                    row.status, row.next_attempt_at = "pending", utcnow()
                row.updated_at = utcnow()
                self.settled.append(row)

    def _outcome(self, result: _Result, row: outbox_rows.Row) -> str:
        exc, session = result.error, self.session
        if exc is None:
            row.status = "done"
            waited = (utcnow() - as_utc(row.created_at)).total_seconds()
            self.propagation.append((row.system, waited))
            outcome = self._success(result)
            if result.adopted and (row.intent or result.job.wanted) != result.job.wanted:
                # the record moved since the create's intent, the adopted deal's base: diff
                # it against that deal (a capture before this push saw the edit, re-enqueued
                # nothing: the row was already owed)
                row.status, row.next_attempt_at = "pending", utcnow()
            if outcome not in ("skipped", "deleted"):
                self._waiting(result.job, row, result.job.waiting)
            return outcome
        if isinstance(exc, UnresolvedReference):  # a create that cannot do without it
            self._waiting(result.job, row, [unresolved.of_exception(exc)])
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
                self.touched.append(link)
                self._note(job, "deleted_remote", f"deleted in {job.system}: {job.reason}")
            return "deleted"
        answer = result.answer
        assert answer is not None
        if job.kind == "update":
            row = self.rows.get(job.row_id)
            if row is not None:
                row.intent = None  # answered: nothing of it is in doubt any more
            if link is not None and link.deleted_at is None:
                follows = derived.follows(self.engine, job.system, job.diff)
                self._note_follows(job, follows, link.shadow, result.after)
                _apply_answer(link, answer, result.after, job.diff, follows)
                self.touched.append(link)
            reason = f"{job.reason}: sent {', '.join(sorted(job.diff))}"
            self._note(job, "pushed", reason, new=job.diff)
            return "pushed"
        record = self.records.get(job.record_id)
        exists = record is not None or job.record_id in self.alive
        if link is not None or not exists or job.record_id in self.created:
            return "adopted"  # a concurrent capture saw our new deal first
        if record is not None and self._adopt_identity(job, record, result.after):
            self.reindex.append(record)
        now = utcnow()
        shadow, vendor_modified = result.after, maybe_utc(answer.modified)
        # Every outbound field, the empty ones too: what the target put where we sent
        # nothing (a default owner, a required close date) is its lossy copy of "nothing",
        # so the next push neither blanks it there nor spreads it to the other systems.
        sent = {name: [value, result.after.get(name)] for name, value in job.wanted.items()}
        if result.adopted:
            # The deal may have been edited there since it was made: the base is what the
            # create sent, so the next capture merges such an edit instead of our overwriting it.
            row = self.rows.get(job.row_id)
            intent = (row.intent if row is not None else None) or job.wanted
            shadow, sent = adopted_base(intent, result.after)
            if shadow != result.after:
                vendor_modified = None  # read it again: it holds a change of its own
        self.new_links.append(
            {
                "record_id": job.record_id,
                "system": job.system,
                "external_id": answer.external_id,
                "shadow": shadow,
                "sent": sent,
                "vendor_modified": vendor_modified,
                "confirmed_at": None,
                # our create's own answer (not a recovery's read): verify may trust its stamp
                "written_stamp": None if result.adopted else vendor_modified,
                "linked_at": now,
                "synced_at": now,
                "deleted_at": None,
                "filtered_at": None,
            }
        )
        self.created.add(job.record_id)
        action = "adopted" if result.adopted else "created"
        self._note(job, action, f"{action} in {job.system} as {answer.external_id}")
        return action

    def _adopt_identity(self, job: _Job, record: Identity, theirs: dict[str, Any]) -> bool:
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
        reason = f"ids given by {job.system} on create"
        self._note(job, "field_changed", reason, field="external_ids", new=new)
        return True

    def _waiting(self, job: _Job, row: outbox_rows.Row, waiting: Sequence[Waiting]) -> None:
        """Park the row while references are unknown (every other field went out), journaling
        each reference when it starts and stops waiting."""
        before = {(w.field, w.key): w for w in Waiting.of_row(row.system, row.waiting)}
        now = {(w.field, w.key): w for w in waiting}
        for key, item in now.items():
            if key not in before:
                self._note(
                    job,
                    "reference_unresolved",
                    item.describe(),
                    field=item.field,
                    new=item.key,
                )
        for key, item in before.items():
            if key not in now:
                self._note(
                    job,
                    "reference_resolved",
                    f"{item.kind} {item.key!r} no longer waits in {row.system}",
                    field=item.field,
                    new=item.key,
                )
        row.waiting = [w.stored() for w in waiting] or None
        if waiting:
            _park(row, "; ".join(w.describe() for w in waiting))

    def _note_follows(
        self,
        job: _Job,
        follows: Mapping[str, Derived],
        shadow: Mapping[str, Any],
        after: Mapping[str, Any],
    ) -> None:
        """Journal what the vendor recomputed from what we wrote (where it takes no value)."""
        for name, follower in follows.items():
            if after.get(name) == shadow.get(name):
                continue
            self._note(
                job,
                "derived",
                f"{name} {after.get(name)!r} in {job.system} follows the "
                f"{' / '.join(sorted(follower.sources & job.diff.keys()))} we wrote "
                f"({follower.why}): our write's consequence, not an edit — not spread",
                field=name,
                new=after.get(name),
            )

    def _note(self, job: _Job, action: str, reason: str, **extra: Any) -> None:
        self.notes.add(job.record_id, action, reason, system=job.system, run_id=job.run_id, **extra)


def _apply_answer(
    link: Link,
    answer: VendorRecord,
    after: dict[str, Any],
    sent: dict[str, Any],
    follows: Iterable[str] = (),
) -> None:
    """Shadow := the vendor's answer for the fields we sent, and for those the vendor
    recomputed from them (``follows``: our write's consequence). If the answer shows other
    fields changed too (a concurrent edit there), keep the old stamp so the next capture merges
    it. ``link`` is the link as it is now (a capture may have moved its shadow meanwhile)."""
    shadow = dict(link.shadow)
    ours = {*sent, *follows}
    untouched_moved = any(after.get(name) != shadow.get(name) for name in after if name not in ours)
    for name in ours:
        shadow[name] = after.get(name)
    link.sent = {**link.sent, **{name: [value, after.get(name)] for name, value in sent.items()}}
    link.shadow = shadow
    # the answer's stamp is our write's only when the answer is the deal as the shadow holds it
    link.written_stamp = None if untouched_moved else maybe_utc(answer.modified)
    if not untouched_moved:
        link.vendor_modified = link.written_stamp
    link.synced_at = utcnow()


def _vendor_words(exc: Rejected) -> str:
    """The vendor's message, then the field errors it does not already say: a vendor that puts
    them in its message too (Close without a top-level error, Truto) is quoted once."""
    said = str(exc)
    fields = "; ".join(f"{k}: {v}" for k, v in exc.field_errors.items() if v not in said)
    return said + (f" — {fields}" if fields else "")


def _not_found(
    engine: Engine,
    session: Session,
    row: outbox_rows.Row,
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


def _park(row: outbox_rows.Row, reason: str) -> None:
    row.status = "parked"
    row.last_error = reason[:1000]
    row.next_attempt_at = utcnow() + dt.timedelta(seconds=unresolved.RETRY_SECONDS)


def _retry(engine: Engine, row: outbox_rows.Row, exc: ConnectorError) -> None:
    row.attempts += 1
    wait = min(MAX_BACKOFF, engine.backoff_base * 2.0 ** min(row.attempts - 1, 12))
    if isinstance(exc, RateLimited) and exc.retry_after:
        wait = max(exc.retry_after, 0.5)
    row.status = "retry"
    row.last_error = str(exc)[:1000]
    row.next_attempt_at = utcnow() + dt.timedelta(seconds=wait)


def _dead(session: Session, row: outbox_rows.Row, error: str, payload: Any) -> None:
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
