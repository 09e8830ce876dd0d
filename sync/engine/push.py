"""Push: drain one system's outbox (DESIGN §2.4–2.6).

Each row is claimed (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any number of workers can
drain one outbox without double sends), then:

- update: diff the canonical projection against the shadow and send only the changed fields;
  the shadow is then set from the vendor's answer for the fields sent;
- create: journal the intent *before* sending; if an earlier attempt's outcome is unknown, look
  the deal up in the target first and adopt it — no retry ever duplicates a deal;
- delete: delete in the target (a 404 is success: it is gone).

Failures: a 4xx goes to dead letters with the vendor's message (the run goes on); a 404 on
update is a delete in the target (its policy applies); transient errors and 429s wait with
exponential backoff (or the vendor's signal); an unresolvable reference parks the row.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import sqlalchemy as sa
import structlog
from sqlmodel import Session, col, select

from sync.connectors.base import VendorRecord
from sync.connectors.errors import (
    AuthFailed,
    ConnectorError,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Retryable,
)
from sync.engine.deletes import vendor_deleted
from sync.engine.identity import index_keys
from sync.engine.journal import dead_letter, note
from sync.engine.outbound import desired, push_diff
from sync.engine.state import Counts, Engine, aware_utc, to_utc
from sync.mapping.errors import MappingError, UnresolvedReference
from sync.store.models import Cursor, Link, Outbox, Record, utcnow

log = structlog.get_logger("crmsync.push")
CLAIM_SECONDS = 300
MAX_BACKOFF = 3600.0
#: how far before a create intent we look for the deal it may have made (vendor clock skew)
RECOVERY_SLACK = dt.timedelta(minutes=10)


def initial_capture_done(engine: Engine) -> bool:
    """Creates wait until every system has been read once, so a deal that exists in a system
    not yet read is matched (e.g. by Salesforce id) instead of duplicated."""
    with engine.session() as session:
        polled = session.exec(select(Cursor).where(col(Cursor.last_poll_at).is_not(None))).all()
    return {c.system for c in polled} >= set(engine.systems)


def claim(engine: Engine, system: str, limit: int, *, creates: bool = True) -> list[int]:
    """Claim due rows of one system's outbox; returns their ids."""
    now = utcnow()
    with engine.session() as session:
        query = (
            select(Outbox.id)
            .where(
                Outbox.system == system,
                sa.or_(
                    sa.and_(
                        col(Outbox.status).in_(("pending", "retry", "parked")),
                        col(Outbox.next_attempt_at) <= now,
                    ),
                    sa.and_(col(Outbox.status) == "in_flight", col(Outbox.claimed_until) < now),
                ),
            )
            .order_by(col(Outbox.next_attempt_at), col(Outbox.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if not creates:
            query = query.where(Outbox.op != "create")
        ids = [row_id for row_id in session.exec(query).all() if row_id is not None]
        if ids:
            session.execute(
                sa.update(Outbox)
                .where(col(Outbox.id).in_(ids))
                .values(
                    status="in_flight",
                    claimed_by=engine.worker_id,
                    claimed_until=now + dt.timedelta(seconds=CLAIM_SECONDS),
                )
            )
        session.commit()
    return ids


def drain(
    engine: Engine,
    system: str,
    *,
    batch: int = 50,
    run_id: str | None = None,
    max_rows: int | None = None,
) -> Counts:
    """Push every due row of one system's outbox. Returns counts (pushed, created, …)."""
    counts = Counts()
    engine.refs.prime()
    creates = initial_capture_done(engine)
    done = 0
    while max_rows is None or done < max_rows:
        ids = claim(engine, system, batch, creates=creates)
        if not ids:
            break
        for row_id in ids:
            push_one(engine, row_id, counts, run_id)
        done += len(ids)
    return counts


def push_one(engine: Engine, row_id: int, counts: Counts, run_id: str | None = None) -> None:
    """Send one outbox row and record the outcome; never raises for vendor errors."""
    with engine.session() as session:
        row = session.get(Outbox, row_id)
        if row is None or row.status != "in_flight" or row.claimed_by != engine.worker_id:
            return
        record = session.get(Record, row.record_id)
        link = session.exec(
            select(Link).where(Link.record_id == row.record_id, Link.system == row.system)
        ).first()
        try:
            outcome = _send(engine, session, row, record, link, run_id)
        except UnresolvedReference as exc:
            _park(row, f"unresolved reference: {exc}")
            outcome = "parked"
        except MappingError as exc:
            _dead(session, row, str(exc), None)
            outcome = "dead_letters"
        except Rejected as exc:
            _dead(session, row, _vendor_words(exc), getattr(exc, "payload", None))
            outcome = "dead_letters"
        except NotFound as exc:
            outcome = _not_found(engine, session, row, link, exc, run_id)
        except (RateLimited, OutcomeUnknown, Retryable, AuthFailed) as exc:
            _retry(engine, row, exc)
            outcome = "retries"
        except ConnectorError as exc:  # anything else a connector says: keep, retry later
            _retry(engine, row, exc)
            outcome = "retries"
        row.claimed_by, row.claimed_until = None, None
        row.updated_at = utcnow()
        session.add(row)
        session.add_all(engine.refs.take_pending())
        try:
            session.commit()
        except sa.exc.IntegrityError as exc:  # lost a race with a concurrent capture
            session.rollback()
            _release_for_retry(engine, row_id, f"concurrent change: {exc.orig}")
            outcome = "retries"
    counts.add(outcome)


def _release_for_retry(engine: Engine, row_id: int, reason: str) -> None:
    """Put a row back for a soon retry after its transaction lost a race (the retry re-reads
    the links and finds, e.g., that a capture already linked the deal it created)."""
    with engine.session() as session:
        row = session.get(Outbox, row_id)
        if row is None:
            return
        row.status, row.claimed_by, row.claimed_until = "retry", None, None
        row.last_error = reason[:1000]
        row.next_attempt_at = utcnow()
        session.add(row)
        session.commit()


def _vendor_words(exc: Rejected) -> str:
    fields = "; ".join(f"{k}: {v}" for k, v in exc.field_errors.items())
    return f"{exc}" + (f" — {fields}" if fields else "")


def _send(
    engine: Engine,
    session: Session,
    row: Outbox,
    record: Record | None,
    link: Link | None,
    run_id: str | None,
) -> str:
    if record is None:
        row.status = "done"
        return "skipped"
    if row.op == "delete":
        return _delete(engine, session, row, link, run_id)
    if record.deleted_at is not None or (link is not None and link.deleted_at is not None):
        row.status = "done"
        return "skipped"
    if link is None:
        return _create(engine, session, row, record, run_id)
    return _update(engine, session, row, record, link, run_id)


def _update(
    engine: Engine, session: Session, row: Outbox, record: Record, link: Link, run_id: str | None
) -> str:
    diff = push_diff(engine, row.system, record, link)
    if not diff:
        row.status = "done"
        return "unchanged"
    payload = engine.mapper.to_vendor(row.system, diff, engine.refs, for_create=False)
    if engine.dry_run:
        raise RuntimeError("dry run must not write")  # plan never drains; belt and braces
    try:
        answer = engine.connector(row.system).update(link.external_id, payload)
    except Rejected as exc:
        exc.payload = payload  # type: ignore[attr-defined]
        raise
    _apply_answer(engine, link, answer, diff)
    note(
        session,
        record.id,
        "pushed",
        f"{row.reason}: sent {', '.join(sorted(diff))}",
        system=row.system,
        new=diff,
        run_id=run_id,
    )
    row.status = "done"
    session.add(link)
    return "pushed"


def _apply_answer(engine: Engine, link: Link, answer: VendorRecord, sent: dict[str, Any]) -> None:
    """Shadow := the vendor's answer for the fields we sent. If the answer shows other fields
    changed too (a concurrent edit there), keep the old stamp so the next capture merges it."""
    after = engine.mapper.to_canonical(link.system, answer.data, engine.refs)
    shadow = dict(link.shadow)
    untouched_moved = any(after.get(name) != shadow.get(name) for name in after if name not in sent)
    for name in sent:
        shadow[name] = after.get(name)
    link.sent = {**link.sent, **{name: [value, after.get(name)] for name, value in sent.items()}}
    link.shadow = shadow
    if not untouched_moved:
        link.vendor_modified = to_utc(answer.modified)
    link.synced_at = utcnow()


def _create(
    engine: Engine, session: Session, row: Outbox, record: Record, run_id: str | None
) -> str:
    connector = engine.connector(row.system)
    wanted = desired(engine, row.system, record)
    fields = {k: v for k, v in wanted.items() if v is not None}
    answer = _recover(engine, session, row, record) if row.intent_at is not None else None
    if answer is None:
        payload = engine.mapper.to_vendor(
            row.system, fields, engine.refs, for_create=True, record_id=record.id
        )
        row.intent_at = utcnow()  # the intent is durable before the request leaves
        row.attempts += 1
        session.add(row)
        note(
            session,
            record.id,
            "create_intent",
            f"creating in {row.system}: {row.reason}",
            system=row.system,
            new=fields,
            run_id=run_id,
        )
        session.commit()
        try:
            answer = connector.create(payload, idempotency_key=row.idempotency_key)
        except Rejected as exc:
            exc.payload = payload  # type: ignore[attr-defined]
            raise
        action = "created"
    else:
        action = "adopted"
    theirs = engine.mapper.to_canonical(row.system, answer.data, engine.refs)
    existing = session.exec(
        select(Link).where(Link.record_id == record.id, Link.system == row.system)
    ).first()
    if existing is not None:  # a concurrent capture saw our new deal (our record id) first
        row.status = "done"
        return "adopted"
    _adopt_identity(engine, session, record, row.system, theirs, run_id)
    link = Link(
        record_id=record.id,
        system=row.system,
        external_id=answer.external_id,
        shadow=theirs,
        vendor_modified=to_utc(answer.modified),
        # Every outbound field, the empty ones too: what the target put where we sent nothing
        # (a default owner, a required close date) is its lossy copy of "nothing", so the next
        # push neither blanks it there nor spreads it to the other systems.
        sent={name: [value, theirs.get(name)] for name, value in wanted.items()},
    )
    session.add(link)
    index_keys(session, record, engine.config.sync.natural_key)
    note(
        session,
        record.id,
        action,
        f"{action} in {row.system} as {answer.external_id}",
        system=row.system,
        run_id=run_id,
    )
    row.status = "done"
    return action


def _adopt_identity(
    engine: Engine,
    session: Session,
    record: Record,
    system: str,
    theirs: dict[str, Any],
    run_id: str | None,
) -> None:
    """The ids the target gave the new deal (e.g. its Salesforce id) join the deal's
    ``external_ids``: they identify it, so identity resolution and ``salesforceId`` matching
    can use them. Other values the target invented stay its own (see ``Link.sent``)."""
    ids = theirs.get("external_ids") or {}
    known = record.fields.get("external_ids") or {}
    new = {key: value for key, value in ids.items() if value and key not in known}
    if not new:
        return
    record.fields = {**record.fields, "external_ids": {**known, **new}}
    record.updated_at = utcnow()
    session.add(record)
    note(
        session,
        record.id,
        "field_changed",
        f"ids given by {system} on create",
        system=system,
        field="external_ids",
        new=new,
        run_id=run_id,
    )


def _recover(engine: Engine, session: Session, row: Outbox, record: Record) -> VendorRecord | None:
    """An earlier create's outcome is unknown: find the deal it may have made and adopt it."""
    name = record.fields.get("name")
    if not name or row.intent_at is None:
        return None
    since = aware_utc(row.intent_at - RECOVERY_SLACK)
    assert since is not None
    candidates = engine.connector(row.system).find_candidates(str(name), since)
    taken = {
        link.external_id
        for link in session.exec(select(Link).where(Link.system == row.system)).all()
        if candidates and link.external_id in {c.external_id for c in candidates}
    }
    # a candidate carrying another deal's record id is that deal; ours wins outright
    free = [
        c
        for c in candidates
        if c.external_id not in taken
        and engine.mapper.record_id_of(row.system, c.data) in (None, record.id)
    ]
    own = [c for c in free if engine.mapper.record_id_of(row.system, c.data) == record.id]
    free = own or free
    if not free:
        return None
    found = min(free, key=lambda c: c.modified)
    return engine.connector(row.system).get(found.external_id) if found.partial else found


def _delete(
    engine: Engine, session: Session, row: Outbox, link: Link | None, run_id: str | None
) -> str:
    row.status = "done"
    if link is None or link.deleted_at is not None:
        return "skipped"
    with contextlib.suppress(NotFound):  # already gone: that is what we wanted
        engine.connector(row.system).delete(link.external_id)
    link.deleted_at = utcnow()
    session.add(link)
    note(
        session,
        link.record_id,
        "deleted_remote",
        f"deleted in {row.system}: {row.reason}",
        system=row.system,
        run_id=run_id,
    )
    return "deleted"


def _not_found(
    engine: Engine,
    session: Session,
    row: Outbox,
    link: Link | None,
    exc: NotFound,
    run_id: str | None,
) -> str:
    row.status = "done"
    if link is None:
        _dead(session, row, str(exc), None)
        return "dead_letters"
    vendor_deleted(engine, session, row.system, link, "404 on push", run_id)
    return "deleted"


def _park(row: Outbox, reason: str) -> None:
    row.status = "parked"
    row.last_error = reason[:1000]
    row.next_attempt_at = utcnow() + dt.timedelta(seconds=60)


def _retry(engine: Engine, row: Outbox, exc: ConnectorError) -> None:
    row.attempts += 1
    wait = min(MAX_BACKOFF, engine.backoff_base * 2.0 ** min(row.attempts - 1, 12))
    if isinstance(exc, RateLimited) and exc.retry_after:
        wait = max(exc.retry_after, 0.5)
    row.status = "retry"
    row.last_error = str(exc)[:1000]
    row.next_attempt_at = utcnow() + dt.timedelta(seconds=wait)


def _dead(session: Session, row: Outbox, error: str, payload: Any) -> None:
    row.status = "dead"
    row.last_error = error[:1000]
    dead_letter(
        session,
        system=row.system,
        direction="outbound",
        op=row.op,
        error=error,
        payload=payload,
        record_id=row.record_id,
    )
    note(
        session,
        row.record_id,
        "dead_letter",
        f"{row.op} in {row.system} refused: {error}",
        system=row.system,
    )
