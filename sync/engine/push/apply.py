"""Step 3 of a drain: apply the outcomes in one short write transaction (what each outcome
does is ``push.applier``; decided before the write lock where it can, ``push.snapshot``),
falling back to a savepoint per row when one lost a race; give back rows never sent.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import structlog

from sync.engine.context import Counts, Engine
from sync.engine.push import rows as outbox_rows
from sync.engine.push import snapshot
from sync.engine.push.applier import _Applier
from sync.engine.push.prepare import _Job, _Result
from sync.metrics import observe_propagation
from sync.store import claims as stored_claims
from sync.store import refs as stored_refs
from sync.store.models import RefMap
from sync.timefmt import utcnow

log = structlog.get_logger("crmsync.push")

# --------------------------------------------------------------------------- 3. apply


def apply_results(engine: Engine, results: Sequence[_Result], counts: Counts) -> None:
    """Record the outcomes of several sends in one write transaction, decided beforehand on
    a read snapshot (``push.snapshot``: the write lock covers a re-check and the writes).
    Should a row have moved since the snapshot, the group is applied as before, reading under
    the lock; should one of them lose a race (a unique constraint: a capture linked the deal
    meanwhile), each is applied on its own savepoint instead and the loser is put back for a
    soon retry. References learnt meanwhile are stored with them, leaving out those another
    worker stored first (every process learns the same company links: with four workers that
    made most groups fall back to row by row)."""
    if not results:
        return
    taken = engine.refs.take_pending()
    try:
        outcomes, propagation = _settle(engine, results, taken)
    except BaseException:
        engine.refs.give_back(taken)
        raise
    for outcome in outcomes:
        counts.add(outcome)
    for system, seconds in propagation:
        observe_propagation(system, seconds)
    engine.claims.drop(r.job.row_id for r in results)


def _settle(
    engine: Engine, results: Sequence[_Result], taken: Sequence[RefMap]
) -> tuple[list[str], list[tuple[str, float]]]:
    """Apply and commit ``results``: read first where it can, under the lock otherwise, row by
    row after a unique constraint refused the group; returns the outcomes and how long each
    landed push took."""
    try:
        with engine.session() as session:
            planned = snapshot.plan(engine, session, results)
            if planned is not None and snapshot.write(planned, results, taken):
                return planned.outcomes, planned.applier.propagation
        return _apply_locked(engine, results, taken, isolate=False)
    except sa.exc.IntegrityError as exc:
        # rare by design (a capture linked a deal while our create of it was in flight):
        # said, so a run where it is not rare shows which constraint makes it so
        log.info("apply_row_by_row", system=results[0].job.system, error=str(exc.orig))
        return _apply_locked(engine, results, taken, isolate=True)


def _apply_locked(
    engine: Engine, results: Sequence[_Result], taken: Sequence[RefMap], *, isolate: bool
) -> tuple[list[str], list[tuple[str, float]]]:
    """Apply ``results`` reading under the write lock (what a snapshot could not settle)."""
    with engine.session() as session:
        loaded = snapshot.load(session, results)
        applier = _Applier(engine, session, loaded.rows, loaded.records, loaded.links, loaded.alive)
        outcomes = _apply_all(applier, results, isolate=isolate)
        stored_refs.store_learnt(session, taken)
        session.commit()
    return outcomes, applier.propagation


def _apply_all(applier: _Applier, results: Sequence[_Result], *, isolate: bool) -> list[str]:
    session = applier.session
    if not isolate:
        # No flush between rows: the group's writes go out together at commit. A conflict
        # between rows surfaces there, and the group is re-applied row by row.
        with session.no_autoflush:
            outcomes = [applier.apply(result) for result in results]
            applier.resolve_letters(results)
            applier.write()
        return outcomes
    # Row by row, each row's write would lock it in the group's order: lock them all first, in
    # id order, as the claims' renewer does — else the two deadlock (outside the savepoints:
    # a row's rollback keeps the locks).
    stored_claims.lock_in_order(session, [r.job.row_id for r in results])
    outcomes = []
    for result in results:
        try:
            with session.begin_nested():
                outcomes.append(applier.apply(result))
                applier.write()
        except sa.exc.IntegrityError as exc:  # lost a race with a concurrent capture
            applier.forget()
            applier.links.pop(result.job.record_id, None)
            applier.created.discard(result.job.record_id)
            fresh = outbox_rows.load(session, [result.job.row_id])  # as the rollback left it
            applier.rows.update(fresh)
            for row in fresh.values():
                _release_row(row, f"concurrent change: {exc.orig}")
            outbox_rows.write(session, list(fresh.values()))
            outcomes.append("retries")
    applier.resolve_letters(results)
    applier.write()
    return outcomes


def _release_row(row: outbox_rows.Row, reason: str) -> None:
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
        stored_claims.release_claimed(session, row_ids, engine.worker_id, utcnow())
        session.commit()
    engine.claims.drop(row_ids)


def _release_unsent(engine: Engine, jobs: Sequence[_Job]) -> None:
    """Give back claimed rows whose request never left. A create whose intent this drain made
    (not a recovery of an earlier one) forgets it: nothing can have been made, so its next
    attempt needs no look-up."""
    if not jobs:
        return
    fresh = [job.row_id for job in jobs if job.kind == "create" and not job.recover]
    with engine.session() as session:
        if fresh:
            stored_claims.forget_intents(session, fresh, engine.worker_id)
        stored_claims.release_claimed(
            session, [job.row_id for job in jobs], engine.worker_id, utcnow()
        )
        session.commit()
    engine.claims.drop([job.row_id for job in jobs])
