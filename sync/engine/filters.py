"""``filter`` both ways (issue 17): a linked deal that a system's filter leaves out is neither
read from nor written to that system. Capture marks its link (``Link.filtered_at``) when a read
finds it left out, and clears the mark when a read finds it passing again; ``push_diff`` owes
nothing to a marked copy, so an edit made elsewhere does not reach a deal that is out of the
sync there (e.g. an inactive Ruddr project), and is delivered once it is back in.
"""

from __future__ import annotations

from sqlmodel import Session

from sync.engine.context import Engine
from sync.engine.outbound import enqueue_pushes
from sync.store import records
from sync.store.models import Link
from sync.timefmt import utcnow


def left_out(session: Session, link: Link | None) -> None:
    if link is not None and link.filtered_at is None:
        link.filtered_at = utcnow()
        session.add(link)


def let_in(engine: Engine, session: Session, link: Link | None) -> None:
    """The deal passes the filter again: its copy is merged as usual and it is owed what it
    missed while it was left out (queued here: its own fields may not have changed)."""
    if link is None or link.filtered_at is None:
        return
    link.filtered_at = None
    session.add(link)
    record = records.get(session, link.record_id)
    if record is not None:
        enqueue_pushes(engine, session, record, reason=f"back in {link.system}'s filter")
