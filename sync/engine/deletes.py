"""Deletes (DESIGN §2.7): seen by scan set-difference after a complete scan, by a vendor's
delete feed (Close's event log), or by a 404 on push. The deleting system's policy decides:

- ``propagate``: the deal is deleted everywhere (record tombstoned, deletes enqueued);
- ``unlink`` (default): only that system's link is tombstoned; the deal lives on elsewhere
  and is never re-created in the system that deleted it;
- ``ignore``: the link is dropped and the deal is re-created there on the next push (the
  other systems are the truth).

Tombstones (``records.deleted_at``, ``links.deleted_at``) keep a stale read from resurrecting.

A delete closes the dead letters it makes moot, with a journal entry saying so: the deleting
system's letters about its copy, and every system's when the deal itself is deleted
(``propagate``). A deal deleted with ``unlink`` lives on elsewhere, so a refusal owed to it by
another system stays open. A deal never captured (its read could not be mapped) is known only
by its letter, which closes when a complete scan misses the deal or the delete feed names it.

A delete racing a later edit: a delete only wins over what its deleter saw. When a deal is
deleted in a ``propagate`` system while it carries an edit made elsewhere that the deleting
system never received (its shadow lacks it), or when such an edit is captured after the
delete was propagated, the later edit wins: the deal is kept in the systems that still hold
it (the deleting system keeps its delete), pending deletes are called off, and a conflict is
journaled with both sides. No edit is ever dropped silently.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Container

import structlog
from sqlmodel import Session

from sync.connectors.errors import DeleteFeedGap
from sync.engine import guard
from sync.engine.context import Counts, Engine
from sync.engine.guard import Vanished
from sync.engine.journal import enqueue, note
from sync.engine.letters import resolve_deleted, resolve_vanished_unlinked
from sync.engine.outbound import push_diff
from sync.engine.seen import SeenIds
from sync.store import cursors, links, outbox, records, systems
from sync.store.models import (
    Conflict,
    Cursor,
    Link,
    Record,
)
from sync.timefmt import maybe_utc, utcnow

log = structlog.get_logger("crmsync.deletes")


def vendor_deleted(
    engine: Engine,
    session: Session,
    system: str,
    link: Link,
    how: str,
    run_id: str | None = None,
) -> str:
    """Apply the system's delete policy to a deal that vanished from it, and close the dead
    letters the delete made moot (``sync.engine.letters.resolve_deleted``); returns the policy."""
    deal = (link.external_id, link.record_id)  # read before ``ignore`` deletes the link
    policy = _apply_policy(engine, session, system, link, how, run_id)
    record = records.get(session, deal[1])
    everywhere = record is not None and record.deleted_at is not None
    why = f"deleted in {system} ({how}; policy {policy})"
    resolve_deleted(session, system, deal, everywhere=everywhere, why=why, run_id=run_id)
    return policy


def _apply_policy(
    engine: Engine, session: Session, system: str, link: Link, how: str, run_id: str | None
) -> str:
    """The policy's effect on the link, the record and the other systems (see the module)."""
    policy = engine.config.systems[system].deletes
    record = records.get(session, link.record_id)
    now = utcnow()
    if policy == "ignore":
        note(
            session,
            link.record_id,
            "delete_ignored",
            f"deleted in {system} ({how}); policy ignore re-creates it there",
            system=system,
            run_id=run_id,
        )
        session.delete(link)
        if record is not None and record.deleted_at is None:
            enqueue(session, record.id, system, "create", f"re-create after delete in {system}")
        return policy
    link.deleted_at = now
    session.add(link)
    note(
        session,
        link.record_id,
        "deleted",
        f"deleted in {system} ({how}); policy {policy}",
        system=system,
        run_id=run_id,
    )
    unseen = (
        sorted(push_diff(engine, system, record, link))
        if policy == "propagate" and record is not None and record.deleted_at is None
        else []
    )
    if unseen and record is not None:
        _edit_wins(session, record, system, unseen, f"edited in {_editors(record, unseen)}")
        return policy
    if policy == "propagate" and record is not None and record.deleted_at is None:
        record.deleted_at, record.deleted_by = now, system
        session.add(record)
        for other in links.of_record(session, record.id):
            if other.system != system and other.deleted_at is None:
                enqueue(session, record.id, other.system, "delete", f"deleted in {system}")
    return policy


def after_complete_scan(
    engine: Engine, system: str, seen: Container[str], started: dt.datetime, run_id: str | None
) -> Counts:
    """Links of ``system`` that a complete scan no longer saw were deleted there — unless
    there are so many that the mass-delete guard holds them for an operator."""
    counts = Counts()
    with engine.session() as session:
        # three strings per link: loading every live link with its shadow would hold the whole
        # system in memory; only the few that vanished are loaded in full. Links made during
        # this scan are left out: the listing may predate them.
        live = links.live_before(session, system, started)
        vanished = [
            Vanished(link_id, record_id, external_id, "missing from a complete scan")
            for link_id, record_id, external_id in live
            if external_id not in seen and link_id is not None
        ]
        counts.merge(_apply(engine, session, system, vanished, run_id))
        if not counts["deletes_held"]:
            why = f"deleted in {system} (missing from a complete scan)"
            resolve_vanished_unlinked(session, system, lambda ext: ext not in seen, why, run_id)
        session.commit()
    return counts


def _apply(
    engine: Engine, session: Session, system: str, vanished: list[Vanished], run_id: str | None
) -> Counts:
    """Apply the delete policy to each vanished deal, or hold them all (the guard)."""
    counts = Counts()
    if not guard.allow_deletes(engine, session, system, vanished):
        counts.add("deletes_held", len(vanished))
        return counts
    for gone in vanished:
        link = links.get(session, gone.link_id)
        if link is None or link.deleted_at is not None:
            continue
        vendor_deleted(engine, session, system, link, gone.how, run_id)
        counts.add("deleted")
    return counts


def from_feed(engine: Engine, system: str, started: dt.datetime, run_id: str | None) -> Counts:
    """Deletes reported by the vendor's feed since the last look (minus the lookback)."""
    counts = Counts()
    with engine.session() as session:
        cursor = cursors.get(session, system) or Cursor(system=system)
        since = cursor.deletes_stamp or cursor.last_poll_at or started
    since_aware = maybe_utc(since - engine.config.sync.lookback)
    assert since_aware is not None
    try:
        deletions = list(engine.connector(system).deleted_since(since_aware))
    except DeleteFeedGap as gap:
        return _after_gap(engine, system, started, run_id, gap)
    with engine.session() as session:
        cursor = cursors.get(session, system) or Cursor(system=system)
        newest = cursor.deletes_stamp
        vanished: list[Vanished] = []
        unlinked: set[str] = set()
        for deletion in deletions:
            stamp = maybe_utc(deletion.at)
            newest = max(newest, stamp) if newest and stamp else (stamp or newest)
            link = links.find(session, system, deletion.external_id)
            if link is None:
                unlinked.add(deletion.external_id)  # never captured: only a letter knows it
            if link is None or link.deleted_at is not None or link.id is None:
                continue
            how = "reported by the delete feed"
            vanished.append(Vanished(link.id, link.record_id, link.external_id, how))
        counts.merge(_apply(engine, session, system, vanished, run_id))
        if unlinked:
            why = f"deleted in {system} (reported by the delete feed)"
            resolve_vanished_unlinked(session, system, unlinked.__contains__, why, run_id)
        cursor.deletes_stamp = min(newest, started) if newest else started
        session.add(cursor)
        session.commit()
    return counts


def _after_gap(
    engine: Engine, system: str, started: dt.datetime, run_id: str | None, gap: DeleteFeedGap
) -> Counts:
    """The delete feed lost deletes: a complete read finds them by set difference (the
    mass-delete guard still applies), and the feed is read from this run on."""
    log.warning("delete_feed_gap", system=system, message=gap.message)
    seen = SeenIds(r.external_id for page in engine.connector(system).scan() for r in page)
    counts = after_complete_scan(engine, system, seen, started, run_id)
    counts.add("delete_feed_gaps")
    with engine.session() as session:
        cursor = cursors.get(session, system) or Cursor(system=system)
        cursor.deletes_stamp = started
        session.add(cursor)
        session.commit()
    return counts


def _editors(record: Record, names: list[str]) -> str:
    """The systems that made the given fields what they are (from the provenance)."""
    systems = {str((record.provenance.get(n) or {}).get("system") or "?") for n in names}
    return ", ".join(sorted(systems))


def _edit_wins(session: Session, record: Record, deleter: str, fields: list[str], how: str) -> None:
    """The deal was deleted in ``deleter`` but edited elsewhere in ways the deleter never saw:
    keep it where it lives, call off the deletes not yet sent, journal the conflict."""
    what = f" ({', '.join(fields)})" if fields else ""
    reason = (
        f"deleted in {deleter}, but {how} after {deleter} last received it{what}: the later "
        f"edit wins; the deal stays where it still exists and {deleter} keeps its delete"
    )
    record.deleted_at, record.deleted_by = None, None
    record.updated_at = utcnow()
    session.add(record)
    for row in outbox.open_deletes_of_record(session, record.id):
        row.status, row.last_error, row.updated_at = "done", "called off: " + reason, utcnow()
        row.claimed_by = row.claimed_until = None
        session.add(row)
    session.add(
        Conflict(
            record_id=record.id,
            field="deleted",
            policy="latest",
            base=False,
            ours=True,
            ours_system=deleter,
            theirs=False,
            theirs_system=how.removeprefix("edited in "),
            winner=how.removeprefix("edited in "),
            status="resolved",
            reason=reason[:500],
            resolved_at=utcnow(),
        )
    )
    note(session, record.id, "conflict", reason, system=deleter, field="deleted")
    log.info("delete_lost_to_edit", record_id=record.id, system=deleter, fields=fields)


def edited_after_delete(session: Session, record: Record, system: str) -> None:
    """Capture met an edit in ``system`` of a deal another system's delete is propagating
    (the edit was made where the delete had not arrived): the edit wins, the deal lives."""
    _edit_wins(
        session, record, str(record.deleted_by or "another system"), [], f"edited in {system}"
    )


# --------------------------------------------------------------------------- the operator


def confirm_held(engine: Engine, system: str, run_id: str | None = None) -> Counts:
    """``crmsync deletes --confirm``: apply the deletes the guard held (each still-live link
    gets the system's policy, as if the guard had not stopped it) and release the system."""
    counts = Counts()
    with engine.session() as session:
        rows = systems.pending_deletes_of(session, system)
        for row in rows:
            link = links.get(session, row.link_id)
            if link is not None and link.deleted_at is None and link.system == system:
                vendor_deleted(engine, session, system, link, f"{row.how}; confirmed", run_id)
                counts.add("deleted")
            session.delete(row)
        _release_deletes_hold(session, system, "deletes confirmed")
        session.commit()
    log.info("deletes_confirmed", system=system, deleted=counts["deleted"])
    return counts


def discard_held(engine: Engine, system: str) -> int:
    """``crmsync deletes --discard``: drop the held deletes, keep every link, release the
    system. Deals still missing at its next complete scan are counted (and guarded) again."""
    with engine.session() as session:
        rows = systems.pending_deletes_of(session, system)
        for row in rows:
            session.delete(row)
        _release_deletes_hold(session, system, "deletes discarded")
        session.commit()
    log.info("deletes_discarded", system=system, discarded=len(rows))
    return len(rows)


def _release_deletes_hold(session: Session, system: str, why: str) -> None:
    state = systems.get(session, system)
    if state is not None and state.held == guard.HOLD_DELETES:
        guard.release(session, state, why)
