"""A resync, shared by the Celery task and embedded mode: re-read one system or all
(``full``: a complete scan, which also finds deletes), then push until nothing is due.

Progress is written to the ``runs`` row as it goes (``counts.systems_done`` of
``counts.systems_total``), so whoever started it — ``crmsync resync --wait``, the admin API —
follows it by reading that row.
"""

from __future__ import annotations

from collections.abc import Callable

from sync.connectors.errors import ConnectorError
from sync.engine.cycle import finish_run, poll, start_run
from sync.engine.push import drain
from sync.engine.state import Counts, Engine, new_id
from sync.metrics import observe_counts, observe_error
from sync.store import runs

#: (engine, system, full) -> counts of one poll; the task wraps it in the system's poll lock
PollFn = Callable[[Engine, str, bool], Counts]


def recorded_poll(engine: Engine, system: str, full: bool, kind: str = "poll") -> Counts:
    """One poll, as its own ``runs`` row, feeding the metrics."""
    run_id = start_run(engine, kind, system)
    try:
        counts = poll(engine, system, full=full, run_id=run_id)
    except Exception as exc:
        observe_error(system, exc)
        finish_run(engine, run_id, "failed", Counts(), f"{type(exc).__name__}: {exc}")
        raise
    finish_run(engine, run_id, "done", counts)
    observe_counts(system, counts.values)
    return counts


def queue_run(engine: Engine, system: str | None, kind: str = "resync") -> str:
    """Create a ``queued`` run row now, so its id can be followed before a worker starts it."""
    run_id = new_id("run")
    with engine.session() as session:
        runs.queue(session, run_id, kind, system)
        session.commit()
    return run_id


def open_run(engine: Engine, run_id: str | None, kind: str, system: str | None) -> str:
    if run_id is None:
        return start_run(engine, kind, system)
    with engine.session() as session:
        runs.restart(session, run_id, kind, system)  # queued, or a redelivered task
        session.commit()
    return run_id


def _progress(engine: Engine, run_id: str, counts: Counts) -> None:
    with engine.session() as session:
        if runs.set_counts(session, run_id, dict(counts.values)) is not None:
            session.commit()


def perform_resync(
    engine: Engine,
    system: str | None,
    full: bool,
    run_id: str | None = None,
    poll_fn: PollFn = recorded_poll,
) -> tuple[str, str, Counts]:
    """Run a resync; returns (run id, status, counts). Status ``partial`` when a system failed."""
    systems = [system] if system else engine.systems
    run_id = open_run(engine, run_id, "resync", system)
    counts = Counts({"systems_total": len(systems) + 1})
    status, errors = "done", []
    try:
        for name in systems:
            try:
                counts.merge(poll_fn(engine, name, full))
            except ConnectorError as exc:
                status = "partial"
                errors.append(f"{name}: {exc}")
            counts.add("systems_done")
            _progress(engine, run_id, counts)
        for name in engine.systems:
            pushed = drain(engine, name, run_id=run_id)
            observe_counts(name, pushed.values)
            counts.merge(pushed)
        counts.add("systems_done")
    except BaseException as exc:
        finish_run(engine, run_id, "failed", counts, f"{type(exc).__name__}: {exc}")
        raise
    finish_run(engine, run_id, status, counts, "; ".join(errors) or None)
    return run_id, status, counts
