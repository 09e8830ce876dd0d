"""Step 2 of a drain: the vendor call, with no session open; a create whose earlier attempt's
outcome is unknown first looks the deal up in the target and adopts it.
"""

from __future__ import annotations

import contextlib
import copy as cp
import datetime as dt
import functools
from collections.abc import Callable, Sequence

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


def send_many(engine: Engine, jobs: Sequence[_Job], run_id: str | None) -> list[_Result]:
    """The vendor calls of several jobs of one system (any thread; no transaction open).

    Where the connector writes in batches (``batch_size`` > 1), plain creates travel together
    in ``create_many`` and updates in ``update_many``, up to ``batch_size`` a request, each job
    getting its own item's outcome — one item refused never fails the others. A failure of a
    whole request is every item's (a lost answer: each create's intent recovers it later).
    Deletes, creates to recover and anything else go one by one through :func:`send`."""
    connector = engine.connector(jobs[0].system) if jobs else None
    if connector is None or connector.batch_size <= 1 or len(jobs) == 1:
        return [send(engine, job, run_id) for job in jobs]
    creates = [j for j in jobs if j.kind == "create" and not j.recover and j.error is None]
    updates = [j for j in jobs if j.kind == "update" and j.error is None]
    grouped = {id(j) for j in (*creates, *updates)}
    results = [send(engine, job, run_id) for job in jobs if id(job) not in grouped]
    size = connector.batch_size
    for start in range(0, len(creates), size):
        chunk = creates[start : start + size]
        items = [(j.payload or {}, j.idempotency_key) for j in chunk]
        results += _batch(engine, chunk, functools.partial(connector.create_many, items))
    for start in range(0, len(updates), size):
        chunk = updates[start : start + size]
        changes = [(str(j.external_id), j.payload or {}) for j in chunk]
        results += _batch(engine, chunk, functools.partial(connector.update_many, changes))
    return results


def _batch(
    engine: Engine,
    jobs: list[_Job],
    call: Callable[[], list[VendorRecord | ConnectorError]],
) -> list[_Result]:
    """One batch request's outcomes, a result per job."""
    try:
        outcomes: list[VendorRecord | ConnectorError] = call()
    except ConnectorError as exc:
        outcomes = [_own_copy(exc) for _ in jobs]
    if len(outcomes) != len(jobs):  # a connector bug: never guess which item is which
        raise RuntimeError(f"batch of {len(jobs)} answered with {len(outcomes)} outcomes")
    results = []
    for job, outcome in zip(jobs, outcomes, strict=True):
        result = _Result(job)
        if isinstance(outcome, ConnectorError):
            if isinstance(outcome, Rejected):
                outcome.payload = job.payload  # type: ignore[attr-defined]
            result.error = outcome
        else:
            result.answer = outcome
            try:
                result.after = engine.mapper.to_canonical(job.system, outcome.data, engine.refs)
            except MappingError as exc:
                result.error = exc
        results.append(result)
    return results


def _own_copy(exc: ConnectorError) -> ConnectorError:
    """A whole-request error, once per job (a dead letter keeps its own payload on it)."""
    copy = cp.copy(exc)
    copy.__traceback__ = None
    return copy


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
