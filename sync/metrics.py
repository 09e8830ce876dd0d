"""Prometheus metrics (prometheus-client): what the sync did and how far behind it is.

Two kinds, on one registry:

- Counters this process increments as it works — records fetched / changed / pushed by system,
  conflicts, errors — via :func:`observe_counts` and :func:`observe_error`. A worker exports
  them on ``CRMSYNC_METRICS_PORT``; the admin API exports the admin process's.
- Histograms this process observes: vendor request latency (each attempt, from the HTTP
  layer's observers) and propagation lag (a change queued for a system until the push landed);
  the request budget each vendor's rate-limit headers say is left (a gauge).
- Values read at scrape time: vendor API calls by system and status (from the HTTP layer's
  request counters) and, from the store (so they are right whichever process scrapes), poll lag,
  health, pending outbox rows, open conflicts and dead letters.
- ``crmsync_build_info`` (version, Python) and the process's ``process_*`` metrics (CPU,
  memory, open files; in multiprocess mode those of the worker's main process).

A prefork worker (``crmsync worker --concurrency 4``) does its work in child processes, each
with its own memory: the worker's parent process calls :func:`share_across_processes` before
forking, so every child's counters (and its vendor API calls) go to files in
``PROMETHEUS_MULTIPROC_DIR``, and :func:`serve_shared` serves their sum from the parent
(prometheus-client's multiprocess mode). A child's counts outlive it: work done is not undone.

See https://prometheus.github.io/client_python/collector/custom/ for the collector pattern and
https://prometheus.github.io/client_python/multiprocess/ for the multiprocess mode.
"""

from __future__ import annotations

import glob
import os
import platform
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sync import __version__
from sync.connectors.http.stats import REQUEST_STATS, Budget, RequestKey, RequestStats

REGISTRY = CollectorRegistry(auto_describe=True)
log = structlog.get_logger("crmsync.metrics")

#: Count names the engine reports (sync.engine.context.Counts) -> the metric they feed.
_RECORD_OUTCOMES = {
    "fetched": "fetched",
    "changed": "changed",
    "created": "pushed",
    "pushed": "pushed",
    "adopted": "pushed",
    "deleted": "deleted",
    "dead_letters": "dead_lettered",
}

RECORDS = Counter(
    "crmsync_records",
    "Records handled, by system and outcome (fetched, changed, pushed, deleted, dead_lettered).",
    ["system", "outcome"],
    registry=REGISTRY,
)
CONFLICTS = Counter(
    "crmsync_conflicts", "Conflicting edits detected, by system.", ["system"], registry=REGISTRY
)
ERRORS = Counter(
    "crmsync_errors",
    "Failed polls, drains and tasks, by system and error type.",
    ["system", "error"],
    registry=REGISTRY,
)

REQUEST_SECONDS = Histogram(
    "crmsync_vendor_request_duration_seconds",
    "Vendor API request latency per attempt (until the response headers), by system and method.",
    ["system", "method"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
PROPAGATION_SECONDS = Histogram(
    "crmsync_propagation_lag_seconds",
    "From a change queued for a system (captured elsewhere) until its push landed there.",
    ["system"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600),
    registry=REGISTRY,
)
BUDGET = Gauge(
    "crmsync_vendor_budget_ratio",
    "Share of the vendor's request allowance left, as its last rate-limit headers said (0..1).",
    ["system"],
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)

#: In multiprocess mode, each process's vendor API calls (the HTTP layer counts them in memory;
#: :func:`flush_api_calls` copies them here). Not on ``REGISTRY``, where
#: :class:`ApiCallsCollector` reads the same counts of a single process.
API_CALLS = Counter(
    "crmsync_api_calls",
    "Vendor API requests sent, by system and status.",
    ["system", "status"],
    registry=None,
)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_SHARED = (RECORDS, CONFLICTS, ERRORS, API_CALLS, REQUEST_SECONDS, PROPAGATION_SECONDS, BUDGET)
_flushed: dict[RequestKey, int] = {}
_flush_lock = threading.Lock()


def observe_counts(system: str, counts: Mapping[str, int]) -> None:
    """Feed one poll's or drain's counts into the counters."""
    for name, value in counts.items():
        if value <= 0:
            continue
        outcome = _RECORD_OUTCOMES.get(name)
        if outcome is not None:
            RECORDS.labels(system, outcome).inc(value)
        elif name == "conflicts":
            CONFLICTS.labels(system).inc(value)


def observe_error(system: str, error: BaseException) -> None:
    ERRORS.labels(system, type(error).__name__).inc()


def observe_propagation(system: str, seconds: float) -> None:
    """A push to ``system`` landed ``seconds`` after its change was queued."""
    PROPAGATION_SECONDS.labels(system).observe(max(0.0, seconds))


def _observe_request(key: RequestKey, seconds: float, budget: Budget | None) -> None:
    REQUEST_SECONDS.labels(key.system, key.method).observe(seconds)
    if budget is not None:
        BUDGET.labels(key.system).set(min(1.0, max(0.0, budget.remaining / budget.limit)))


REQUEST_STATS.observers.append(_observe_request)


class BuildInfoCollector(Collector):
    """``crmsync_build_info{version, python}`` 1: which build a process runs (a gauge, so it
    works in multiprocess mode too)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        info = GaugeMetricFamily(
            "crmsync_build_info",
            "The crmsync build this process runs.",
            labels=["version", "python"],
        )
        info.add_metric([__version__, platform.python_version()], 1.0)
        yield info


class ApiCallsCollector(Collector):
    """Vendor API calls by system and status, read from the HTTP layer's counters."""

    def __init__(self, stats: RequestStats = REQUEST_STATS) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "crmsync_api_calls",
            "Vendor API requests sent, by system and status.",
            labels=["system", "status"],
        )
        totals: dict[tuple[str, str], int] = {}
        for key, count in self._stats.snapshot().items():
            totals[(key.system, key.status)] = totals.get((key.system, key.status), 0) + count
        for (system, status), count in sorted(totals.items()):
            family.add_metric([system, status], count)
        yield family


class StoreCollector(Collector):
    """Gauges read from the store at scrape time: poll lag, outbox, conflicts, dead letters."""

    def __init__(self, health: Callable[[], list[dict[str, Any]]]) -> None:
        self._health = health

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "crmsync_poll_lag_seconds", "Seconds since the last successful poll.", labels=["system"]
        )
        pending = GaugeMetricFamily(
            "crmsync_outbox_pending", "Outbox rows not yet pushed.", labels=["system"]
        )
        conflicts = GaugeMetricFamily(
            "crmsync_conflicts_open", "Open manual conflicts, by system.", labels=["system"]
        )
        dead = GaugeMetricFamily(
            "crmsync_dead_letters_open", "Open dead letters.", labels=["system"]
        )
        held = GaugeMetricFamily(
            "crmsync_system_held",
            "1 while a system is held for an operator (binding changed, mass delete), by reason.",
            labels=["system", "reason"],
        )
        health = GaugeMetricFamily(
            "crmsync_system_health",
            "1 for the poll health: ok, stale (no poll for 3 intervals), error, never.",
            labels=["system", "health"],
        )
        held_deletes = GaugeMetricFamily(
            "crmsync_deletes_held",
            "Deletes the mass-delete guard stopped, waiting for `crmsync deletes`.",
            labels=["system"],
        )
        store_up = GaugeMetricFamily(
            "crmsync_store_up", "1 when the store answered this scrape's questions, else 0."
        )
        try:
            rows = self._health()
        except Exception as exc:
            # The database is down (or gone): the scrape still serves every other metric, and
            # says so, rather than failing whole.
            log.warning("metrics_store_unreadable", error=f"{type(exc).__name__}: {exc}")
            rows = []
            store_up.add_metric([], 0.0)
        else:
            store_up.add_metric([], 1.0)
        yield store_up
        for row in rows:
            system = str(row["system"])
            if row.get("health"):
                health.add_metric([system, str(row["health"])], 1.0)
            if row.get("held"):
                held.add_metric([system, str(row["held"])], 1.0)
            held_deletes.add_metric([system], float(row.get("held_deletes") or 0))
            if row.get("lag_seconds") is not None:
                lag.add_metric([system], float(row["lag_seconds"]))
            pending.add_metric([system], float(row["pending"]))
            conflicts.add_metric([system], float(row["conflicts"]))
            dead.add_metric([system], float(row["dead_letters"]))
        yield from (lag, health, pending, conflicts, dead, held, held_deletes)


REGISTRY.register(ApiCallsCollector())
REGISTRY.register(BuildInfoCollector())
ProcessCollector(registry=REGISTRY)
_store_collector: StoreCollector | None = None


def watch_store(health: Callable[[], list[dict[str, Any]]]) -> None:
    """Export the store gauges computed by ``health`` (once per process; later calls replace)."""
    global _store_collector
    if _store_collector is not None:
        REGISTRY.unregister(_store_collector)
    _store_collector = StoreCollector(health)
    REGISTRY.register(_store_collector)


def render() -> bytes:
    """The registry in the Prometheus text format."""
    return generate_latest(REGISTRY)


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` on ``port`` from a background thread (workers, embedded mode)."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=addr, registry=REGISTRY)


# --------------------------------------------------------------------------- several processes


def share_across_processes() -> str:
    """Count into files under ``$PROMETHEUS_MULTIPROC_DIR`` (a new temporary directory when
    unset) from now on, in this process and the ones it forks. Call it in the parent before
    the pool starts; files a previous run left there are removed (they would add up)."""
    directory = os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="crmsync-metrics-")
    os.makedirs(directory, exist_ok=True)
    for stale in glob.glob(os.path.join(directory, "*.db")):
        os.remove(stale)
    os.environ[MULTIPROC_ENV] = directory
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    child_started()
    return directory


def child_started() -> None:
    """In a freshly forked child: forget the label values inherited from the parent, so each
    is created again in this process's own file."""
    for metric in _SHARED:
        metric.clear()
    with _flush_lock:
        _flushed.clear()
        _flushed.update(REQUEST_STATS.snapshot())  # the parent's calls are the parent's


def flush_api_calls() -> None:
    """Copy the vendor API calls made since the last flush into :data:`API_CALLS` (after each
    task; in multiprocess mode the scraping process cannot read another's memory)."""
    with _flush_lock:
        for key, count in REQUEST_STATS.snapshot().items():
            new = count - _flushed.get(key, 0)
            if new > 0:
                API_CALLS.labels(key.system, key.status).inc(new)
            _flushed[key] = count


def child_exited(pid: int) -> None:
    """A pool child ended: its live gauges go (its counters stay: work done is not undone)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def serve_shared(port: int, addr: str = "0.0.0.0") -> None:
    """Serve the sum over every process counting into ``$PROMETHEUS_MULTIPROC_DIR``."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(BuildInfoCollector())
    ProcessCollector(registry=registry)
    start_http_server(port, addr=addr, registry=registry)
