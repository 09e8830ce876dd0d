"""APScheduler jobs from config: a poll per system every ``poll_every``, and a reconcile (a
full scan: anti-entropy and deletes, DESIGN §2.1/§2.7) every ``sync.reconcile_every``.

Two ways to run a job:

- distributed (:class:`EnqueueDispatcher`): the job only enqueues a Celery task. Every
  scheduler may run, but only the leader (a renewed Redis lock, :mod:`sync.runtime.leader`)
  enqueues, and each job claims its period once (``claim_slot``), so two schedulers never
  double-enqueue and a dead leader is replaced within the lock's TTL;
- embedded (:class:`EmbeddedDispatcher`): the job runs here, one job at a time, through the
  job runner (:mod:`sync.runtime.jobs`: a poll, then every outbox with due rows, as one run).

``SIGHUP`` reloads the configuration and reschedules the jobs (a bad file is logged and the
old one kept). ``SIGINT`` / ``SIGTERM`` stop taking new jobs, let the running one finish and exit.
APScheduler 3 docs: https://apscheduler.readthedocs.io/en/3.x/userguide.html
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any, Protocol

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from sync.config import Config, ConfigError, load_config
from sync.engine.context import Counts, Engine
from sync.engine.pace import poll_due
from sync.runtime.heartbeat import Heartbeat
from sync.runtime.jobs import logged_failure, poll_and_drain_job, reconcile_job
from sync.timefmt import utcnow

log = structlog.get_logger("crmsync.scheduler")


class Dispatcher(Protocol):
    """What a scheduled job does for one system."""

    def poll(self, system: str) -> None: ...

    def reconcile(self, system: str) -> None: ...


class EnqueueDispatcher:
    """Distributed mode: enqueue Celery tasks, only while leading, once per period per job."""

    def __init__(
        self,
        client: Any,
        send: Callable[[str, list[Any]], None],
        *,
        prefix: str = "crmsync",
        leader_ttl: float = 15.0,
        due: Callable[[str], bool] | None = None,
    ) -> None:
        from sync.runtime.leader import Leadership

        self._client = client
        self._prefix = prefix
        self._send = send  # runtime.starters.celery_sender: the config's broker, the system's queue
        self.leadership = Leadership(client, prefix=prefix, ttl=leader_ttl)
        self.periods: dict[str, float] = {}
        #: whether a system's poll may start now (a scan system's stretched interval,
        #: sync.engine.pace); None: every tick of its interval enqueues one
        self.due = due

    def _enqueue(self, job: str, task: str, args: list[Any], *, paced: bool = False) -> bool:
        from sync.runtime.leader import claim_slot

        if not self.leadership.check():
            return False
        if paced and self.due is not None and not _due(self.due, args[0]):
            return False
        every = self.periods.get(job, 0.0)
        if every > 0 and not claim_slot(self._client, job, every, prefix=self._prefix):
            log.debug("enqueue_skipped", job=job, reason="already enqueued this period")
            return False
        self._send(task, args)
        log.debug("enqueued", job=job, task=task)  # every poll: the worker logs what it did
        return True

    def poll(self, system: str) -> None:
        self._enqueue(f"poll:{system}", "crmsync.poll_system", [system], paced=True)

    def reconcile(self, system: str) -> None:
        self._enqueue(f"reconcile:{system}", "crmsync.reconcile", [system])


class EmbeddedDispatcher:
    """Embedded mode: run the engine here, one job at a time, then push what is due."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.last: dict[str, Counts] = {}

    def poll(self, system: str) -> None:
        if self.stopping.is_set():
            return
        if not _due(lambda name: poll_due(self.engine, name), system):
            return
        with self.lock:
            counts = logged_failure(
                "poll",
                system,
                lambda: poll_and_drain_job(self.engine, system, stopping=self.stopping),
            )
            if counts is not None:
                self.last[system] = counts

    def reconcile(self, system: str) -> None:
        if self.stopping.is_set():
            return
        with self.lock:
            report = logged_failure(
                "reconcile", system, lambda: reconcile_job(self.engine, system, metered=True)
            )
            if report is not None:
                self.last[system] = report.totals()


def _due(due: Callable[[str], bool], system: str) -> bool:
    """``due(system)``, logged when it holds the poll back; a store that cannot answer
    holds nothing back (the poll itself reports what is wrong)."""
    try:
        ready = due(system)
    except Exception as exc:
        log.warning("pace_unknown", system=system, error=str(exc))
        return True
    if not ready:
        log.debug("poll_skipped", system=system, reason="stretched interval (status: lag)")
    return ready


def schedule_jobs(scheduler: Any, config: Config, dispatcher: Dispatcher) -> list[str]:
    """(Re)create the poll and reconcile jobs of every system; returns the job ids."""

    for job in scheduler.get_jobs():
        job.remove()
    ids = []
    now = utcnow()
    reconcile_every = config.sync.reconcile_every.total_seconds()
    for system, cfg in config.systems.items():
        every = max(cfg.poll_every.total_seconds(), 0.1)
        ids.append(f"poll:{system}")
        scheduler.add_job(
            dispatcher.poll,
            "interval",
            seconds=every,
            args=[system],
            id=f"poll:{system}",
            next_run_time=now,  # poll at start, then every interval
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, int(every)),
        )
        if reconcile_every > 0:
            ids.append(f"reconcile:{system}")
            scheduler.add_job(
                dispatcher.reconcile,
                "interval",
                seconds=reconcile_every,
                args=[system],
                id=f"reconcile:{system}",
                coalesce=True,
                max_instances=1,
                misfire_grace_time=max(1, int(reconcile_every)),
            )
        if isinstance(dispatcher, EnqueueDispatcher):
            dispatcher.periods[f"poll:{system}"] = every
            dispatcher.periods[f"reconcile:{system}"] = reconcile_every
    return ids


def make_scheduler(config: Config, dispatcher: Dispatcher) -> BackgroundScheduler:
    """A background scheduler with the config's jobs; one job thread in embedded mode."""
    threads = 1 if isinstance(dispatcher, EmbeddedDispatcher) else 4
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(threads)}, timezone="UTC"
    )
    schedule_jobs(scheduler, config, dispatcher)
    return scheduler


class Runner:
    """Runs a scheduler until SIGINT/SIGTERM, reloading the config on SIGHUP."""

    def __init__(
        self,
        config: Config,
        dispatcher: Dispatcher,
        *,
        config_path: str | None = None,
        on_reload: Callable[[Config], None] | None = None,
    ) -> None:
        self.config = config
        self.dispatcher = dispatcher
        self.config_path = config_path
        self.on_reload = on_reload
        self.scheduler = make_scheduler(config, dispatcher)
        self.stop = threading.Event()
        self._reload = threading.Event()
        self.heartbeat = Heartbeat.from_env()  # liveness for probes ($CRMSYNC_HEARTBEAT_FILE)

    def install_signals(self) -> None:
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGTERM, self._on_stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *_: self._reload.set())

    def _on_stop(self, signum: int, _frame: Any) -> None:
        if self.stop.is_set():  # a second Ctrl-C: stop waiting
            raise KeyboardInterrupt
        log.info("stopping", signal=signal.Signals(signum).name)
        self.stop.set()
        if isinstance(self.dispatcher, EmbeddedDispatcher):
            self.dispatcher.stopping.set()

    def reload(self) -> bool:
        """Re-read the config and reschedule; keep the old one if the new one is invalid."""
        self._reload.clear()
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            log.error("reload_failed", error=str(exc))
            return False
        self.config = config
        if self.on_reload is not None:
            self.on_reload(config)
        schedule_jobs(self.scheduler, config, self.dispatcher)
        log.info("config_reloaded", systems=list(config.systems))
        return True

    def start(self) -> None:
        self.scheduler.start()
        log.info("scheduler_started", jobs=[job.id for job in self.scheduler.get_jobs()])

    def tick(self, timeout: float = 0.5) -> bool:
        """Wait up to ``timeout``; handle a pending reload. False once asked to stop."""
        if self.stop.wait(timeout):
            return False
        if self._reload.is_set():
            self.reload()
        if self.heartbeat is not None and self.scheduler.running:
            self.heartbeat.beat()
        return True

    def shutdown(self) -> None:
        """Stop scheduling; wait for the job in flight to finish."""
        self.stop.set()
        self.scheduler.shutdown(wait=True)
        if isinstance(self.dispatcher, EnqueueDispatcher):
            self.dispatcher.leadership.resign()
        log.info("scheduler_stopped")

    def run_forever(self) -> None:
        self.start()
        try:
            while self.tick():
                pass
        finally:
            self.shutdown()
