"""Step 2 of a drain: the vendor call, with no session open; a create whose earlier attempt's
outcome is unknown first looks the deal up in the target and adopts it — unless the target
makes one deal of it however often it is sent (``prepare.resends_plainly``): then it is sent
again, alone or in a batch, and a deal the vendor answers with as ``existing`` is adopted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from sync.connectors.base import VendorRecord
from sync.connectors.errors import (
    ConnectorError,
    NotFound,
    Rejected,
)
from sync.engine.context import Engine
from sync.engine.push.prepare import _commit_intents, _create_payload, _Job, _Result
from sync.engine.push.recovery import AlreadyLinked, Lookups, recover
from sync.mapping.errors import MappingError

# --------------------------------------------------------------------------- 2. send


def send(engine: Engine, job: _Job, run_id: str | None, lookups: Lookups | None = None) -> _Result:
    """The vendor call of one job (any thread; no transaction open). Never raises for vendor
    or mapping errors: they travel in the result to be applied. ``lookups``: the drain's
    shared look-ups for creates whose earlier outcome is unknown (``push.recovery``)."""
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
                if job.recover:
                    lookups = lookups or Lookups(engine, job.system)
                    result.answer = recover(engine, job, lookups)
            except AlreadyLinked:
                job.kind, job.outcome = "done", "adopted"
                return result
            result.adopted = result.answer is not None
            if result.answer is None:
                if job.recover and not _fresh_intent(engine, job, run_id):
                    job.kind, job.outcome = "done", "skipped"  # no longer ours: send nothing
                    return result
                assert job.payload is not None
                result.answer = connector.create(job.payload, idempotency_key=job.idempotency_key)
                result.adopted = result.answer.existing  # an earlier attempt made it
        result.after = _read_back(engine, job, result.answer)
    except Rejected as exc:
        exc.payload = job.payload  # type: ignore[attr-defined]
        result.error = exc
    except (ConnectorError, MappingError) as exc:
        result.error = exc
    return result


def _read_back(engine: Engine, job: _Job, answer: VendorRecord) -> dict[str, Any]:
    """The vendor's answer in canonical form. An update that landed is done even when its
    answer cannot be mapped (the deal sits in a stage the mapping lacks): the vendor holds what
    we sent, and the read of that deal keeps its own dead letter naming the stage — a second
    letter would say the write failed, which it did not."""
    try:
        return engine.mapper.to_canonical(job.system, answer.data, engine.refs)
    except MappingError:
        if job.kind != "update":
            raise
        return dict(job.diff)


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
        result.adopted = outcome.existing  # made by an earlier attempt whose answer was lost
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
