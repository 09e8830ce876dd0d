"""Celery tasks: thin, explicitly named wrappers over the engine that take only strings.

=========================  ==========================================================
``crmsync.poll_system``    capture one system's changes (one poll per system at a time)
``crmsync.drain_system``   push one system's due outbox rows (any number in parallel: a
                           drain whose claim comes back full queues one more, so a
                           backlog spreads over every idle worker)
``crmsync.resync``         re-read one system or all (``full``: a complete scan), push
``crmsync.reconcile``      anti-entropy for one system or all: a complete read, the pushes
                           the store owes, deletes found by the scan (DESIGN §2.7); counts
                           what it healed
``crmsync.detect_deletes`` the older name of a one-system reconcile (kept for queued tasks)
``crmsync.verify``         compare every system with the store, field by field
=========================  ==========================================================

Every task is idempotent: a poll re-reads from the committed cursor, a drain claims rows with
``FOR UPDATE SKIP LOCKED`` and re-checks the diff at send time, creates recover their intent.
So a task redelivered after a worker died (``acks_late``) redoes the work without duplicates.
A worker's outbox claims last 20 s and its heartbeat renews them while it lives; every beat
also queues a drain for the systems whose rows a dead worker left claimed (sync.engine.claims),
so its pushes are redone within about 25 s, not at the next poll or redelivery.
Only the connector's :class:`~sync.connectors.errors.Retryable` errors are retried by Celery;
anything else fails the task and is recorded on the run.
"""

from __future__ import annotations

from typing import Any

import structlog
from celery import signals

from sync.celery_app import app
from sync.connectors.errors import Retryable
from sync.engine import operations
from sync.engine.claims import stranded_systems
from sync.engine.context import Counts, Engine
from sync.engine.cycle import poll
from sync.logging import bind_system
from sync.runtime import context, shutdown
from sync.runtime.jobs import drain_job, poll_job, reconcile_job, resync_job, verify_job
from sync.runtime.locks import RenewedLock

log = structlog.get_logger("crmsync.tasks")

#: renewed every third of it while the poll runs; a killed poller's lock lapses within it
POLL_LOCK_TTL = 20.0
#: how long a full resync waits for a running poll of the same system to finish
RESYNC_LOCK_WAIT = 120.0
DRAIN_FLAG_TTL = 120

_RETRY: dict[str, Any] = {
    "autoretry_for": (Retryable,),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}


class UnknownSystem(ValueError):
    """A task named a system the configuration does not have."""


def _engine(system: str | None = None) -> Engine:
    engine = context.engine(distributed=True)
    if not engine.claims.watching:
        # This worker process's heartbeat renews its claims and, every beat, queues a drain
        # for the systems a dead worker left claimed, once its claims ran out.
        engine.claims.watch(lambda: enqueue_drains(engine, stranded_systems(engine)))
    if system is not None and system not in engine.config.systems:
        raise UnknownSystem(f"unknown system {system!r}; configured: {', '.join(engine.systems)}")
    if system is not None:
        bind_system(system)
    return engine


def _redis() -> Any:
    url = context.engine().config.broker.url
    if not url:
        raise RuntimeError("no broker configured (CRMSYNC_BROKER_URL): tasks need Redis")
    return context.redis_client(url)


def poll_lock(system: str) -> RenewedLock:
    """The lock that lets one poll of ``system`` run at a time, cluster-wide."""
    return RenewedLock(_redis(), f"{context.prefix()}:lock:poll:{system}", ttl=POLL_LOCK_TTL)


def enqueue_drains(engine: Engine, systems: list[str] | None = None) -> list[str]:
    """Queue one drain per system that has claimable outbox rows (unless one is waiting);
    ``systems``: only these (default: every system with due rows)."""
    queued = []
    client = _redis()
    for system in operations.due_systems(engine) if systems is None else systems:
        flag = f"{context.prefix()}:drain-queued:{system}"
        if client.set(flag, "1", nx=True, ex=DRAIN_FLAG_TTL):
            app.send_task("crmsync.drain_system", args=[system])
            queued.append(system)
    return queued


def _poll_system(self: Any, system: str, full: bool = False) -> dict[str, Any]:
    engine = _engine(system)
    lock = poll_lock(system)
    if not lock.acquire():
        log.info("poll_skipped", reason="another poll of this system is running")
        return {"system": system, "status": "busy"}
    try:
        counts = poll_job(engine, system, full)
    finally:
        lock.release()
    drains = enqueue_drains(engine)
    return {"system": system, "status": "done", "counts": counts.values, "drains": drains}


def _drain_system(self: Any, system: str) -> dict[str, Any]:
    engine = _engine(system)
    client = _redis()
    client.delete(f"{context.prefix()}:drain-queued:{system}")
    counts = drain_job(
        engine,
        system,
        stop=lambda: shutdown.stopping(client, context.prefix()),
        # a backlog bigger than one claim: another worker drains this system beside us
        spread=lambda: enqueue_drains(engine, [system]),
    )
    if counts["sliced"]:  # the slice ended with rows left: the next one queues behind polls
        enqueue_drains(engine, [system])
    return {"system": system, "counts": counts.values}


def _announce_shutdown(**_: Any) -> None:
    """Warm shutdown (the worker's main process): drains in flight stop claiming and return."""
    try:  # the broker the app was made with: no engine to build in the main process
        shutdown.announce(context.redis_client(str(app.conf.broker_url)), context.prefix())
    except Exception:  # shutting down anyway; the drains' slices still end
        log.warning("shutdown_not_announced", exc_info=True)


def _locked_full_poll(engine: Engine, system: str, *, full: bool, kind: str) -> Counts:
    lock = poll_lock(system)
    if not lock.acquire(wait=RESYNC_LOCK_WAIT):
        raise Retryable(f"a poll of {system} is still running", system=system)
    try:
        return poll_job(engine, system, full, kind)
    finally:
        lock.release()


def _resync(
    self: Any, system: str | None = None, full: bool = False, run_id: str | None = None
) -> dict[str, Any]:
    """Re-read (``full``: completely) one system or all, then push until nothing is due;
    ``run_id`` names the ``runs`` row whoever enqueued it follows (sync.runtime.jobs)."""
    engine = _engine(system)

    def locked(engine: Engine, name: str, full: bool) -> Counts:
        return _locked_full_poll(engine, name, full=full, kind="poll")

    run_id, status, counts = resync_job(engine, system, full, run_id, locked)
    return {"run_id": run_id, "status": status, "counts": counts.values}


def _locked_reconcile_read(engine: Engine, system: str, run_id: str) -> Counts:
    """A reconcile's complete read, under the system's poll lock like any poll."""
    lock = poll_lock(system)
    if not lock.acquire(wait=RESYNC_LOCK_WAIT):
        raise Retryable(f"a poll of {system} is still running", system=system)
    try:
        return poll(engine, system, full=True, run_id=run_id)
    finally:
        lock.release()


def _reconcile(self: Any, system: str | None = None, run_id: str | None = None) -> dict[str, Any]:
    engine = _engine(system)
    report = reconcile_job(engine, system, run_id, full_poll=_locked_reconcile_read)
    enqueue_drains(engine)
    return {"run_id": report.run_id, "status": report.status, "healed": report.healed}


def _detect_deletes(self: Any, system: str) -> dict[str, Any]:
    return _reconcile(self, system)


def _verify(self: Any) -> dict[str, Any]:
    run_id, clean, counts = verify_job(_engine())
    return {"run_id": run_id, "clean": clean, "counts": counts.values}


# Registered with calls rather than decorators (Celery's decorators are untyped); the names
# are the wire contract with the scheduler, the CLI and the admin API.
poll_system: Any = app.task(name="crmsync.poll_system", bind=True, **_RETRY)(_poll_system)
drain_system: Any = app.task(name="crmsync.drain_system", bind=True, **_RETRY)(_drain_system)
resync: Any = app.task(name="crmsync.resync", bind=True, **_RETRY)(_resync)
reconcile: Any = app.task(name="crmsync.reconcile", bind=True, **_RETRY)(_reconcile)
detect_deletes: Any = app.task(name="crmsync.detect_deletes", bind=True, **_RETRY)(_detect_deletes)
verify: Any = app.task(name="crmsync.verify", bind=True, **_RETRY)(_verify)
signals.worker_shutting_down.connect(_announce_shutdown, weak=False)
