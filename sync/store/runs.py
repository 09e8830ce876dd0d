"""Queries on ``runs``: every run row (a cycle, a poll, a drain, a reconcile, a resync) is
written here, whoever runs it. The caller owns the transaction: these functions read and
change rows in the session they are given and never commit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select

from sync.store.models import Run
from sync.timefmt import utcnow


def get(session: Session, run_id: str) -> Run | None:
    return session.get(Run, run_id)


def start(
    session: Session, run_id: str, kind: str, system: str | None, holder: str | None = None
) -> Run:
    """Add a run that starts now (status ``running``) in the process ``holder``."""
    run = Run(id=run_id, kind=kind, system=system, holder=holder)
    session.add(run)
    return run


def queue(session: Session, run_id: str, kind: str, system: str | None) -> Run:
    """Add a ``queued`` run, so its id can be followed before a worker starts it."""
    run = Run(id=run_id, kind=kind, system=system, status="queued")
    session.add(run)
    return run


def finish(
    session: Session, run_id: str, status: str, counts: dict[str, Any], error: str | None
) -> Run | None:
    """Close the run with its outcome and counts; None when there is no such run."""
    run = session.get(Run, run_id)
    if run is None:
        return None
    run.status, run.counts, run.error = status, counts, error
    run.finished_at = utcnow()
    session.add(run)
    return run


def mark_running(session: Session, run_id: str, holder: str | None = None) -> Run | None:
    """A queued run starts now in the process ``holder`` (None when there is no such run)."""
    run = session.get(Run, run_id)
    if run is not None:
        run.status, run.started_at, run.holder = "running", utcnow(), holder
        session.add(run)
    return run


def restart(
    session: Session, run_id: str, kind: str, system: str | None, holder: str | None = None
) -> Run:
    """Start a run queued earlier, or one a redelivered task starts over (added when the row
    is missing), in the process ``holder``."""
    run = session.get(Run, run_id)
    if run is None:
        run = Run(id=run_id, kind=kind, system=system, holder=holder)
    else:
        run.status, run.finished_at, run.error = "running", None, None
        run.holder = holder
    session.add(run)
    return run


def set_counts(session: Session, run_id: str, counts: dict[str, Any]) -> Run | None:
    """Progress of a running run (None when there is no such run)."""
    run = session.get(Run, run_id)
    if run is not None:
        run.counts = counts
        session.add(run)
    return run


def set_started(session: Session, run_id: str, started: dt.datetime) -> Run | None:
    """Backdate a run recorded after it happened (None when there is no such run)."""
    run = session.get(Run, run_id)
    if run is not None:
        run.started_at = started
        session.add(run)
    return run


def latest(session: Session, limit: int) -> Sequence[Run]:
    """The ``limit`` runs started last, newest first."""
    return session.exec(select(Run).order_by(col(Run.started_at).desc()).limit(limit)).all()


def latest_reconciles(session: Session, limit: int) -> Sequence[Run]:
    """The ``limit`` completed (``done`` or ``partial``) reconciles started last, newest
    first."""
    return session.exec(
        select(Run)
        .where(Run.kind == "reconcile", col(Run.status).in_(("done", "partial")))
        .order_by(col(Run.started_at).desc())
        .limit(limit)
    ).all()
