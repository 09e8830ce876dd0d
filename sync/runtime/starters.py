"""Where a job runs, the other half of :mod:`sync.runtime.jobs`: :class:`HereJobs` runs it in
this process, one at a time on a thread (embedded mode), :class:`EnqueuedJobs` queues its row
and sends the Celery task (distributed); :func:`job_starter` picks one from the config. Both
start a job and return the id of the row to follow, which is all the admin API and the CLI
need. :func:`celery_sender` is the one way a task is enqueued.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sync.engine.context import Engine
from sync.runtime.jobs import queue_run, reconcile_job, resync_job

if TYPE_CHECKING:
    from sync.config import Config


class HereJobs:
    """Embedded mode: each job's row is queued now and the job runs on a thread of this
    process, one job at a time (the store is SQLite; two writers would only wait)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.one_at_a_time = threading.Lock()
        self.checks: dict[str, Callable[[], object]] | None = None

    def _start(self, name: str, work: Callable[[], object]) -> None:
        def locked() -> None:
            with self.one_at_a_time:
                work()

        threading.Thread(target=locked, name=name, daemon=True).start()

    def resync(self, system: str | None, full: bool) -> str:
        run_id = queue_run(self.engine, system)
        self._start(f"resync:{run_id}", lambda: resync_job(self.engine, system, full, run_id))
        return run_id

    def reread(self, system: str) -> None:
        self.resync(system, True)

    def reconcile(self, system: str | None) -> str:
        run_id = queue_run(self.engine, system, kind="reconcile")
        self._start(f"reconcile:{run_id}", lambda: reconcile_job(self.engine, system, run_id))
        return run_id


class EnqueuedJobs:
    """Distributed mode: each job's row is queued here and its Celery task sent to this
    config's broker (not the import-time default app of the process); a worker runs it."""

    def __init__(self, engine: Engine, config: Config) -> None:
        from sync.runtime.context import redis_client

        self.engine = engine
        self.send = celery_sender(config)
        client = redis_client(config.broker.url or "")
        self.checks: dict[str, Callable[[], object]] | None = {"broker": lambda: client.ping()}

    def resync(self, system: str | None, full: bool) -> str:
        run_id = queue_run(self.engine, system)
        self.send("crmsync.resync", [system, full, run_id])
        return run_id

    def reread(self, system: str) -> None:
        self.send("crmsync.resync", [system, True, None])

    def reconcile(self, system: str | None) -> str:
        run_id = queue_run(self.engine, system, kind="reconcile")
        self.send("crmsync.reconcile", [system, run_id])
        return run_id


def celery_sender(config: Config) -> Callable[[str, list[Any]], None]:
    """Sends a Celery task to ``config``'s broker, routed to its system's queue — the one way
    jobs are enqueued (the admin API, the CLI and the distributed scheduler). Not the
    import-time default app, which reads the environment's config, not the one given."""
    from sync.celery_app import make_app

    url = config.broker.url
    if not url:
        raise ValueError("no broker configured (CRMSYNC_BROKER_URL): jobs run here")
    app = make_app(url, list(config.systems))

    def send(task: str, args: list[Any]) -> None:
        app.send_task(task, args=args)

    return send


def job_starter(engine: Engine, config: Config) -> HereJobs | EnqueuedJobs:
    """Where this process starts jobs: Celery when a broker is configured, else here."""
    if config.broker.url:
        return EnqueuedJobs(engine, config)
    return HereJobs(engine)
