"""Capture's poll loop: read one system page by page, fold each page in its own transaction,
move the compound cursor and set the watermark (see the package docstring for the rules).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import structlog
from sqlmodel import Session

from sync.connectors.base import BaseConnector, VendorRecord
from sync.engine import deletes, pace
from sync.engine.budget import announced
from sync.engine.capture.merge import _ingest_known, _ingest_new
from sync.engine.capture.page import (
    EPOCH,
    NewLink,
    Page,
    Poll,
    _changed_only,
    _load_identities,
    _load_links,
    _prepare,
    _vendor_clock,
    confirm_full_reads,
)
from sync.engine.context import Counts, Engine
from sync.engine.journal import enqueue_into, outbox_row
from sync.engine.letters import resolve_captured, resolve_filtered
from sync.engine.outbound import push_op, pushable
from sync.engine.prefetch import one_ahead
from sync.engine.seen import SeenIds
from sync.store import cursors, links, outbox, records
from sync.store import refs as stored_refs
from sync.store.models import Cursor, Link, Outbox
from sync.timefmt import maybe_utc, utcnow

log = structlog.get_logger("crmsync.capture")


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
        cursor = cursors.get(session, system) or Cursor(system=system)
    regular = capture_mode(engine, system)
    mode = "scan" if full or rescan else regular
    pages: Iterable[list[VendorRecord]]
    if mode == "incremental":
        pages = connector.list_changed(_since(cursor, lookback))
    else:
        pages = connector.scan()
    covered = _covered(cursor, regular) if full else None
    poll = Poll(engine, system, counts, run_id, started, covered - lookback if covered else None)
    seen = SeenIds()  # a scan's listing, compactly: a million ids as strings are 110 MB
    listed = 0  # pages: the listing's requests, from which a scan system's interval stretches
    for page in one_ahead(pages):  # the next page is read while this one is folded in
        with engine.session() as session:
            _ingest_page(poll, session, page)
            stored_refs.store_learnt(session, engine.refs.take_pending())
            if mode == "incremental":
                _advance_cursor(session, system, page, _vendor_start(connector, started))
            session.commit()
        if mode == "scan":  # what its deletes are found from; a listing of changes has none
            seen.update(r.external_id for r in page)
        counts.add("fetched", len(page))
        listed += 1
    # every page was read: the listing proves everything committed before its start was seen
    watermark = _vendor_clock(connector, started)
    if mode == "scan":
        found = deletes.after_complete_scan(engine, system, seen, started, run_id)
        if full and regular == "incremental" and not connector.has_delete_feed:
            counts.add("healed", found["deleted"])  # no feed: only a full scan sees deletes
        counts.merge(found)
    if connector.has_delete_feed:
        counts.merge(deletes.from_feed(engine, system, started, run_id))
    # the regular listing of a scan system (not a reconcile's of an incremental one) paces it
    paced = pace.measured(started, listed, len(seen)) if regular == "scan" == mode else None
    _finish_poll(engine, system, started, mode, counts, watermark, paced)
    return counts


def _since(cursor: Cursor, lookback: dt.timedelta) -> dt.datetime:
    """Where an incremental poll starts: the watermark (or the newest stamp) minus lookback."""
    mark = maybe_utc(cursor.watermark or cursor.stamp)
    return mark - lookback if mark is not None else EPOCH


def _covered(cursor: Cursor, regular: str) -> dt.datetime | None:
    """Up to when the regular path had read the system before this full compare."""
    fallback = cursor.stamp if regular == "incremental" else cursor.last_poll_at
    return maybe_utc(cursor.watermark or fallback)


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
    stamp = min(maybe_utc(last.modified) or cap, cap)
    cursor = cursors.get(session, system) or Cursor(system=system)
    held = maybe_utc(cursor.stamp)
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
    paced: dict[str, Any] | None = None,
) -> None:
    with engine.session() as session:
        cursor = cursors.get(session, system) or Cursor(system=system)
        cursor.last_poll_at = started
        cursor.watermark = watermark
        if mode == "scan":
            cursor.last_full_scan_at = started
        cursor.last_error = None
        cursor.budget = announced(system) or cursor.budget
        cursor.pace = paced or cursor.pace
        session.add(cursor)
        session.commit()
    log.info("capture_done", system=system, mode=mode, **counts.values)


# -- one page ------------------------------------------------------------------------------
def _ingest_page(poll: Poll, session: Session, page: list[VendorRecord]) -> None:
    """Fold one page in: skip and map every record, load what identity resolution needs in
    one go, ingest record by record, then queue the pushes once per touched record."""
    page, linked = _changed_only(poll, session, page)
    state = _load_links(session, poll.system, page, linked)
    items = [item for rec in page if (item := _prepare(poll, state, rec)) is not None]
    _load_identities(poll, state, [item for item in items if item.record is None])
    for item in items:
        if item.record is None:
            _ingest_new(poll, state, item)
        else:
            _ingest_known(poll, state, item)
    confirm_full_reads(poll, state)
    _insert_new(state)
    resolve_captured(
        session, poll.system, [i.rec.external_id for i in items], state.notes, poll.run_id
    )
    resolve_filtered(session, poll.system, state.filtered, state.notes, poll.run_id)
    _queue_pushes(poll, state)
    state.notes.write(session)


def _insert_new(state: Page) -> None:
    """Insert the page's new records, then their links and keys, one statement per table."""
    new_records = [vars(record) for record in state.new_records.values()]
    if new_records:
        records.insert_many(state.session, new_records)
    new_links = [vars(link) for link in state.new_links.values()]
    if new_links:
        links.insert_many(state.session, new_links)
    if state.new_keys:
        records.insert_keys(state.session, state.new_keys)


def _queue_pushes(poll: Poll, state: Page) -> None:
    """Queue a push to every system whose copy of a touched record differs (or that lacks
    it): ``outbound.enqueue_pushes`` for a whole page, with each record's links and open
    outbox rows read in one query per page instead of two per record."""
    if not state.touched:
        return
    engine, session = poll.engine, state.session
    ids = sorted(state.touched)
    # a record created by this page has one link, ours, and no outbox row: nothing to read
    copies: dict[str, dict[str, Link | NewLink]] = {
        rid: {poll.system: link} for rid, link in state.created.items()
    }
    stored = [rid for rid in ids if rid not in state.created]
    open_rows: dict[tuple[str, str], Outbox] = {}
    if stored:
        for row in links.of_records(session, stored):
            copies.setdefault(row.record_id, {})[row.system] = row
        open_rows = {
            (row.record_id, row.system): row for row in outbox.open_rows_of_many(session, stored)
        }
    now = utcnow()
    systems = engine.systems
    names: dict[str, set[str]] = {}  # each system's pushable fields, once per page
    for record_id in ids:
        record, reason = state.touched[record_id]
        held = copies.get(record_id, {})
        for system in systems:
            link = held.get(system)
            if link is not None and system not in names:
                names[system] = pushable(engine, system)
            op = push_op(engine, system, record, link, names.get(system))
            if op is None:
                continue
            queued = open_rows.get((record_id, system))
            if queued is None:  # most of a load: inserted with the page's other rows
                state.new_outbox.append(outbox_row(record_id, system, op, reason, now))
            else:
                enqueue_into(session, queued, record_id, system, op, reason)
    if state.new_outbox:
        outbox.insert_many(session, state.new_outbox)
