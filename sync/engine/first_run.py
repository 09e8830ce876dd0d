"""The guided first run: on a fresh store, no deal is created in any system while two or more
systems held deals at their first read, until the operator has reviewed the match
(``crmsync match``) and let it go (``--approve``, ``--apply FILE`` or ``--waive``).

Until then nothing else is written either (``writes_allowed``): deals already linked by an id
whose values differ are merged in the store, and ``plan`` / ``match`` show what approval will
write, but no update leaves before it. The decision is made once, at the first drain after
every system has been read (creates wait
for that anyway: ``push.initial_capture_done``), from the links capture made: how many deals
each system held. At most one system with deals: there is nothing to match, creates start
(``open``). Otherwise the store is in ``review``. ``sync.first_run: automatic`` applies the
proposal unattended instead (ambiguous deals are still held for a person); ``waive`` skips the
first-run match altogether. The state lives in the store's ``first_run`` table; a store that
held records before this table existed was marked ``approved`` by its migration.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
import structlog
from sqlmodel import Session

from sync.engine import matching
from sync.engine.context import Engine
from sync.engine.outbound import MATCH_HOLD
from sync.store import cursors, links, records
from sync.store import first_run as stored
from sync.store.first_run import KEY
from sync.store.models import FirstRun
from sync.timefmt import utcnow

log = structlog.get_logger("crmsync.first_run")
GOING = ("open", "approved", "waived", "automatic")
#: who waived a first run the config waives (``sync.first_run: waive``), as status shows it
WAIVED_BY_CONFIG = "sync.first_run: waive in the config"


@dataclass
class Gate:
    """What ``crmsync match`` and ``status`` say about the first run."""

    state: str  # unread | review | open | approved | waived | automatic
    deals: dict[str, int]
    decided_by: str | None = None

    @property
    def creates_wait(self) -> bool:
        return self.state in ("unread", "review")


def _deals_per_system(session: Session) -> dict[str, int]:
    return links.count_live_per_system(session)


def all_read(engine: Engine) -> bool:
    """Has every system been read once (what a match needs to see every copy)?"""
    with engine.read_session() as session:
        return cursors.polled_systems(session) >= set(engine.systems)


def held_for_review(engine: Engine) -> int:
    """Records an approval held as ambiguous that nobody has settled yet."""
    with engine.read_session() as session:
        row = stored.get(session)
        if row is None or not row.summary.get("held"):
            return 0
        return sum(1 for held in records.live_holds(session) if MATCH_HOLD in (held or []))


def gate(engine: Engine) -> Gate:
    """The first run's state, without deciding anything."""
    with engine.read_session() as session:
        row = stored.get(session)
        if row is not None:
            return Gate(row.state, dict(row.deals), row.decided_by)
        if engine.config.sync.first_run == "waive":  # never "unread" forever: nothing waits
            return Gate("waived", _deals_per_system(session), WAIVED_BY_CONFIG)
        return Gate("unread", _deals_per_system(session))


def creates_wait(engine: Engine) -> bool:
    """Would creates wait for the first run's review now? (For ``plan``: decides nothing.)"""
    if engine.config.sync.first_run != "guided":
        return False
    state = gate(engine)
    if state.state == "unread":
        return sum(1 for count in state.deals.values() if count) > 1
    return state.creates_wait


def writes_allowed(engine: Engine) -> bool:
    """May anything at all be written to a vendor? Not while a guided first run waits (or may
    yet wait) for its review: deals linked by an id whose values differ are merged in the store,
    and what approval will write shows in ``plan`` and ``match`` — nothing leaves before."""
    if engine.config.sync.first_run == "waive":
        return True
    return gate(engine).state in GOING


def creates_allowed(engine: Engine) -> bool:
    """May creates be sent? Call only once every system has been read; decides the first
    run's state on the first call (see the module docstring)."""
    mode = engine.config.sync.first_run
    if mode == "waive":
        return True
    with engine.read_session() as session:
        row = stored.get(session)
        if row is not None and (row.state in GOING or mode != "automatic"):
            return row.state in GOING
    if row is None:
        state = _decide(engine)
        if state in GOING or mode != "automatic":
            return state in GOING
    approve(engine, by="sync.first_run: automatic", state="automatic")
    return True


def _decide(engine: Engine) -> str:
    """Record the first read's counts and whether the store must be reviewed."""
    with engine.session() as session:
        deals = _deals_per_system(session)
        holding = [system for system, count in deals.items() if count]
        state = "review" if len(holding) > 1 else "open"
        session.add(FirstRun(key=KEY, state=state, deals=deals))
        try:
            session.commit()
        except sa.exc.IntegrityError:  # another drain decided first: its answer stands
            session.rollback()
            row = stored.get(session)
            return row.state if row is not None else "review"
    if state == "review":
        log.warning(
            "first_run_review",
            systems=holding,
            deals=deals,
            hint="nothing is created until you review: crmsync match, then crmsync match --approve",
        )
    return state


def approve(
    engine: Engine,
    *,
    by: str,
    proposal: matching.Proposal | None = None,
    state: str = "approved",
) -> matching.Applied:
    """Apply ``proposal`` (default: the computed one) and let creates go, in one transaction.
    Applying twice is harmless: linked records are one record, held ones stay held."""
    chosen = proposal if proposal is not None else matching.propose(engine)
    with engine.session() as session:
        row = stored.get(session, for_update=True)
        if row is None:
            row = FirstRun(key=KEY, state=state, deals=_deals_per_system(session))
        elif state == "automatic" and row.state == "automatic":
            return matching.Applied()  # a concurrent drain applied it first
        applied = matching.apply(engine, chosen, by=by, session=session)
        row.state = state
        row.summary = {**chosen.counts, **vars(applied)}
        row.decided_by, row.decided_at = by, utcnow()
        session.add(row)
        session.commit()
    log.info("first_run_approved", by=by, **chosen.counts)
    return applied


def waive(engine: Engine, *, by: str) -> None:
    """Let creates go without matching anything (the operator knows the targets are empty, or
    that their deals are not the same ones)."""
    with engine.session() as session:
        row = stored.get(session) or FirstRun(
            key=KEY, state="waived", deals=_deals_per_system(session)
        )
        row.state, row.decided_by, row.decided_at = "waived", by, utcnow()
        session.add(row)
        session.commit()
    log.info("first_run_waived", by=by)
