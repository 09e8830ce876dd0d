"""Capture: read what changed in one system and fold it into the store (DESIGN §2.1–2.3).

Per page, in one transaction: map each vendor record to canonical form, skip what we already
hold (same vendor stamp, or a projection equal to the shadow: echo suppression), resolve the
identity of unlinked deals, merge field by field against the shadow, journal every decision,
and enqueue pushes for the systems whose shadow now differs. The cursor moves in the same
transaction, only over committed records and never past the run's start, so a crash re-reads
and never skips.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlmodel import Session, col, select

from sync.connectors.base import VendorRecord
from sync.engine import deletes
from sync.engine.identity import find_record, index_keys
from sync.engine.journal import dead_letter, note
from sync.engine.merge import Side, merge_field
from sync.engine.outbound import enqueue_pushes
from sync.engine.state import Counts, Engine, aware_utc, new_id, to_utc
from sync.mapping.errors import MappingError, UnresolvedReference
from sync.store.models import Conflict, Cursor, Link, Record, utcnow

log = structlog.get_logger("crmsync.capture")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass
class Page:
    """The store rows one page of vendor records touches, loaded in two queries."""

    links: dict[str, Link]
    records: dict[str, Record]


def capture_mode(engine: Engine, system: str) -> str:
    configured = engine.config.systems[system].capture
    connector = engine.connector(system)
    if configured == "incremental" and connector.capture != "incremental":
        return "scan"  # the vendor cannot; config asked for what it cannot do
    return configured or connector.capture


def capture(
    engine: Engine, system: str, *, full: bool = False, run_id: str | None = None
) -> Counts:
    """Read one system's changes (or everything, when ``full`` or the vendor only scans)."""
    counts = Counts()
    connector = engine.connector(system)
    engine.refs.prime()
    started = utcnow()
    with engine.session() as session:
        cursor = session.get(Cursor, system) or Cursor(system=system)
    mode = "scan" if full else capture_mode(engine, system)
    if mode == "incremental" and cursor.stamp is not None:
        since = aware_utc(cursor.stamp - engine.config.sync.lookback) or EPOCH
        pages: Iterable[list[VendorRecord]] = connector.list_changed(since)
    elif mode == "incremental":
        pages = connector.list_changed(EPOCH)
    else:
        pages = connector.scan()
    seen: set[str] = set()
    for page in pages:
        with engine.session() as session:
            _ingest_page(engine, session, system, page, counts, run_id)
            session.add_all(engine.refs.take_pending())
            if mode == "incremental":
                _advance_cursor(session, system, page, started)
            session.commit()
        seen.update(r.external_id for r in page)
        counts.add("fetched", len(page))
    if mode == "scan":
        counts.merge(deletes.after_complete_scan(engine, system, seen, started, run_id))
    if connector.has_delete_feed:
        counts.merge(deletes.from_feed(engine, system, started, run_id))
    _finish_poll(engine, system, started, mode, counts)
    return counts


def _advance_cursor(
    session: Session, system: str, page: list[VendorRecord], cap: dt.datetime
) -> None:
    """Compound cursor (stamp, external id) over the committed page, never past ``cap``."""
    if not page:
        return
    last = max(page, key=lambda r: (r.modified, r.external_id))
    stamp = min(to_utc(last.modified) or cap, cap)
    cursor = session.get(Cursor, system) or Cursor(system=system)
    if cursor.stamp is None or (stamp, last.external_id) > (cursor.stamp, cursor.external_id or ""):
        cursor.stamp, cursor.external_id = stamp, last.external_id
    cursor.updated_at = utcnow()
    session.add(cursor)


def _finish_poll(
    engine: Engine, system: str, started: dt.datetime, mode: str, counts: Counts
) -> None:
    with engine.session() as session:
        cursor = session.get(Cursor, system) or Cursor(system=system)
        cursor.last_poll_at = started
        if mode == "scan":
            cursor.last_full_scan_at = started
        cursor.last_error = None
        session.add(cursor)
        session.commit()
    log.info("capture_done", system=system, mode=mode, **counts.values)


def _load_page(session: Session, system: str, page: list[VendorRecord]) -> Page:
    ids = [r.external_id for r in page]
    links = {
        link.external_id: link
        for link in session.exec(
            select(Link).where(Link.system == system, col(Link.external_id).in_(ids))
        ).all()
    }
    record_ids = [link.record_id for link in links.values()]
    records = {
        r.id: r for r in session.exec(select(Record).where(col(Record.id).in_(record_ids))).all()
    }
    return Page(links, records)


def _ingest_page(
    engine: Engine,
    session: Session,
    system: str,
    page: list[VendorRecord],
    counts: Counts,
    run_id: str | None,
) -> None:
    loaded = _load_page(session, system, page)
    for vendor_record in page:
        _ingest_one(engine, session, system, vendor_record, loaded, counts, run_id)


def _same_stamp(link: Link, rec: VendorRecord) -> bool:
    """A sub-second stamp equal to the shadow's means nothing changed. Whole-second stamps are
    not trusted (two edits in one second share one) — except on summary listings (ParsaLink),
    where the alternative is a GET per record per scan: there an edit landing in the same
    second as our own write waits for its next change (documented limitation)."""
    stamp = to_utc(rec.modified)
    if stamp is None or link.vendor_modified != stamp:
        return False
    return rec.partial or stamp.microsecond != 0


def _summary_moved(engine: Engine, link: Link, rec: VendorRecord) -> bool:
    """For a summary record whose whole-second stamp equals the shadow's: does any field the
    summary does carry differ from the shadow? (Catches an edit in the same second as ours.)"""
    if not rec.partial or to_utc(rec.modified).microsecond != 0:  # type: ignore[union-attr]
        return False
    try:
        summary = engine.mapper.to_canonical(link.system, rec.data, engine.refs)
    except (MappingError, UnresolvedReference):
        return True
    return any(
        value is not None and value != link.shadow.get(name) for name, value in summary.items()
    )


def _ingest_one(
    engine: Engine,
    session: Session,
    system: str,
    rec: VendorRecord,
    page: Page,
    counts: Counts,
    run_id: str | None,
) -> None:
    link = page.links.get(rec.external_id)
    if link is not None and _same_stamp(link, rec) and not _summary_moved(engine, link, rec):
        counts.add("unchanged")
        return
    record = page.records.get(link.record_id) if link is not None else None
    if link is not None and (link.deleted_at is not None or (record and record.deleted_at)):
        counts.add("tombstoned")  # a stale read must not resurrect a deleted deal
        return
    if rec.partial:  # a summary listing: read the whole deal before mapping it
        rec = engine.connector(system).get(rec.external_id)
        counts.add("fetched_full")
    if not engine.mapper.accepts(system, rec.data):
        counts.add("filtered")
        return
    try:
        theirs = engine.mapper.to_canonical(system, rec.data, engine.refs)
    except (MappingError, UnresolvedReference) as exc:
        dead_letter(
            session,
            system=system,
            direction="inbound",
            op="read",
            error=str(exc),
            payload=rec.data,
            external_id=rec.external_id,
            record_id=record.id if record else None,
        )
        counts.add("dead_letters")
        return
    if link is None or record is None:
        _ingest_new(engine, session, system, rec, theirs, counts, run_id)
    else:
        _ingest_known(engine, session, system, rec, link, record, theirs, counts, run_id)


def _ingest_new(
    engine: Engine,
    session: Session,
    system: str,
    rec: VendorRecord,
    theirs: dict[str, Any],
    counts: Counts,
    run_id: str | None,
) -> None:
    natural = engine.config.sync.natural_key
    record, why = _by_record_id(engine, session, system, rec)
    if record is None:
        record, why = find_record(session, theirs, natural)
    if record is not None and record.deleted_at is not None:
        counts.add("tombstoned")
        return
    if record is not None and _linked_elsewhere(session, record.id, system):
        record, why = None, ""  # that deal already has a partner here: this one is another deal
    if record is None:
        record = Record(id=new_id(), fields=dict(theirs), provenance=_prov(theirs, system, rec))
        session.add(record)
        session.flush()
        note(
            session,
            record.id,
            "created",
            f"new deal captured from {system} {rec.external_id}",
            system=system,
            new=theirs,
            run_id=run_id,
        )
        counts.add("created")
        shadow: dict[str, Any] = dict(theirs)
    else:
        note(
            session,
            record.id,
            "linked",
            f"{system} {rec.external_id} {why}",
            system=system,
            run_id=run_id,
        )
        counts.add("linked")
        shadow = {}
    link = Link(
        record_id=record.id,
        system=system,
        external_id=rec.external_id,
        shadow=shadow,
        vendor_modified=to_utc(rec.modified),
    )
    session.add(link)
    if not shadow:  # matched: merge everything against an unknown base
        _merge_into(engine, session, system, rec, link, record, theirs, counts, run_id)
    index_keys(session, record, natural)
    session.flush()
    enqueue_pushes(engine, session, record, reason=f"captured from {system}")


def _by_record_id(
    engine: Engine, session: Session, system: str, rec: VendorRecord
) -> tuple[Record | None, str]:
    """Our own record id written into the vendor's deal (a create whose answer we lost)."""
    record_id = engine.mapper.record_id_of(system, rec.data)
    record = session.get(Record, record_id) if record_id else None
    return (record, f"carries our record id {record_id}") if record else (None, "")


def _linked_elsewhere(session: Session, record_id: str, system: str) -> bool:
    return (
        session.exec(
            select(Link.id).where(Link.record_id == record_id, Link.system == system)
        ).first()
        is not None
    )


def _prov(fields: dict[str, Any], system: str, rec: VendorRecord) -> dict[str, Any]:
    at = to_utc(rec.modified)
    return {name: {"system": system, "at": at.isoformat() if at else None} for name in fields}


def _ingest_known(
    engine: Engine,
    session: Session,
    system: str,
    rec: VendorRecord,
    link: Link,
    record: Record,
    theirs: dict[str, Any],
    counts: Counts,
    run_id: str | None,
) -> None:
    if theirs == link.shadow:
        link.vendor_modified = to_utc(rec.modified)  # echo of our own write, or no change
        session.add(link)
        counts.add("unchanged")
        return
    changed = _merge_into(engine, session, system, rec, link, record, theirs, counts, run_id)
    counts.add("changed" if changed else "unchanged")
    index_keys(session, record, engine.config.sync.natural_key)
    enqueue_pushes(engine, session, record, reason=f"changed in {system}")


def _effective_base(link: Link, ours: dict[str, Any], name: str) -> Any:
    """The shadow value, except where the shadow is the vendor's lossy copy of ours."""
    base = link.shadow.get(name)
    sent = link.sent.get(name)
    if sent is not None and sent == [ours.get(name), base]:
        return ours.get(name)
    return base


def _merge_into(
    engine: Engine,
    session: Session,
    system: str,
    rec: VendorRecord,
    link: Link,
    record: Record,
    theirs: dict[str, Any],
    counts: Counts,
    run_id: str | None,
) -> bool:
    """Three-way merge of every incoming field; returns whether the canonical record changed."""
    ours = dict(record.fields)
    provenance = dict(record.provenance)
    held = list(record.held)
    stamp = aware_utc(rec.modified)
    changed = False
    for name, value in theirs.items():
        origin = provenance.get(name) or {}
        ours_side = Side(ours.get(name), origin.get("system"), _parse(origin.get("at")))
        decision = merge_field(
            name,
            _effective_base(link, ours, name),
            ours_side,
            Side(value, system, stamp),
            engine.policy_for(name),
            held=name in held,
        )
        if decision.conflict:
            _record_conflict(session, record, link, decision, ours_side, value, system)
            counts.add("conflicts")
            if decision.outcome == "held" and name not in held:
                held.append(name)
        if decision.outcome == "take_theirs":
            note(
                session,
                record.id,
                "field_changed",
                decision.reason,
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
            note(
                session,
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
    link.synced_at = utcnow()
    session.add(link)
    if changed or held != record.held:
        record.fields, record.provenance, record.held = ours, provenance, held
        record.updated_at = utcnow()
        session.add(record)
    return changed


def _record_conflict(
    session: Session,
    record: Record,
    link: Link,
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
