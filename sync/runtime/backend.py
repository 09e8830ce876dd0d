"""How the admin API starts work: the :class:`AdminBackend` it acts on, and
:func:`admin_backend`, which builds one for a configuration — Celery tasks when distributed
(``broker.url`` set), a thread of this process when embedded.

It lives with the runtime, not in ``sync.admin``: which process does the work is a runtime
decision, and the CLI's ``deadletters --replay`` re-reads a system through the same backend.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sync.config import Config
    from sync.engine.state import Engine


@dataclass
class AdminBackend:
    """What the API acts on: the Engine, and how to start a resync (enqueue or run here)."""

    engine: Engine
    #: (system, full) -> run id; enqueues the Celery task, or runs it in a thread when embedded
    resync: Callable[[str | None, bool], str]
    #: a system whose dead letter asks for a re-read -> start that (a full poll)
    reread: Callable[[str], None]
    #: extra readiness checks by name (e.g. "broker": ping Redis); raise when not ready
    checks: dict[str, Callable[[], object]] | None = None
    #: system or None (all) -> run id of a reconcile (anti-entropy), enqueued or run here
    reconcile: Callable[[str | None], str] | None = None


def admin_backend(engine: Engine, config: Config) -> AdminBackend:
    """How the admin API starts work: Celery tasks when distributed, a thread when embedded."""
    from sync.runtime.resync import perform_resync, queue_run

    if config.broker.url:
        from sync.celery_app import make_app
        from sync.runtime.context import redis_client

        # the app for *this* config's broker (not the import-time default of the process)
        celery_app = make_app(config.broker.url, list(config.systems))

        client = redis_client(config.broker.url)

        def enqueue_resync(system: str | None, full: bool) -> str:
            run_id = queue_run(engine, system)
            celery_app.send_task("crmsync.resync", args=[system, full, run_id])
            return run_id

        def enqueue_reread(system: str) -> None:
            celery_app.send_task("crmsync.resync", args=[system, True, None])

        def enqueue_reconcile(system: str | None) -> str:
            run_id = queue_run(engine, system, kind="reconcile")
            celery_app.send_task("crmsync.reconcile", args=[system, run_id])
            return run_id

        return AdminBackend(
            engine,
            enqueue_resync,
            enqueue_reread,
            checks={"broker": lambda: client.ping()},
            reconcile=enqueue_reconcile,
        )

    one_at_a_time = threading.Lock()

    def resync_here(system: str | None, full: bool) -> str:
        run_id = queue_run(engine, system)

        def work() -> None:
            with one_at_a_time:
                perform_resync(engine, system, full, run_id)

        threading.Thread(target=work, name=f"resync:{run_id}", daemon=True).start()
        return run_id

    def reread_here(system: str) -> None:
        resync_here(system, True)

    def reconcile_here(system: str | None) -> str:
        from sync.engine.reconcile import reconcile as reconcile_systems

        run_id = queue_run(engine, system, kind="reconcile")

        def work() -> None:
            with one_at_a_time:
                reconcile_systems(engine, [system] if system else None, run_id=run_id)

        threading.Thread(target=work, name=f"reconcile:{run_id}", daemon=True).start()
        return run_id

    return AdminBackend(engine, resync_here, reread_here, reconcile=reconcile_here)
