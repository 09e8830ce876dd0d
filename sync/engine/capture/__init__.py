"""Capture: read what changed in one system and fold it into the store (DESIGN §2.1–2.3).

Per page, in one transaction: skip what we already hold (same vendor stamp, decided from link
columns; or a projection equal to the shadow: echo suppression), map the rest to canonical
form, resolve the identity of unlinked deals, merge field by field against the shadow, journal
every decision, and enqueue pushes for the systems whose shadow now differs. The store rows a
page needs (links, records, identity keys) are loaded in a few queries per page, not per
record; the rows it creates are inserted with one statement per table. The next page is read
while this one is folded in (``prefetch.one_ahead``).

Cursors. The compound cursor (stamp, external id) moves in the page's transaction, only over
committed records and never past the run's start (in the vendor's clock), so a crash re-reads
and never skips. A poll that read *every* page also sets the **watermark**: the run's start in
the vendor's clock, measured from the HTTP ``Date`` of the listing's first answer. Everything
the vendor had committed by then has been seen, so the next incremental poll asks from
``watermark - lookback`` — after a quiet period one empty page — instead of from the newest
stamp, which would re-read every record modified in the lookback before it, poll after poll.
Without a ``Date`` the watermark stays unset and polls ask from ``stamp - lookback``.

Healing. A full compare (``full=True``: a reconcile) counts ``healed``: records that differ
from the store (or are unlinked) although their vendor stamp is older than what the previous
complete poll had covered (its watermark, else the cursor stamp for incremental systems or
the poll's start for scan systems; minus the lookback, which the regular path re-reads
anyway), and deletes a full scan finds in an incremental system without a delete feed. The
regular path should have delivered all of them: in a healthy installation the count is 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import structlog
from sqlmodel import Session, col, select

from sync.connectors.base import BaseConnector, VendorRecord
from sync.engine import deletes, filters, money
from sync.engine.identity import keys_of
from sync.engine.intents import (
    Intent,
    adopted_base,
    best_intent,
    echoes,
    open_intents,
    open_update_doubts,
)
from sync.engine.journal import OPEN_STATES, Notes, dead_letter, enqueue_into, outbox_row
from sync.engine.letters import resolve_captured
from sync.engine.merge import Side, merge_field
from sync.engine.outbound import push_op
from sync.engine.prefetch import one_ahead
from sync.engine.state import Counts, Engine, aware_utc, new_id, to_utc
from sync.mapping.errors import MappingError, UnresolvedReference
from sync.store.models import Conflict, Cursor, Link, Outbox, Record, RecordKey, utcnow

log = structlog.get_logger("crmsync.capture")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
SETTLE = dt.timedelta(seconds=2)  # after this, a whole-second stamp can gain no same-second edit
Key = tuple[str, str]


@dataclass
class Poll:
    """One capture of one system: what the ingest of every record needs besides the page."""

    engine: Engine
    system: str
    counts: Counts
    run_id: str | None
    started: dt.datetime  # our clock, before the first listing request
    #: full compare only: a difference in a record stamped before this was missed by the
    #: regular path (None: not a full compare, or nothing was covered before)
    heal_before: dt.datetime | None = None

    def missed(self, rec: VendorRecord) -> bool:
        stamp = to_utc(rec.modified)
        return self.heal_before is not None and stamp is not None and stamp < self.heal_before


@dataclass
class NewRecord:
    """A record this page creates, as plain data: never added to the session but inserted with
    the page's other new rows, one statement per table. Building and flushing an ORM object
    per new record and link cost more than the rest of an initial capture. Never merged into
    within its page: a later listing matching it finds it already linked here."""

    id: str
    fields: dict[str, Any]
    provenance: dict[str, Any]
    held: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime
    deleted_at: dt.datetime | None = None
    deleted_by: str | None = None


@dataclass
class NewLink:
    """A link this page creates (to a new record, or to a stored one it matched), as plain
    data inserted after the page's new records. The columns of ``Link`` but its id."""

    record_id: str
    system: str
    external_id: str
    shadow: dict[str, Any]
    sent: dict[str, Any]
    vendor_modified: dt.datetime | None
    linked_at: dt.datetime
    synced_at: dt.datetime
    confirmed_at: dt.datetime | None = None
    deleted_at: dt.datetime | None = None
    filtered_at: dt.datetime | None = None


@dataclass
class Page:
    """The store rows one page of vendor records touches, loaded a few queries per page and
    kept up to date as the page creates records, links and keys (a later record of the same
    page must see an earlier one: two listings of one new deal link to one record)."""

    session: Session
    links: dict[str, Link]  # this system's stored links, by external id
    records: dict[str, Record] = field(default_factory=dict)  # stored ones, by record id
    keys: dict[Key, str] = field(default_factory=dict)  # identity key -> record id
    absent: set[Key] = field(default_factory=set)  # identity keys known not to be stored
    linked_here: set[str] = field(default_factory=set)  # record ids linked in this system
    #: id -> (record, why)
    touched: dict[str, tuple[Record | NewRecord, str]] = field(default_factory=dict)
    #: rows this page creates, inserted one statement per table when the page is done
    new_records: dict[str, NewRecord] = field(default_factory=dict)  # by record id
    new_links: dict[str, NewLink] = field(default_factory=dict)  # by external id
    new_keys: list[dict[str, str]] = field(default_factory=list)
    new_outbox: list[dict[str, Any]] = field(default_factory=list)
    notes: Notes = field(default_factory=Notes)  # the page's journal, one insert
    created: dict[str, NewLink] = field(default_factory=dict)  # new record id -> its only link
    #: this system's open create intents (loaded when an unlinked deal first needs them)
    intents: list[Intent] | None = None
    adopted: dict[str, Intent] = field(default_factory=dict)  # external id -> its intent
    #: record id -> values its in-doubt update to this system may have left (``intents``)
    doubts: dict[str, dict[str, list[Any]]] | None = None

    def record(self, record_id: str | None) -> Record | NewRecord | None:
        """A stored record the page loaded, or one it created."""
        if not record_id:
            return None
        return self.records.get(record_id) or self.new_records.get(record_id)


@dataclass
class Item:
    """A vendor record that survived the skips, mapped, with what the store has of it."""

    rec: VendorRecord
    theirs: dict[str, Any]
    link: Link | None
    record: Record | None


def capture_mode(engine: Engine, system: str) -> str:
    configured = engine.config.systems[system].capture
    connector = engine.connector(system)
    if configured == "incremental" and connector.capture != "incremental":
        return "scan"  # the vendor cannot; config asked for what it cannot do
    return configured or connector.capture


def capture(
    engine: Engine,
    system: str,
    *,
    full: bool = False,
    run_id: str | None = None,
    rescan: bool = False,
) -> Counts:
    """Read one system's changes (or everything, when ``full`` or the vendor only scans).
    ``rescan``: read everything without counting differences as healed (a mapping change or
    a system back in the config: ``sync.engine.bindings``)."""
    counts = Counts()
    connector = engine.connector(system)
    engine.refs.prime()
    started = utcnow()
    lookback = engine.config.sync.lookback
    with engine.session() as session:
        cursor = session.get(Cursor, system) or Cursor(system=system)
    regular = capture_mode(engine, system)
    mode = "scan" if full or rescan else regular
    pages: Iterable[list[VendorRecord]]
    if mode == "incremental":
        pages = connector.list_changed(_since(cursor, lookback))
    else:
        pages = connector.scan()
    covered = _covered(cursor, regular) if full else None
    poll = Poll(engine, system, counts, run_id, started, covered - lookback if covered else None)
    seen: set[str] = set()
    for page in one_ahead(pages):  # the next page is read while this one is folded in
        with engine.session() as session:
            _ingest_page(poll, session, page)
            session.add_all(engine.refs.take_pending())
            if mode == "incremental":
                _advance_cursor(session, system, page, _vendor_start(connector, started))
            session.commit()
        seen.update(r.external_id for r in page)
        counts.add("fetched", len(page))
    # every page was read: the listing proves everything committed before its start was seen
    watermark = _vendor_clock(connector, started)
    if mode == "scan":
        found = deletes.after_complete_scan(engine, system, seen, started, run_id)
        if full and regular == "incremental" and not connector.has_delete_feed:
            counts.add("healed", found["deleted"])  # no feed: only a full scan sees deletes
        counts.merge(found)
    if connector.has_delete_feed:
        counts.merge(deletes.from_feed(engine, system, started, run_id))
    _finish_poll(engine, system, started, mode, counts, watermark)
    return counts


def _since(cursor: Cursor, lookback: dt.timedelta) -> dt.datetime:
    """Where an incremental poll starts: the watermark (or the newest stamp) minus lookback."""
    mark = aware_utc(cursor.watermark or cursor.stamp)
    return mark - lookback if mark is not None else EPOCH


def _covered(cursor: Cursor, regular: str) -> dt.datetime | None:
    """Up to when the regular path had read the system before this full compare."""
    fallback = cursor.stamp if regular == "incremental" else cursor.last_poll_at
    return aware_utc(cursor.watermark or fallback)


def _vendor_clock(connector: BaseConnector, moment: dt.datetime) -> dt.datetime | None:
    """``moment`` of our clock in the vendor's, from the latest listing's ``Date``."""
    clock = connector.listing_clock
    return clock.to_vendor(moment) if clock is not None else None


def _vendor_start(connector: BaseConnector, started: dt.datetime) -> dt.datetime:
    """The run's start in the vendor's clock (ours when the vendor sends no ``Date``)."""
    return _vendor_clock(connector, started) or started


def _advance_cursor(
    session: Session, system: str, page: list[VendorRecord], cap: dt.datetime
) -> None:
    """Compound cursor (stamp, external id) over the committed page, never past ``cap``."""
    if not page:
        return
    last = max(page, key=lambda r: (r.modified, r.external_id))
    stamp = min(to_utc(last.modified) or cap, cap)
    cursor = session.get(Cursor, system) or Cursor(system=system)
    held = aware_utc(cursor.stamp)
    if held is None or (stamp, last.external_id) > (held, cursor.external_id or ""):
        cursor.stamp, cursor.external_id = stamp, last.external_id
    cursor.updated_at = utcnow()
    session.add(cursor)


def _finish_poll(
    engine: Engine,
    system: str,
    started: dt.datetime,
    mode: str,
    counts: Counts,
    watermark: dt.datetime | None,
) -> None:
    with engine.session() as session:
        cursor = session.get(Cursor, system) or Cursor(system=system)
        cursor.last_poll_at = started
        cursor.watermark = watermark
        if mode == "scan":
            cursor.last_full_scan_at = started
        cursor.last_error = None
        session.add(cursor)
        session.commit()
    log.info("capture_done", system=system, mode=mode, **counts.values)


# -- one page ------------------------------------------------------------------------------
def _ingest_page(poll: Poll, session: Session, page: list[VendorRecord]) -> None:
    """Fold one page in: skip and map every record, load what identity resolution needs in
    one go, ingest record by record, then queue the pushes once per touched record."""
    page = _changed_only(poll, session, page)
    state = _load_links(session, poll.system, page)
    items = [item for rec in page if (item := _prepare(poll, state, rec)) is not None]
    _load_identities(poll, state, [item for item in items if item.record is None])
    for item in items:
        if item.record is None:
            _ingest_new(poll, state, item)
        else:
            _ingest_known(poll, state, item)
    _insert_new(state)
    resolve_captured(
        session, poll.system, [i.rec.external_id for i in items], state.notes, poll.run_id
    )
    _queue_pushes(poll, state)
    state.notes.write(session)


def _insert_new(state: Page) -> None:
    """Insert the page's new records, then their links and keys, one statement per table."""
    for table, rows in (
        (Record, [vars(record) for record in state.new_records.values()]),
        (Link, [vars(link) for link in state.new_links.values()]),
        (RecordKey, state.new_keys),
    ):
        if rows:
            state.session.execute(sa.insert(table), rows)


def _queue_pushes(poll: Poll, state: Page) -> None:
    """Queue a push to every system whose copy of a touched record differs (or that lacks
    it): ``outbound.enqueue_pushes`` for a whole page, with each record's links and open
    outbox rows read in one query per page instead of two per record."""
    if not state.touched:
        return
    engine, session = poll.engine, state.session
    ids = sorted(state.touched)
    # a record created by this page has one link, ours, and no outbox row: nothing to read
    links: dict[str, dict[str, Link | NewLink]] = {
        rid: {poll.system: link} for rid, link in state.created.items()
    }
    stored = [rid for rid in ids if rid not in state.created]
    open_rows: dict[tuple[str, str], Outbox] = {}
    if stored:
        for row in session.exec(select(Link).where(col(Link.record_id).in_(stored))).all():
            links.setdefault(row.record_id, {})[row.system] = row
        outbox = select(Outbox).where(
            col(Outbox.record_id).in_(stored), col(Outbox.status).in_(OPEN_STATES)
        )
        open_rows = {(row.record_id, row.system): row for row in session.exec(outbox).all()}
    for record_id in ids:
        record, reason = state.touched[record_id]
        held = links.get(record_id, {})
        for system in engine.systems:
            op = push_op(engine, system, record, held.get(system))
            queued = open_rows.get((record_id, system))
            if op and queued is None:  # most of a load: inserted with the page's other rows
                state.new_outbox.append(outbox_row(record_id, system, op, reason))
            elif op:
                enqueue_into(session, queued, record_id, system, op, reason)
    if state.new_outbox:
        session.execute(sa.insert(Outbox), state.new_outbox)


def _changed_only(poll: Poll, session: Session, page: list[VendorRecord]) -> list[VendorRecord]:
    """The page minus the deals whose vendor stamp says nothing changed since their shadow.

    Decided from a few columns of the links, not from loaded Link and Record objects: a no-op
    scan of 10,000 deals would otherwise build 20,000 ORM objects and parse their JSON only to
    drop them. Whole-second summary stamps (ParsaLink) are compared field by field with the
    shadow until a scan confirms them after their second closed (``Link.confirmed_at``)."""
    if not page:
        return page
    stored: dict[str, tuple[dt.datetime | None, dt.datetime | None]] = {
        external_id: (stamp, confirmed)
        for external_id, stamp, confirmed in session.exec(
            select(Link.external_id, Link.vendor_modified, Link.confirmed_at).where(
                Link.system == poll.system,
                col(Link.external_id).in_([rec.external_id for rec in page]),
            )
        ).all()
    }
    same = [
        rec
        for rec in page
        if rec.external_id in stored and _same_stamp(stored[rec.external_id][0], rec)
    ]
    racy = [
        rec
        for rec in same
        if _whole_second_summary(rec) and not _settled(stored[rec.external_id][1], rec)
    ]
    moved = _summaries_moved(poll, session, racy)
    _confirm(poll, session, [rec.external_id for rec in racy if rec.external_id not in moved])
    unchanged = {rec.external_id for rec in same} - moved
    poll.counts.add("unchanged", len(unchanged))
    return [rec for rec in page if rec.external_id not in unchanged]


def _settled(confirmed: dt.datetime | None, rec: VendorRecord) -> bool:
    """Was the shadow confirmed when the stamp's second had surely closed? 2 s, not 1: the
    vendor clock is estimated from whole-second ``Date`` headers."""
    stamp = to_utc(rec.modified)
    confirmed = aware_utc(confirmed)
    return stamp is not None and confirmed is not None and confirmed >= stamp + SETTLE


def _summaries_moved(poll: Poll, session: Session, racy: list[VendorRecord]) -> set[str]:
    """External ids among ``racy`` whose summary fields differ from the shadow."""
    if not racy:
        return set()
    shadows: dict[str, Mapping[str, Any]] = dict(
        session.exec(
            select(Link.external_id, Link.shadow).where(
                Link.system == poll.system,
                col(Link.external_id).in_([rec.external_id for rec in racy]),
            )
        ).all()
    )
    return {
        rec.external_id
        for rec in racy
        if _summary_moved(poll.engine, poll.system, shadows[rec.external_id], rec)
    }


def _confirm(poll: Poll, session: Session, external_ids: list[str]) -> None:
    """Remember that these summaries matched their shadows at this listing's start (in the
    vendor's clock; unknown without a ``Date``, then nothing is remembered)."""
    at = _vendor_clock(poll.engine.connector(poll.system), poll.started)
    if not external_ids or at is None:
        return
    session.execute(
        sa.update(Link)
        .where(col(Link.system) == poll.system, col(Link.external_id).in_(external_ids))
        .values(confirmed_at=at)
    )


def _load_links(session: Session, system: str, page: list[VendorRecord]) -> Page:
    ids = [r.external_id for r in page]
    if not ids:  # every record of the page was unchanged
        return Page(session, {})
    links = {
        link.external_id: link
        for link in session.exec(
            select(Link).where(Link.system == system, col(Link.external_id).in_(ids))
        ).all()
    }
    state = Page(session, links)
    _load_records(state, [link.record_id for link in links.values()])
    state.linked_here.update(link.record_id for link in links.values())
    return state


def _load_records(state: Page, ids: Iterable[str]) -> None:
    wanted = sorted(set(ids) - set(state.records))
    if wanted:
        rows = state.session.exec(select(Record).where(col(Record.id).in_(wanted))).all()
        state.records.update((r.id, r) for r in rows)


def _load_identities(poll: Poll, state: Page, items: list[Item]) -> None:
    """For the page's unlinked deals: the records their carried record ids name, the records
    their identity keys point at, and which of those already have a link in this system."""
    if not items:
        return
    natural = poll.engine.config.sync.natural_key
    carried = [poll.engine.mapper.record_id_of(poll.system, item.rec.data) for item in items]
    _lookup_keys(state, [key for item in items for key in keys_of(item.theirs, natural)])
    candidates = {rid for rid in carried if rid} | set(state.keys.values())
    _load_records(state, candidates)
    unknown = sorted(candidates - state.linked_here)
    if unknown:
        state.linked_here.update(
            state.session.exec(
                select(Link.record_id).where(
                    Link.system == poll.system, col(Link.record_id).in_(unknown)
                )
            ).all()
        )


def _lookup_keys(state: Page, keys: Iterable[Key]) -> None:
    """Load which record holds each identity key (one query for all the keys not known)."""
    wanted = {key for key in keys if key not in state.keys and key not in state.absent}
    if not wanted:
        return
    rows = state.session.exec(
        select(RecordKey).where(
            col(RecordKey.namespace).in_(sorted({ns for ns, _ in wanted})),
            col(RecordKey.value).in_(sorted({value for _, value in wanted})),
        )
    ).all()
    for row in rows:
        state.keys[(row.namespace, row.value)] = row.record_id
    state.absent |= wanted - set(state.keys)


# -- one record ----------------------------------------------------------------------------
def _same_stamp(stored: dt.datetime | None, rec: VendorRecord) -> bool:
    """A sub-second stamp equal to the shadow's (``stored``) means nothing changed. Whole-second
    stamps are not trusted (two edits in one second share one) — except on summary listings
    (ParsaLink), where the alternative is a GET per record per scan: there the summary's own
    fields are compared with the shadow (``_summary_moved``), and an edit landing in the same
    second as our own write that touches only fields the summary lacks waits for its next
    change (documented limitation)."""
    stamp = to_utc(rec.modified)
    if stamp is None or to_utc(stored) != stamp:
        return False
    return rec.partial or stamp.microsecond != 0


def _whole_second_summary(rec: VendorRecord) -> bool:
    stamp = to_utc(rec.modified)
    return rec.partial and stamp is not None and stamp.microsecond == 0


def _summary_moved(
    engine: Engine, system: str, shadow: Mapping[str, Any], rec: VendorRecord
) -> bool:
    """For a summary record whose whole-second stamp equals the shadow's: does any field the
    summary does carry differ from the shadow? (Catches an edit in the same second as ours.)"""
    try:
        summary = engine.mapper.to_canonical(system, rec.data, engine.refs)
    except (MappingError, UnresolvedReference):
        return True
    return any(value is not None and value != shadow.get(name) for name, value in summary.items())


def _prepare(poll: Poll, state: Page, rec: VendorRecord) -> Item | None:
    """Skip what needs no work (unchanged, tombstoned, filtered), read a summary in full and
    map the record; None when there is nothing more to do with it."""
    engine, system, counts = poll.engine, poll.system, poll.counts
    link = state.links.get(rec.external_id)  # unchanged stamps were dropped: _changed_only
    record = state.records.get(link.record_id) if link is not None else None
    # a deal another system's delete is propagating, still alive here: an edit here wins
    racing = (
        link is not None
        and link.deleted_at is None
        and record is not None
        and record.deleted_at is not None
        and record.deleted_by != system
    )
    if not racing and link is not None and (link.deleted_at or (record and record.deleted_at)):
        counts.add("tombstoned")  # a stale read must not resurrect a deleted deal
        return None
    if rec.partial:  # a summary listing: read the whole deal before mapping it
        rec = engine.connector(system).get(rec.external_id)
        counts.add("fetched_full")
    if not engine.mapper.accepts(system, rec.data):
        counts.add("filtered")
        filters.left_out(state.session, link)
        return None
    filters.let_in(engine, state.session, link)
    try:
        theirs = engine.mapper.to_canonical(system, rec.data, engine.refs)
    except (MappingError, UnresolvedReference) as exc:
        dead_letter(
            state.session,
            system=system,
            direction="inbound",
            op="read",
            error=str(exc),
            payload=rec.data,
            external_id=rec.external_id,
            record_id=record.id if record else None,
        )
        counts.add("dead_letters")
        return None
    if racing and link is not None and record is not None:
        if theirs == link.shadow:
            counts.add("tombstoned")  # nothing new here: the delete stands
            return None
        deletes.edited_after_delete(state.session, record, system)
    return Item(rec, theirs, link, record)


def _healed(poll: Poll, state: Page, record_id: str, rec: VendorRecord, what: str) -> None:
    """Count and journal a difference the regular path should already have delivered."""
    poll.counts.add("healed")
    state.notes.add(
        record_id,
        "healed",
        f"full compare: {poll.system} {rec.external_id} {what} although its stamp "
        f"{rec.modified.isoformat()} predates what earlier polls covered",
        system=poll.system,
        run_id=poll.run_id,
    )


def _ingest_new(poll: Poll, state: Page, item: Item) -> None:
    """An unlinked deal: link it to the stored record it matches, or create one."""
    system, rec, theirs = poll.system, item.rec, item.theirs
    if rec.external_id in state.new_links:  # listed twice in one page: linked by the first
        poll.counts.add("repeated")
        return
    found, why = _match(poll, state, rec, theirs)
    if isinstance(found, NewRecord) or (found is not None and found.id in state.linked_here):
        found = None  # that deal already has a partner here: this one is another deal
    elif found is not None and found.deleted_at is not None:
        poll.counts.add("tombstoned")
        return
    now = utcnow()
    record: Record | NewRecord = found or _create(poll, state, rec, theirs, now)
    intent = state.adopted.get(rec.external_id) if found is not None else None
    if found is not None:
        state.notes.add(
            found.id,
            "linked",
            f"{system} {rec.external_id} {why}",
            system=system,
            run_id=poll.run_id,
        )
        poll.counts.add("linked")
    if poll.missed(rec):
        _healed(poll, state, record.id, rec, "was not linked")
    link = NewLink(
        record_id=record.id,
        system=system,
        external_id=rec.external_id,
        shadow={} if found else dict(theirs),
        sent={},
        vendor_modified=to_utc(rec.modified),
        linked_at=now,
        synced_at=now,
    )
    state.new_links[rec.external_id] = link
    state.linked_here.add(record.id)
    if found is None:
        state.created[record.id] = link
    elif intent is not None:  # our own create: merge against what it sent
        link.shadow, link.sent = adopted_base(intent.sent, theirs)
        poll.counts.add("adopted")
        _merge_into(poll, state, rec, link, found, theirs)
    else:  # matched: merge everything against an unknown base
        _merge_into(poll, state, rec, link, found, theirs, first_match=True)
    _index_keys(state, record, poll.engine.config.sync.natural_key)
    state.touched[record.id] = (record, f"captured from {system}")


def _match(
    poll: Poll, state: Page, rec: VendorRecord, theirs: dict[str, Any]
) -> tuple[Record | NewRecord | None, str]:
    """The record an unlinked deal belongs to: our record id it carries, then its keys."""
    record, why = _by_record_id(poll, state, rec)
    if record is None:
        record, why = _find_record(state, theirs, poll.engine.config.sync.natural_key)
    if record is None:
        record, why = _by_intent(poll, state, rec, theirs)
    return record, why


def _by_intent(
    poll: Poll, state: Page, rec: VendorRecord, theirs: dict[str, Any]
) -> tuple[Record | None, str]:
    """A deal one of our creates made whose answer was lost (``intents`` has the rule): it is
    that record's, never a new one — whichever comes first, this capture or the retry."""
    if poll.engine.mapper.holds_record_id(poll.system):
        return None, ""  # our creates there carry our id: a deal without it is not ours
    pool = [i for i in _intents(poll, state) if i.record_id not in state.linked_here]
    if not pool:
        return None, ""
    current = {
        i.record_id: state.records[i.record_id].fields for i in pool if i.record_id in state.records
    }
    found = best_intent(pool, theirs, to_utc(rec.modified), current, to_utc(rec.created))
    record = state.records.get(found[0].record_id) if found else None
    if found is None or record is None:
        return None, ""
    intent, score = found
    _intents(poll, state).remove(intent)
    state.adopted[rec.external_id] = intent
    return record, (
        f"is the deal of create intent #{intent.row_id} whose answer was lost "
        f"({score:.0%} alike what it sent)"
    )


def _create(
    poll: Poll, state: Page, rec: VendorRecord, theirs: dict[str, Any], now: dt.datetime
) -> NewRecord:
    record = NewRecord(
        id=new_id(),
        fields=dict(theirs),
        provenance=_prov(theirs, poll.system, rec),
        held=[],
        created_at=now,
        updated_at=now,
    )
    state.new_records[record.id] = record
    state.notes.add(
        record.id,
        "created",
        f"new deal captured from {poll.system} {rec.external_id}",
        system=poll.system,
        new=theirs,
        run_id=poll.run_id,
    )
    poll.counts.add("created")
    return record


def _by_record_id(
    poll: Poll, state: Page, rec: VendorRecord
) -> tuple[Record | NewRecord | None, str]:
    """Our own record id written into the vendor's deal (a create whose answer we lost)."""
    record_id = poll.engine.mapper.record_id_of(poll.system, rec.data)
    record = state.record(record_id)
    if record is None:
        return None, ""
    intent = next((i for i in _intents(poll, state) if i.record_id == record.id), None)
    if intent is not None:  # our create whose answer was lost: its base is what it sent
        _intents(poll, state).remove(intent)
        state.adopted[rec.external_id] = intent
    return record, f"carries our record id {record_id}"


def _intents(poll: Poll, state: Page) -> list[Intent]:
    """This system's open create intents, loaded with their records once per page."""
    if state.intents is None:
        state.intents = open_intents(state.session, poll.system)
        _load_records(state, [intent.record_id for intent in state.intents])
    return state.intents


def _find_record(
    state: Page, fields: dict[str, Any], natural_key: list[str]
) -> tuple[Record | NewRecord | None, str]:
    """The record an unlinked deal belongs to, by its identity keys in order (DESIGN §2.5):
    external ids it carries first, then the natural key."""
    for namespace, value in keys_of(fields, natural_key):
        record = state.record(state.keys.get((namespace, value)))
        if record is not None:
            label = (
                "natural key " + "+".join(natural_key)
                if namespace == "natural"
                else f"{namespace} id {value}"
            )
            return record, f"matched by {label}"
    return None, ""


def _index_keys(state: Page, record: Record | NewRecord, natural_key: list[str]) -> None:
    """Make sure every identity key of the record points at it (first come keeps a key)."""
    wanted = keys_of(record.fields, natural_key)
    _lookup_keys(state, wanted)
    for key in wanted:
        if key not in state.keys:
            state.new_keys.append({"record_id": record.id, "namespace": key[0], "value": key[1]})
            state.keys[key] = record.id
            state.absent.discard(key)


def _prov(fields: dict[str, Any], system: str, rec: VendorRecord) -> dict[str, Any]:
    at = to_utc(rec.modified)
    return {name: {"system": system, "at": at.isoformat() if at else None} for name in fields}


def _ingest_known(poll: Poll, state: Page, item: Item) -> None:
    rec, link, record, theirs = item.rec, item.link, item.record, item.theirs
    assert link is not None and record is not None
    if theirs == link.shadow:
        link.vendor_modified = to_utc(rec.modified)  # echo of our own write, or no change
        state.session.add(link)
        poll.counts.add("unchanged")
        return
    if poll.missed(rec):
        _healed(poll, state, record.id, rec, "differs from its shadow")
    changed = _merge_into(poll, state, rec, link, record, theirs)
    poll.counts.add("changed" if changed else "unchanged")
    _index_keys(state, record, poll.engine.config.sync.natural_key)
    state.touched[record.id] = (record, f"changed in {poll.system}")


def _effective_base(link: Link | NewLink | money.Copy, ours: dict[str, Any], name: str) -> Any:
    """The shadow value, except where the shadow is the vendor's lossy copy of ours."""
    base = link.shadow.get(name)
    sent = link.sent.get(name)
    if sent is not None and sent == [ours.get(name), base]:
        return ours.get(name)
    return base


def _merge_into(
    poll: Poll,
    state: Page,
    rec: VendorRecord,
    link: Link | NewLink,
    record: Record,
    theirs: dict[str, Any],
    *,
    first_match: bool = False,
) -> bool:
    """Three-way merge of every incoming field; returns whether the canonical record changed.
    ``first_match``: the deal was just matched to ours, so there is no base yet."""
    engine, session, system, run_id = poll.engine, state.session, poll.system, poll.run_id
    ours = dict(record.fields)
    provenance = dict(record.provenance)
    held = list(record.held)
    stamp = aware_utc(rec.modified)
    changed = False
    _take_echoes(poll, state, record.id, theirs, link)
    # amounts compared as (amount, currency) pairs, in the deal's currency (engine/money.py)
    terms = money.for_merge(engine, system, ours, theirs, link)
    for reason in terms.set_aside:
        state.notes.add(
            record.id, "not_taken", reason, system=system, field="amount", run_id=run_id
        )
    base = terms.base.shadow
    for name, value in terms.theirs.items():
        if not first_match and name in base and value == base[name]:
            continue  # not changed there since we last saw it (a lossy copy of ours included)
        origin = provenance.get(name) or {}
        ours_side = Side(ours.get(name), origin.get("system"), _parse(origin.get("at")))
        decision = merge_field(
            name,
            _effective_base(terms.base, ours, name),
            ours_side,
            Side(value, system, stamp),
            engine.policy_for(name),
            held=name in held,
            first_match=first_match,
        )
        if decision.conflict:
            _record_conflict(session, record, link, decision, ours_side, value, system)
            poll.counts.add("conflicts")
            if decision.outcome == "held" and name not in held:
                held.append(name)
        if decision.outcome == "take_theirs":
            state.notes.add(
                record.id,
                "field_changed",
                decision.reason + terms.why.get(name, ""),
                system=system,
                field=name,
                old=ours.get(name),
                new=value,
                run_id=run_id,
            )
            ours[name] = value
            at = to_utc(stamp)
            provenance[name] = {"system": system, "at": at.isoformat() if at else None}
            changed = True
        elif decision.conflict:
            state.notes.add(
                record.id,
                "conflict",
                decision.reason,
                system=system,
                field=name,
                old=value,
                new=decision.value,
                run_id=run_id,
            )
    link.shadow = dict(theirs)
    link.vendor_modified = to_utc(rec.modified)
    link.synced_at = utcnow()  # a stored link is tracked; a new one is in state.new_links
    if changed or held != record.held:
        record.fields, record.provenance, record.held = ours, provenance, held
        record.updated_at = utcnow()
        session.add(record)
    return changed


def _take_echoes(
    poll: Poll, state: Page, record_id: str, theirs: dict[str, Any], link: Link | NewLink
) -> None:
    """Values an update of ours whose answer never came back may have left there are our
    echo, not that system's edit: the shadow moves to them, as the answer would have moved it
    (``intents``: updates in doubt)."""
    if state.doubts is None:
        state.doubts = open_update_doubts(state.session, poll.system)
    doubts = state.doubts.get(record_id)
    echo = echoes(doubts, theirs, link.shadow) if doubts else {}
    if echo:
        link.shadow = {**link.shadow, **echo}
        poll.counts.add("echoes")


def _record_conflict(
    session: Session,
    record: Record,
    link: Link | NewLink,
    decision: Any,
    ours: Side,
    theirs: Any,
    system: str,
) -> None:
    manual = decision.outcome == "held"
    session.add(
        Conflict(
            record_id=record.id,
            field=decision.field,
            policy=decision.policy or "manual",
            base=link.shadow.get(decision.field),
            ours=ours.value,
            ours_system=ours.system,
            theirs=theirs,
            theirs_system=system,
            winner=decision.winner,
            status="open" if manual else "resolved",
            reason=decision.reason,
            resolved_at=None if manual else utcnow(),
        )
    )


def _parse(value: Any) -> dt.datetime | None:
    if not value:
        return None
    return aware_utc(dt.datetime.fromisoformat(str(value)))
