"""How the admin API starts work: the :class:`AdminBackend` it acts on, and
:func:`admin_backend`, which builds one for a configuration — Celery tasks when distributed
(``broker.url`` set), a thread of this process when embedded.

It lives with the runtime, not in ``sync.admin``: which process does the work is a runtime
decision. The jobs, and where they run, are :mod:`sync.runtime.jobs` — the backend only hands
the API their starters, so the API, the CLI and the workers run the same jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sync.config import Config
    from sync.engine.context import Engine


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
    """How the admin API starts work: Celery tasks when distributed (with a broker readiness
    check), a thread of this process when embedded — :func:`sync.runtime.starters.job_starter`."""
    from sync.runtime.starters import job_starter

    jobs = job_starter(engine, config)
    return AdminBackend(
        engine, jobs.resync, jobs.reread, checks=jobs.checks, reconcile=jobs.reconcile
    )
