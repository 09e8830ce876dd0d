"""One full cycle (``crmsync run --once``): capture every system, then drain every outbox
until every push is settled — done, parked (waiting for a reference) or dead-lettered. With
``max_wait``, the cycle also waits out the retries that come due within it (a vendor's 429 and
its ``Retry-After``, a 5xx burst's backoff, a claim left by a killed process running out).
What is still owed at the end is in the report (``left``, per system and status, and when the
next one comes due), and the cycle's status is then ``incomplete``. Each cycle is a ``runs``
row with counts; a cycle that stopped early says so (``interrupted`` or ``failed``), never
``done``.

Captures run one after another (two captures matching the same new deal at once would both
create it); the outboxes are drained at the same time, one thread per system, since each
vendor has its own rate limit and a slow one must not hold up the others."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog

from sync.connectors.errors import ConnectorError
from sync.engine import bindings, first_run
from sync.engine.budget import announced
from sync.engine.capture import capture
from sync.engine.context import Counts, Engine, new_id
from sync.engine.push import drain
from sync.engine.renames import carry_renames
from sync.engine.unresolved import WaitingReference, waiting_references
from sync.logging import carried
from sync.store import cursors, outbox, runs
from sync.store.db import supports_threads
from sync.store.models import Cursor
from sync.timefmt import maybe_utc, utcnow

log = structlog.get_logger("crmsync.cycle")
#: seconds a cycle reuses the previous cycle's owner / company / stage listings
REFERENCE_TTL = 300.0


#: outbox states a cycle still owes work for (``parked`` waits for a reference, not for time)
OWED_STATES = ("pending", "retry", "in_flight")
#: longest single sleep while waiting for a retry (a capture-free cycle re-checks the outbox)
WAIT_STEP = 5.0


@dataclass
class Owed:
    """Pushes not settled yet: per system, how many in each state; when the next comes due
    (a retry's time, or an ``in_flight`` claim running out); and how many are parked."""

    states: dict[str, dict[str, int]] = field(default_factory=dict)
    next_due: dt.datetime | None = None
    parked: dict[str, int] = field(default_factory=dict)
    #: writes held until the operator reviews the first run's match: waiting, not owed
    for_review: dict[str, int] = field(default_factory=dict)
    #: the references parked pushes wait for, named (``engine.unresolved``)
    waiting: list[WaitingReference] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(sum(by_state.values()) for by_state in self.states.values())


@dataclass
class CycleReport:
    run_id: str
    status: str
    counts: Counts
    per_system: dict[str, Counts] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    #: what the cycle could not finish (empty when every push is settled)
    left: Owed = field(default_factory=Owed)

    @property
    def dead_letters(self) -> int:
        return self.counts["dead_letters"]


def start_run(engine: Engine, kind: str, system: str | None = None) -> str:
    run_id = new_id("run")
    with engine.session() as session:
        runs.start(session, run_id, kind, system, engine.worker_id)
        session.commit()
    return run_id


def finish_run(
    engine: Engine, run_id: str, status: str, counts: Counts, error: str | None = None
) -> None:
    with engine.session() as session:
        if runs.finish(session, run_id, status, dict(counts.values), error) is None:
            return
        session.commit()


def poll(engine: Engine, system: str, *, full: bool = False, run_id: str | None = None) -> Counts:
    """Capture one system. A connector failure is recorded on the system's cursor
    (``last_error``: the system's health shows "error") and then re-raised for the caller.
    A held system is not captured (``held`` counted); a changed mapping or a system back in
    the config is read completely, then caught up (``sync.engine.bindings``)."""
    prepared = bindings.before_capture(engine, system)
    if prepared.held:
        log.warning("capture_held", system=system, message=prepared.held)
        return Counts({"held": 1})
    try:
        counts = capture(engine, system, full=full, run_id=run_id, rescan=prepared.full)
        counts.merge(bindings.after_capture(engine, system, prepared))
        return counts
    except ConnectorError as exc:
        with engine.session() as session:
            cursor = cursors.get(session, system) or Cursor(system=system)
            cursor.last_error = str(exc)[:1000]
            cursor.budget = announced(system) or cursor.budget  # a 429 says what is left too
            session.add(cursor)
            session.commit()
        log.warning("capture_failed", system=system, error=str(exc))
        raise


def pending(engine: Engine, system: str | None = None) -> int:
    """Rows still due now (not waiting on a retry time)."""
    with engine.session() as session:
        return outbox.count_due(session, utcnow(), system)


def owed(engine: Engine) -> Owed:
    """The pushes still owed, per system and state, and when the next one comes due."""
    found = Owed()
    reviewing = first_run.gate(engine).state == "review"
    with engine.read_session() as session:
        rows = outbox.owed_summary(session, (*OWED_STATES, "parked"))
        found.waiting = waiting_references(session)
    for system, status, _op, count, next_attempt, claim_ends in rows:
        if status == "parked":
            found.parked[system] = found.parked.get(system, 0) + int(count)
            continue
        if reviewing and status == "pending":  # nothing leaves before the review
            found.for_review[system] = found.for_review.get(system, 0) + int(count)
            continue
        by_state = found.states.setdefault(system, {})
        by_state[status] = by_state.get(status, 0) + int(count)
        due = maybe_utc(claim_ends if status == "in_flight" else next_attempt)
        if due is not None and (found.next_due is None or due < found.next_due):
            found.next_due = due
    return found


def drain_all(engine: Engine, systems: Sequence[str], run_id: str | None) -> dict[str, Counts]:
    """Drain every system's outbox, one thread per system. Every drain runs to its end even
    when another fails (its rows must not stay claimed); the first failure is then raised."""
    if len(systems) < 2 or not supports_threads(engine.db):
        return {system: drain(engine, system, run_id=run_id) for system in systems}
    with ThreadPoolExecutor(max_workers=len(systems), thread_name_prefix="drain") as pool:
        futures = {
            system: pool.submit(carried(drain, system=system), engine, system, run_id=run_id)
            for system in systems
        }
        return {system: future.result() for system, future in futures.items()}


def run_cycle(
    engine: Engine,
    systems: Sequence[str] | None = None,
    *,
    full: bool = False,
    kind: str = "cycle",
    max_passes: int = 5,
    max_wait: float = 0.0,
) -> CycleReport:
    """Capture then push, over the given systems (default: all); then keep pushing, waiting up
    to ``max_wait`` seconds in all for retries to come due, until nothing is owed."""
    chosen = list(systems or engine.systems)
    run_id = start_run(engine, kind, chosen[0] if len(chosen) == 1 else None)
    report = CycleReport(run_id, "running", Counts())
    engine.refs.forget(max_age=REFERENCE_TTL)
    status = "done"
    try:
        for system in chosen:
            try:
                report.per_system[system] = counts = poll(engine, system, full=full, run_id=run_id)
                if counts["held"] or counts["deletes_held"]:
                    report.errors[system] = "held: see `crmsync status`"
                    status = "partial"
            except ConnectorError as exc:
                report.errors[system] = str(exc)
                status = "partial"
        if first_run.gate(engine).state != "review":  # nothing leaves before the review
            carry_renames(engine, run_id, skip=report.errors)
        report.left = _push_until_settled(engine, run_id, report, max_passes, max_wait)
        if report.left.total and status == "done":
            status = "incomplete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except Exception as exc:
        status = "failed"
        report.errors["cycle"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        for counts in report.per_system.values():
            report.counts.merge(counts)
        report.status = status
        finish_run(
            engine,
            run_id,
            status,
            report.counts,
            "; ".join(f"{k}: {v}" for k, v in report.errors.items()) or None,
        )
        log.info("cycle_done", run_id=run_id, status=status, **report.counts.values)
    return report


def _push_until_settled(
    engine: Engine, run_id: str, report: CycleReport, max_passes: int, max_wait: float
) -> Owed:
    """Drain every outbox; while pushes are owed and the next comes due before ``max_wait``
    is spent, sleep until then and drain again. Returns what is still owed."""
    deadline = time.monotonic() + max_wait
    while True:
        started = utcnow()
        for _ in range(max_passes):
            for system, pushed in drain_all(engine, engine.systems, run_id).items():
                report.per_system.setdefault(system, Counts()).merge(pushed)
            if pending(engine) == 0:
                break
        left = owed(engine)
        if not left.total or left.next_due is None or left.next_due <= started:
            # due all along yet not taken: waiting will not help (e.g. creates held back
            # until a system that failed to be read is read once)
            return left
        wait = max(0.05, (left.next_due - utcnow()).total_seconds())
        if time.monotonic() + wait > deadline:
            return left
        log.info("waiting_for_retries", owed=left.total, seconds=round(wait, 2))
        time.sleep(min(wait, WAIT_STEP))
