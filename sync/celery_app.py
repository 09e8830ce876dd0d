"""The Celery application: Redis broker, JSON only, late acks, one queue per system.

Run workers with ``celery -A sync.celery_app worker`` (or ``crmsync worker``). Choices, each
from Celery's docs (https://docs.celeryq.dev/en/stable/userguide/configuration.html):

- ``task_acks_late`` + ``task_reject_on_worker_lost``: a task is acknowledged only after it
  ran, so a worker that dies mid-task (SIGKILL, OOM) leaves it to be redelivered and redone.
  Tasks are idempotent, so running one twice is harmless.
- ``worker_prefetch_multiplier=1``: a worker reserves one message at a time, so a slow vendor's
  backlog sits in Redis where an idle worker can take it, not in a busy worker's buffer.
- One queue per system (``crmsync.<system>``) for polls and drains, plus ``crmsync.admin`` for
  resync and verify: workers consume the queues round-robin, so one slow vendor cannot starve
  the others; a deployment can also dedicate workers (``-Q crmsync.close``).
- No result backend (``task_ignore_result``): nothing reads results; progress and outcomes are
  in the store's ``runs`` table.
- Time limits: a soft limit raises in the task so it can stop cleanly; the hard limit kills it.
  The Redis ``visibility_timeout`` must exceed the hard limit, or a running task is redelivered.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any, ClassVar

import structlog
from celery import Celery, bootsteps, signals
from kombu.entity import Exchange, Queue

from sync import metrics
from sync.config import BROKER_URL_ENV, ConfigError, load_config
from sync.logging import bind_task, clear_context, configure_logging, current_format
from sync.runtime.heartbeat import Heartbeat
from sync.timefmt import utcnow

ADMIN_QUEUE = "crmsync.admin"
TIME_LIMIT_ENV = "CRMSYNC_TASK_TIME_LIMIT"
VISIBILITY_ENV = "CRMSYNC_VISIBILITY_TIMEOUT"
METRICS_PORT_ENV = "CRMSYNC_METRICS_PORT"
#: tasks routed to the queue of the system named in their first argument
SYSTEM_TASKS = frozenset(
    {"crmsync.poll_system", "crmsync.drain_system", "crmsync.reconcile", "crmsync.detect_deletes"}
)

log = structlog.get_logger("crmsync.celery")


def system_queue(system: str) -> str:
    return f"crmsync.{system}"


def _config_systems_and_broker() -> tuple[list[str], str | None]:
    try:
        config = load_config()
    except ConfigError:
        # No usable config (e.g. `celery inspect` run elsewhere): tasks will fail loudly when
        # they build the engine; the app itself can still talk to the broker.
        return [], os.environ.get(BROKER_URL_ENV) or None
    return list(config.systems), config.broker.url


def route_task(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any
) -> dict[str, str]:
    """Polls, drains and delete scans go to their system's queue; everything else to admin."""
    if name in SYSTEM_TASKS:
        system = (args[0] if args else None) or (kwargs or {}).get("system")
        if system:
            return {"queue": system_queue(str(system))}
    return {"queue": ADMIN_QUEUE}


def _queue(name: str) -> Any:
    # Its own direct exchange and routing key: a message routed to one system's queue must
    # land in that queue only (a shared default exchange would copy it into every queue).
    return Queue(name, Exchange(name, type="direct"), routing_key=name)  # type: ignore[no-untyped-call]


def make_app(broker_url: str | None = None, systems: list[str] | None = None) -> Celery:
    """The Celery app for ``broker_url`` with one queue per system."""
    if broker_url is None or systems is None:
        found_systems, found_broker = _config_systems_and_broker()
        broker_url = broker_url or found_broker
        systems = found_systems if systems is None else systems
    hard = int(os.environ.get(TIME_LIMIT_ENV, "1800"))
    app = Celery("crmsync", broker=broker_url or None, include=["sync.tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=hard,
        task_soft_time_limit=max(1, hard - 60),
        broker_transport_options={
            "visibility_timeout": int(os.environ.get(VISIBILITY_ENV, str(hard + 600)))
        },
        broker_connection_retry_on_startup=True,
        task_default_queue=ADMIN_QUEUE,
        task_queues=[_queue(ADMIN_QUEUE), *(_queue(system_queue(s)) for s in systems)],
        task_create_missing_queues=True,
        task_routes=(route_task,),
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app


app = make_app()


def _setup_logging(**_: Any) -> None:
    """Celery leaves logging to us: the same structlog set-up as the CLI, in the format the
    CLI chose (``--log-format``; a forked child inherits it), else ``$CRMSYNC_LOG_FORMAT``."""
    if configure_logging(current_format()) == "json":
        _say_in_json()


def _say_in_json() -> None:
    """Celery writes its shutdown notices ("worker: Warm shutdown") with ``safe_say``, raw to
    the terminal from a signal handler: in JSON mode each becomes one JSON line instead. Still
    one ``os.write`` and no logging call: the logging lock may be held when the signal lands."""
    import celery.apps.worker as celery_worker

    def say(msg: str, f: Any = sys.__stderr__) -> None:
        line = {
            "event": " ".join(str(msg).split()),
            "level": "info",
            "logger": "celery.worker",
            "timestamp": utcnow().isoformat().replace("+00:00", "Z"),
        }
        stream = f or sys.__stderr__
        with contextlib.suppress(OSError, ValueError, AttributeError):  # best effort, as Celery's
            os.write(stream.fileno(), (json.dumps(line) + "\n").encode())  # type: ignore[union-attr]

    celery_worker.safe_say = say


def _no_banner(sender: Any = None, instance: Any = None, conf: Any = None, **_: Any) -> None:
    """Celery prints a ~30-line text banner to stdout at start unless quiet: one log line
    (JSON in JSON mode) says the same — which queues, how many processes, which broker."""
    if instance is None:
        return
    instance.quiet = True
    log.info(
        "worker_starting",
        hostname=sender,
        queues=sorted(q.name for q in instance.app.amqp.queues.consume_from.values()),
        concurrency=getattr(instance, "concurrency", None),
        pool=getattr(getattr(instance, "pool_cls", None), "__name__", None),
        broker=instance.app.connection_for_read().as_uri(),  # password masked by kombu
    )


class HeartbeatStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Touches ``$CRMSYNC_HEARTBEAT_FILE`` from the consumer's own timer, so the file stops
    moving when the loop that takes tasks off the broker is stuck (see sync.runtime.heartbeat).
    """

    requires: ClassVar[tuple[str, ...]] = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.heartbeat = Heartbeat.from_env()
        self.timer: Any = None

    def start(self, parent: Any) -> None:
        if self.heartbeat is None:
            return
        self.heartbeat.beat()
        self.timer = parent.timer.call_repeatedly(self.heartbeat.interval, self.heartbeat.beat)

    def stop(self, parent: Any) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


app.steps["consumer"].add(HeartbeatStep)


def _bind_task(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    clear_context()
    if task_id:
        bind_task(task_id, getattr(task, "name", None))


def _unbind_task(**_: Any) -> None:
    clear_context()


def _after_fork(**_: Any) -> None:
    """A forked pool child must not share the parent's DB or Redis connections."""
    from sync.runtime import context

    context.reset()
    if os.environ.get(METRICS_PORT_ENV):
        metrics.child_started()


def _serve_metrics(**_: Any) -> None:
    """In the worker's main process, before the pool forks: every process (each child, or
    this one with a solo/threads pool) counts into shared files, served from here."""
    port = os.environ.get(METRICS_PORT_ENV)
    if port:
        directory = metrics.share_across_processes()
        metrics.serve_shared(int(port))
        log.info("metrics_served", port=port, directory=directory)


def _flush_metrics(**_: Any) -> None:
    if os.environ.get(METRICS_PORT_ENV):
        metrics.flush_api_calls()


def _child_exited(pid: int | None = None, **_: Any) -> None:
    if pid is not None:
        metrics.child_exited(pid)


# Connected with calls rather than decorators: Celery's signal decorators are untyped.
signals.setup_logging.connect(_setup_logging, weak=False)
signals.celeryd_after_setup.connect(_no_banner, weak=False)
signals.task_prerun.connect(_bind_task, weak=False)
signals.task_postrun.connect(_unbind_task, weak=False)
signals.worker_process_init.connect(_after_fork, weak=False)
signals.worker_init.connect(_serve_metrics, weak=False)
signals.task_postrun.connect(_flush_metrics, weak=False)
signals.worker_process_shutdown.connect(_child_exited, weak=False)
