"""Anti-entropy (DESIGN §2.1, §2.7): ``crmsync reconcile`` and the scheduled daily reconcile.

The incremental path is trusted but checked. A reconcile of one system:

1. reads it completely (``capture(full=True)``): a vendor copy that differs from the store
   although the regular polls should already have delivered it is *healed* (capture counts
   it as ``healed``), and deals gone from a complete scan are deletes;
2. compares the store with what that system should hold: a linked deal whose shadow differs
   from its projection with no push on its way, or a deal the system lacks with no create on
   its way, gets the push the incremental path lost (counted as ``healed`` too);
3. drains what that queued.

A healthy installation heals nothing: ``healed`` is recorded on the run, per system as
``healed.<system>``, and ``crmsync status`` shows the last figure, so a non-zero count is a bug
worth a look (a lost outbox row, a vendor stamp that moved backwards, a missed page).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import structlog
from sqlmodel import Session

from sync.connectors.errors import ConnectorError
from sync.engine import money
from sync.engine.context import Counts, Engine
from sync.engine.cycle import finish_run, poll, start_run
from sync.engine.journal import enqueue, note
from sync.engine.outbound import push_diff, push_op
from sync.engine.push import drain
from sync.store import letters, links, outbox, records, runs
from sync.store.models import Link, Record

log = structlog.get_logger("crmsync.reconcile")
CHUNK = 500

#: (engine, system, run id) -> counts of one complete read; the Celery task adds its poll lock
FullPoll = Callable[[Engine, str, str], Counts]


def _full_poll(engine: Engine, system: str, run_id: str) -> Counts:
    return poll(engine, system, full=True, run_id=run_id)


@dataclass
class ReconcileReport:
    run_id: str
    status: str = "running"
    per_system: dict[str, Counts] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def healed(self) -> int:
        return sum(counts["healed"] for counts in self.per_system.values())

    def totals(self) -> Counts:
        total = Counts()
        for system, counts in self.per_system.items():
            total.merge(counts)
            total.add(f"healed.{system}", counts["healed"])
        return total


def reconcile(
    engine: Engine,
    systems: Sequence[str] | None = None,
    *,
    run_id: str | None = None,
    full_poll: FullPoll = _full_poll,
) -> ReconcileReport:
    """Reconcile the given systems (default: all) as one ``reconcile`` run."""
    chosen = list(systems or engine.systems)
    if run_id is None:
        run_id = start_run(engine, "reconcile", chosen[0] if len(chosen) == 1 else None)
    else:
        _mark_running(engine, run_id)
    report = ReconcileReport(run_id)
    engine.refs.forget()
    try:
        for system in chosen:
            counts = report.per_system.setdefault(system, Counts())
            try:
                counts.merge(full_poll(engine, system, run_id))
            except ConnectorError as exc:
                report.errors[system] = str(exc)
                continue  # an unread system proves nothing about its outbound side either
            counts.merge(heal_outbound(engine, system, run_id))
        for system in engine.systems:
            report.per_system.setdefault(system, Counts()).merge(
                drain(engine, system, run_id=run_id)
            )
    except BaseException as exc:
        report.status = "failed"
        finish_run(engine, run_id, "failed", report.totals(), f"{type(exc).__name__}: {exc}")
        raise
    report.status = "partial" if report.errors else "done"
    error = "; ".join(f"{k}: {v}" for k, v in report.errors.items()) or None
    finish_run(engine, run_id, report.status, report.totals(), error)
    log.info("reconcile_done", run_id=run_id, status=report.status, healed=report.healed)
    return report


def _mark_running(engine: Engine, run_id: str) -> None:
    """A run queued by the CLI or the admin API starts now."""
    with engine.session() as session:
        if runs.mark_running(session, run_id, engine.worker_id) is not None:
            session.commit()


def heal_outbound(engine: Engine, system: str, run_id: str | None = None) -> Counts:
    """Queue the pushes to ``system`` that the store says are owed and nothing has queued."""
    counts = Counts()
    for record_ids in _chunks(engine):
        with engine.session() as session:
            for record, link, reason in _owed(engine, session, system, record_ids):
                op = "create" if link is None else "update"
                enqueue(session, record.id, system, op, reason)
                note(session, record.id, "healed", reason, system=system, run_id=run_id)
                counts.add("healed")
                counts.add("healed_outbound")
            session.commit()
    return counts


def _chunks(engine: Engine) -> Iterator[list[str]]:
    """Live record ids in chunks, so a large store is never held in memory at once."""
    after = ""
    while True:
        with engine.session() as session:
            ids = records.live_ids_after(session, after, CHUNK)
        if not ids:
            return
        yield ids
        after = ids[-1]


def _owed(
    engine: Engine, session: Session, system: str, record_ids: list[str]
) -> Iterator[tuple[Record, Link | None, str]]:
    found = records.many(session, record_ids)
    copies = {link.record_id: link for link in links.of_records_in(session, system, record_ids)}
    busy = outbox.busy_record_ids(session, system, record_ids)
    # a push that went to dead letters waits for a human, not for us
    refused = letters.refused_record_ids(session, system, record_ids)
    for record in found:
        if record.id in busy or record.id in refused:
            continue
        link = copies.get(record.id)
        op = push_op(engine, system, record, link)
        if op == "create":
            yield record, None, f"reconcile: {system} lacks this deal and no create was queued"
        elif op == "update" and link is not None:
            try:
                diff = push_diff(engine, system, record, link)  # again, for the journal's words
            except (money.CurrencyMismatch, ConnectorError):
                diff = {"amount": None}  # the push decides (and dead-letters with the reason)
            yield record, link, f"reconcile: {system} differs in {', '.join(sorted(diff))}"
