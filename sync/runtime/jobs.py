"""The job runner: every poll, drain, reconcile, resync and verify that runs outside a
``crmsync run --once`` cycle starts, runs, finishes and is metered here — whoever runs it:
the embedded scheduler (:mod:`sync.scheduler`), the Celery tasks (:mod:`sync.tasks`), the
admin API's embedded backend and the CLI.

A job is one ``runs`` row. :func:`run_job` opens it (a new row, or a row queued earlier by
:func:`queue_run` so that whoever asked could follow its id), runs the work, and closes it:
with the work's status and counts, or ``failed`` with the error (``Type: message``) and the
counts gathered so far, re-raising. A job that names a system feeds the Prometheus counters
(:func:`sync.metrics.observe_counts` on success, :func:`~sync.metrics.observe_error` on an
error). What differs between jobs is said once, in the job's own function:

- :func:`poll_job` — one capture (its own row; the Celery poll and each read of a resync);
- :func:`poll_and_drain_job` — the embedded scheduler's job: a poll, then every outbox with
  due rows; ``interrupted`` when asked to stop between drains;
- :func:`drain_job` — the Celery drain: a row only when it did something (a worker drains on
  every heartbeat; idle drains would flood the table), no row when it fails;
- :func:`resync_job` — re-read one system or all, then push; ``partial`` when a system could
  not be read; progress written to the row as it goes;
- :func:`reconcile_job` — anti-entropy (the row is written by
  :func:`sync.engine.reconcile.reconcile`, which the CLI and tests also call directly);
- :func:`verify_job` — a field-by-field comparison, ``drift`` when not clean.

Where a job runs is the other half, :mod:`sync.runtime.starters` (in this process, or sent
to a Celery worker).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from structlog.contextvars import bind_contextvars, reset_contextvars

from sync.connectors.errors import ConnectorError
from sync.engine import operations
from sync.engine.context import Counts, Engine, new_id
from sync.engine.cycle import finish_run, poll, start_run
from sync.engine.push import drain
from sync.engine.reconcile import FullPoll, ReconcileReport
from sync.engine.reconcile import reconcile as reconcile_systems
from sync.engine.verify import verify as verify_systems
from sync.metrics import observe_counts, observe_error
from sync.store import runs
from sync.timefmt import utcnow

if TYPE_CHECKING:
    import datetime as dt


log = structlog.get_logger("crmsync.jobs")

T = TypeVar("T")

#: (engine, system, full) -> counts of one read; the Celery task wraps it in the poll lock
PollFn = Callable[[Engine, str, bool], Counts]


@dataclass
class Job:
    """A running job: its row, and what the work reports back to the runner."""

    engine: Engine
    run_id: str
    counts: Counts = field(default_factory=Counts)
    #: the row's final status when the work returns (``failed`` is the runner's)
    status: str = "done"
    #: stored on the row, joined by "; " (a partial resync names the systems it could not read)
    errors: list[str] = field(default_factory=list)

    def progress(self) -> None:
        """Write the counts so far to the row, for whoever follows it (``resync --wait``)."""
        _set_counts(self.engine, self.run_id, self.counts)


def run_job(
    engine: Engine,
    kind: str,
    system: str | None,
    work: Callable[[Job], None],
    *,
    run_id: str | None = None,
    metered: bool = True,
) -> Job:
    """Run ``work`` as one ``runs`` row of ``kind`` and return the finished job.

    ``run_id``: a row queued earlier to take over (see :func:`queue_run`); None starts a new
    one. On any exception the row is closed ``failed`` with the counts gathered so far and
    the exception propagates. ``metered`` (and a ``system``): the job's counts, or its error,
    feed that system's counters."""
    job = Job(engine, _open_run(engine, run_id, kind, system))
    bound = bind_run_context(job.run_id, system)
    try:
        work(job)
    except BaseException as exc:
        if metered and system is not None and isinstance(exc, Exception):
            observe_error(system, exc)
        finish_run(engine, job.run_id, "failed", job.counts, describe(exc))
        raise  # the run stays bound: the line that reports the error names it too
    finish_run(engine, job.run_id, job.status, job.counts, "; ".join(job.errors) or None)
    reset_contextvars(**bound)
    if metered and system is not None:
        observe_counts(system, job.counts.values)
    return job


def bind_run_context(run_id: str, system: str | None) -> Mapping[str, Any]:
    """Every line logged from here on names the run (and system), so a run seen in `crmsync
    status` can be found in the logs. Returns what :func:`reset_contextvars` restores once the
    run is done; a run that fails stays bound until the unit of work ends (Celery's
    ``task_postrun`` clears it, the next job rebinds), so whoever logs the error names it."""
    return bind_contextvars(run_id=run_id, **({"system": system} if system else {}))


def describe(exc: BaseException) -> str:
    """How an error is written on a failed run row."""
    return f"{type(exc).__name__}: {exc}"


def logged_failure(kind: str, system: str, job: Callable[[], T]) -> T | None:
    """Run a scheduled ``job``; an error is logged (``job_failed``) and swallowed, so the
    scheduler keeps its timetable; its run row already says ``failed``."""
    try:
        return job()
    except Exception as exc:
        log.warning("job_failed", system=system, kind=kind, error=str(exc))
        return None


# --------------------------------------------------------------------------- the jobs


def poll_job(engine: Engine, system: str, full: bool = False, kind: str = "poll") -> Counts:
    """One capture of ``system`` as its own row (a ``full`` one reads everything)."""

    def work(job: Job) -> None:
        job.counts.merge(poll(engine, system, full=full, run_id=job.run_id))

    return run_job(engine, kind, system, work).counts


def poll_and_drain_job(
    engine: Engine, system: str, *, stopping: threading.Event | None = None
) -> Counts:
    """Embedded mode's scheduled job: capture ``system``, then drain every outbox with due rows,
    all in one ``poll`` row metered as ``system``. Once ``stopping`` is set no further drain
    starts, the running one claims nothing more and gives back what it has not sent, and the
    row says ``interrupted``."""

    def stopped() -> bool:
        return stopping is not None and stopping.is_set()

    def work(job: Job) -> None:
        job.counts.merge(poll(engine, system, full=False, run_id=job.run_id))
        for target in operations.due_systems(engine):
            if stopped():
                break
            job.counts.merge(drain(engine, target, run_id=job.run_id, stop=stopped))
        if stopped():
            job.status = "interrupted"

    return run_job(engine, "poll", system, work).counts


def drain_job(
    engine: Engine,
    system: str,
    stop: Callable[[], bool] | None = None,
    spread: Callable[[], object] | None = None,
) -> Counts:
    """Push ``system``'s due outbox rows, for one slice of at most the system's poll interval
    (a drain holds its system's queue: the polls queued behind it must run that often) or
    until ``stop()`` says the worker is shutting down; ``counts["sliced"]``: rows may remain,
    the caller queues the next slice. Metered always; a ``drain`` row, dated from the start,
    only when the drain did something; an error propagates with no row and no error metric
    (the pushes it failed are retried and dead-lettered per row). ``spread``: see
    :func:`sync.engine.push.drain` (the Celery drain queues another drain of the system)."""
    started = utcnow()
    until = time.monotonic() + engine.config.systems[system].poll_every.total_seconds()
    # its id is known from the start, so every line the drain logs names it, though its row
    # is written only at the end (a drain that found nothing to push leaves none)
    run_id = new_id("run")
    bound = bind_run_context(run_id, system)
    try:
        counts = drain(engine, system, until=until, stop=stop, spread=spread)
        observe_counts(system, counts.values)
        if counts.values:
            _record_run(engine, run_id, "drain", system, started, counts)
            log.info("drain_done", system=system, **counts.values)
    finally:
        reset_contextvars(**bound)
    return counts


def resync_job(
    engine: Engine,
    system: str | None,
    full: bool,
    run_id: str | None = None,
    poll_fn: PollFn = poll_job,
) -> tuple[str, str, Counts]:
    """Re-read one system or all (each read its own row, through ``poll_fn``), then drain every
    outbox; returns (run id, status, counts). ``partial`` when a system could not be read.
    ``counts.systems_done`` of ``systems_total`` is written to the row after each read. The
    resync's own counters are not metered (its reads are; its drains per system)."""
    systems = [system] if system else engine.systems

    def work(job: Job) -> None:
        job.counts.add("systems_total", len(systems) + 1)
        for name in systems:
            try:
                job.counts.merge(poll_fn(engine, name, full))
            except ConnectorError as exc:
                job.status = "partial"
                job.errors.append(f"{name}: {exc}")
            job.counts.add("systems_done")
            job.progress()
        for name in engine.systems:
            pushed = drain(engine, name, run_id=job.run_id)
            observe_counts(name, pushed.values)
            job.counts.merge(pushed)
        job.counts.add("systems_done")

    job = run_job(engine, "resync", system, work, run_id=run_id, metered=False)
    return job.run_id, job.status, job.counts


def reconcile_job(
    engine: Engine,
    system: str | None,
    run_id: str | None = None,
    *,
    full_poll: FullPoll | None = None,
    metered: bool = False,
) -> ReconcileReport:
    """Reconcile one system or all (:func:`sync.engine.reconcile.reconcile`, which writes the
    ``reconcile`` row). ``run_id``: a queued row to take over. ``full_poll``: how a system is
    read completely (the Celery task takes the poll lock). ``metered`` (the scheduler): the
    totals, or the error, feed ``system``'s counters."""
    # the row is opened here (not by reconcile) so every line of the run can carry its id
    run_id = _open_run(engine, run_id or new_id("run"), "reconcile", system)
    chosen = [system] if system else None
    bound = bind_run_context(run_id, system)
    try:
        if full_poll is None:
            report = reconcile_systems(engine, chosen, run_id=run_id)
        else:
            report = reconcile_systems(engine, chosen, run_id=run_id, full_poll=full_poll)
    except Exception as exc:
        if metered and system is not None:
            observe_error(system, exc)
        raise  # still bound, as in run_job
    reset_contextvars(**bound)
    if metered and system is not None:
        observe_counts(system, report.totals().values)
    return report


def verify_job(engine: Engine) -> tuple[str, bool, Counts]:
    """Compare every system with the store as a ``verify`` row (``drift`` when not clean);
    returns (run id, clean, counts of what differs)."""
    clean = False

    def work(job: Job) -> None:
        nonlocal clean
        report = verify_systems(engine)
        for check in report.systems.values():
            job.counts.add("drift", len(check.drift))
            job.counts.add("unlinked", len(check.unlinked))
            job.counts.add("missing", len(check.missing))
            job.counts.add("duplicates", len(check.duplicates))
            job.counts.add("known", len(check.known))  # open conflicts, filters, holds
        job.counts.add("twins", len(report.twins))
        clean = report.clean
        job.status = "done" if clean else "drift"

    job = run_job(engine, "verify", None, work)
    return job.run_id, clean, job.counts


# --------------------------------------------------------------------------- run rows


def queue_run(engine: Engine, system: str | None, kind: str = "resync") -> str:
    """Create a ``queued`` run row now, so its id can be followed before a worker starts it."""
    run_id = new_id("run")
    with engine.session() as session:
        runs.queue(session, run_id, kind, system)
        session.commit()
    return run_id


def _open_run(engine: Engine, run_id: str | None, kind: str, system: str | None) -> str:
    """A new ``running`` row, or the queued row ``run_id`` (also one a redelivered task starts
    over, or one missing: then added) set running again."""
    if run_id is None:
        return start_run(engine, kind, system)
    with engine.session() as session:
        runs.restart(session, run_id, kind, system, engine.worker_id)
        session.commit()
    return run_id


def _set_counts(engine: Engine, run_id: str, counts: Counts) -> None:
    with engine.session() as session:
        if runs.set_counts(session, run_id, dict(counts.values)) is not None:
            session.commit()


def _record_run(
    engine: Engine, run_id: str, kind: str, system: str, started: dt.datetime, counts: Counts
) -> None:
    """A ``done`` row ``run_id`` for work already finished, dated from when it started."""
    _open_run(engine, run_id, kind, system)
    with engine.session() as session:
        if runs.set_started(session, run_id, started) is not None:
            session.commit()
    finish_run(engine, run_id, "done", counts)
