"""One page of capture: the poll's state, the rows a page loads in a few queries (links,
records, identity keys), and the skip rules that drop what the store already holds (same
vendor stamp; whole-second stamps that may still gain a same-second edit, ``SETTLE``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from sync.connectors.base import BaseConnector, VendorRecord
from sync.engine import deletes, filters
from sync.engine.budget import recheck_budget
from sync.engine.context import Counts, Engine
from sync.engine.identity import keys_of
from sync.engine.intents import (
    Intent,
)
from sync.engine.journal import Notes, dead_letter
from sync.mapping.errors import MappingError, UnresolvedReference
from sync.store import links, records
from sync.store.models import Link, Record
from sync.timefmt import maybe_utc, utcnow

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
    #: unconfirmed deals this scan may still read in full (``budget``; None: not asked yet)
    rechecks_left: int | None = None

    def missed(self, rec: VendorRecord) -> bool:
        if self.heal_before is None:
            return False
        stamp = maybe_utc(rec.modified)
        return stamp is not None and stamp < self.heal_before


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
    written_stamp: dt.datetime | None = None  # set by our own writes' answers, never by capture


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
    #: external id -> stamp of the deals this page read in full (``confirm_full_reads``)
    read_in_full: dict[str, dt.datetime | None] = field(default_factory=dict)
    #: external id -> record id of the deals the filter left out (their letters close)
    filtered: dict[str, str | None] = field(default_factory=dict)
    #: when the page's new records and links were made: one stamp for the transaction's rows
    #: (bound once for all of them, ``store.bulk``), not a clock read per deal
    now: dt.datetime = field(default_factory=utcnow)

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


def _vendor_clock(connector: BaseConnector, moment: dt.datetime) -> dt.datetime | None:
    """``moment`` of our clock in the vendor's, from the latest listing's ``Date``."""
    clock = connector.listing_clock
    return clock.to_vendor(moment) if clock is not None else None


def _changed_only(
    poll: Poll, session: Session, page: list[VendorRecord]
) -> tuple[list[VendorRecord], set[str]]:
    """The page minus the deals whose vendor stamp says nothing changed since their shadow,
    and the external ids of the page's deals that are linked (``_load_links`` reads no link
    of the others: a page of a first load reads none).

    Decided from a few columns of the links, not from loaded Link and Record objects: a no-op
    scan of 10,000 deals would otherwise build 20,000 ORM objects and parse their JSON only to
    drop them. Whole-second summary stamps (ParsaLink) are not trusted until confirmed
    (``Link.confirmed_at``): until then the summary's fields are compared with the shadow, and
    once the stamp's second has surely closed the deal is read in full (``_rechecks``) — an
    edit made in the second of our last read or write, of a field the summary lacks, would
    otherwise never show."""
    if not page:
        return page, set()
    stored: dict[str, tuple[dt.datetime | None, dt.datetime | None]] = {
        external_id: (stamp, confirmed)
        for external_id, stamp, confirmed in links.stamps_of(
            session, poll.system, [rec.external_id for rec in page]
        )
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
    quiet = [rec for rec in racy if rec.external_id not in moved]
    recheck = _rechecks(poll, session, quiet)
    # confirmed now, before the read: it sees every edit of their closed second (a deal the
    # read then skips, e.g. tombstoned, is not rechecked again); a failed read rolls this back
    _confirm(poll, session, sorted(recheck))
    unchanged = {rec.external_id for rec in same} - moved - recheck
    poll.counts.add("unchanged", len(unchanged))
    return [rec for rec in page if rec.external_id not in unchanged], set(stored)


def _rechecks(poll: Poll, session: Session, quiet: list[VendorRecord]) -> set[str]:
    """Among unconfirmed deals whose summary matched, those to read in full now: the ones whose
    stamp's second had closed when this scan began (a read now sees all of that second), oldest
    first, within what the system's budget leaves this scan (``engine.budget``: a GET each, so
    a load of 2,000 deals is confirmed over many scans, not 2,000 GETs in one at ParsaLink's
    100 a minute; the rest keep their summaries compared meanwhile)."""
    at = _vendor_clock(poll.engine.connector(poll.system), poll.started)
    if at is None or not quiet:
        return set()
    if poll.rechecks_left is None:
        cfg = poll.engine.config.systems[poll.system]
        poll.rechecks_left = recheck_budget(session, cfg, poll.system)
    closed = [rec for rec in quiet if _closed(rec.modified, at)]
    by_age = sorted(closed, key=lambda rec: (maybe_utc(rec.modified), rec.external_id))
    chosen = by_age[: poll.rechecks_left]
    poll.rechecks_left -= len(chosen)
    poll.counts.add("rechecked", len(chosen))
    return {rec.external_id for rec in chosen}


def _closed(stamp: dt.datetime | None, at: dt.datetime) -> bool:
    """Had the second of a whole-second ``stamp`` surely closed at ``at`` (vendor clock)?"""
    stamp = maybe_utc(stamp)
    return stamp is not None and at >= stamp + SETTLE


def _settled(confirmed: dt.datetime | None, rec: VendorRecord) -> bool:
    """Was the shadow confirmed when the stamp's second had surely closed? 2 s, not 1: the
    vendor clock is estimated from whole-second ``Date`` headers."""
    stamp = maybe_utc(rec.modified)
    confirmed = maybe_utc(confirmed)
    return stamp is not None and confirmed is not None and confirmed >= stamp + SETTLE


def _summaries_moved(poll: Poll, session: Session, racy: list[VendorRecord]) -> set[str]:
    """External ids among ``racy`` whose summary fields differ from the shadow."""
    if not racy:
        return set()
    shadows = links.shadows_of(session, poll.system, [rec.external_id for rec in racy])
    return {
        rec.external_id
        for rec in racy
        if _summary_moved(poll.engine, poll.system, shadows[rec.external_id], rec)
    }


def _confirm(poll: Poll, session: Session, external_ids: list[str]) -> None:
    """Remember these deals as confirmed at this listing's start (in the vendor's clock;
    unknown without a ``Date``, then nothing is remembered)."""
    at = _vendor_clock(poll.engine.connector(poll.system), poll.started)
    if not external_ids or at is None:
        return
    links.confirm(session, poll.system, external_ids, at)


def confirm_full_reads(poll: Poll, state: Page) -> None:
    """A deal this page read in full because its stamp moved is confirmed by that read when the
    stamp's second had closed as the scan began — no second read of it at the next scan."""
    at = _vendor_clock(poll.engine.connector(poll.system), poll.started)
    if at is None:
        return
    for external_id, stamp in state.read_in_full.items():
        if not _closed(stamp, at):
            continue
        link = state.new_links.get(external_id) or state.links.get(external_id)
        if link is not None:
            link.confirmed_at = at


def _load_links(session: Session, system: str, page: list[VendorRecord], linked: set[str]) -> Page:
    """The page's state with the links of its deals among ``linked`` (those ``_changed_only``
    found linked, in this transaction: no other deal of the page has a link to load)."""
    ids = [r.external_id for r in page if r.external_id in linked]
    if not ids:  # every record of the page was unchanged, or none is linked
        return Page(session, {})
    stored = {link.external_id: link for link in links.of_deals_in(session, system, ids)}
    state = Page(session, stored)
    _load_records(state, [link.record_id for link in stored.values()])
    state.linked_here.update(link.record_id for link in stored.values())
    return state


def _load_records(state: Page, ids: Iterable[str]) -> None:
    wanted = sorted(set(ids) - set(state.records))
    if wanted:
        state.records.update((r.id, r) for r in records.many(state.session, wanted))


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
        state.linked_here.update(links.linked_among(state.session, poll.system, unknown))


def _lookup_keys(state: Page, keys: Iterable[Key]) -> None:
    """Load which record holds each identity key (one query for all the keys not known)."""
    wanted = {key for key in keys if key not in state.keys and key not in state.absent}
    if not wanted:
        return
    namespaces = sorted({ns for ns, _ in wanted})
    rows = records.keys_among(state.session, namespaces, sorted({value for _, value in wanted}))
    for row in rows:
        state.keys[(row.namespace, row.value)] = row.record_id
    state.absent |= wanted - set(state.keys)


# -- one record ----------------------------------------------------------------------------
def _same_stamp(stored: dt.datetime | None, rec: VendorRecord) -> bool:
    """A sub-second stamp equal to the shadow's (``stored``) means nothing changed. Whole-second
    stamps are not trusted (two edits in one second share one) — except on summary listings
    (ParsaLink), where the alternative is a GET per record per scan: there an equal stamp is
    trusted once confirmed by a read in full after its second closed, and until then the
    summary's own fields are compared with the shadow (``_summary_moved``) and the deal is
    rechecked in full once its second has closed (``_changed_only``)."""
    stamp = maybe_utc(rec.modified)
    if stamp is None or maybe_utc(stored) != stamp:
        return False
    return rec.partial or stamp.microsecond != 0


def _whole_second_summary(rec: VendorRecord) -> bool:
    stamp = maybe_utc(rec.modified)
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
        state.read_in_full[rec.external_id] = rec.modified
    if not engine.mapper.accepts(system, rec.data):
        counts.add("filtered")
        filters.left_out(state.session, link)
        state.filtered[rec.external_id] = record.id if record else None  # its letters close
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
