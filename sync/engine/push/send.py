"""Step 2 of a drain: the vendor call, with no session open; a create whose earlier attempt's
outcome is unknown first looks the deal up in the target and adopts it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence

from sync.connectors.base import VendorRecord
from sync.connectors.errors import (
    ConnectorError,
    NotFound,
    Rejected,
)
from sync.engine.context import Engine
from sync.engine.intents import Intent, best_intent, rank
from sync.engine.push.prepare import _commit_intents, _create_payload, _Job, _Result
from sync.mapping.errors import MappingError, UnresolvedReference
from sync.store import links
from sync.timefmt import maybe_utc

#: how far before a create intent we look for the deal it may have made (vendor clock skew)
RECOVERY_SLACK = dt.timedelta(minutes=10)


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


def batchable(job: _Job) -> bool:
    """Whether a job can share a batch request: a plain update, or a create with no earlier
    attempt to recover (a recovery looks the deal up first: one at a time)."""
    if job.error is not None or job.payload is None:
        return False
    return job.kind == "update" or (job.kind == "create" and not job.recover)


def send_many(engine: Engine, jobs: Sequence[_Job], run_id: str | None) -> list[_Result]:
    """The vendor calls of ``batchable`` jobs of one kind, one batch request (up to the
    connector's ``batch_limit``); each job gets its own outcome. A failure of the whole
    request (timeout, 5xx, 429) is every job's error, as if each had been sent alone."""
    results = [_Result(job) for job in jobs]
    connector = engine.connector(jobs[0].system)
    try:
        if jobs[0].kind == "create":
            items = [(job.payload or {}, job.idempotency_key) for job in jobs]
            outcomes = connector.create_many(items)
        else:
            outcomes = connector.update_many(
                [(str(job.external_id), job.payload or {}) for job in jobs]
            )
    except ConnectorError as exc:
        for result in results:
            result.error = exc
        return results
    for result, outcome in zip(results, outcomes, strict=True):
        if isinstance(outcome, ConnectorError):
            if isinstance(outcome, Rejected):
                outcome.payload = result.job.payload  # type: ignore[attr-defined]
            result.error = outcome
            continue
        result.answer = outcome
        try:
            system = result.job.system
            result.after = engine.mapper.to_canonical(system, outcome.data, engine.refs)
        except MappingError as exc:
            result.error = exc
    return results


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
        linked = links.id_of_record_in(session, job.record_id, job.system)
    if linked is not None:
        raise _AlreadyLinked  # linked since this row was prepared (a capture adopted it)
    since = maybe_utc(job.intent_at - RECOVERY_SLACK)
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
        taken = links.record_ids_of(session, job.system, [c.external_id for c in candidates])
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
        modified, created = maybe_utc(full.modified), maybe_utc(full.created)
        match = best_intent([intent], theirs, modified, now, created)
        if match is None:
            continue
        score = rank(match[1])
        renames += not score[0]
        if best is None or score > best[1]:
            best = (full, score)
    if best is None or (not best[1][0] and renames > 1):
        return None  # several renamed deals could be ours: none can be sure
    return best[0]
