"""The ``outbox`` as drains claim and settle it: due rows locked and claimed, claims renewed
and released, the columns a drain reads of its rows, and what each outcome writes back — one
statement per batch, no ORM object per row.

Every function takes the caller's session and leaves the transaction to it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from sync.store import bulk
from sync.store.models import Outbox
from sync.store.outbox import UNSENT_STATES


def in_flight_holders(session: Session) -> Sequence[str | None]:
    """The distinct holders of rows ``in_flight``."""
    return session.exec(
        select(Outbox.claimed_by)
        .where(col(Outbox.status) == "in_flight", col(Outbox.claimed_by).is_not(None))
        .distinct()
    ).all()


def release_holders(session: Session, holders: Collection[str], now: dt.datetime) -> int:
    """Put the ``in_flight`` rows of ``holders`` back to ``retry``, due at ``now``, unclaimed;
    returns how many."""
    released = session.execute(
        sa.update(Outbox)
        .where(col(Outbox.status) == "in_flight", col(Outbox.claimed_by).in_(holders))
        .values(status="retry", claimed_by=None, claimed_until=None, next_attempt_at=now)
    )
    return int(getattr(released, "rowcount", 0) or 0)


def _still_held(ids: Collection[int], holder: str) -> tuple[Any, ...]:
    """The rows ``ids`` that are still ``in_flight`` under ``holder``'s claim (a claim that ran
    out may have been released and retaken: those rows are someone else's now)."""
    return (
        col(Outbox.id).in_(ids),
        col(Outbox.status) == "in_flight",
        col(Outbox.claimed_by) == holder,
    )


def renew_claims(session: Session, ids: Collection[int], holder: str, until: dt.datetime) -> int:
    """Move the claim expiry of the rows ``ids`` still ``in_flight`` for ``holder`` to
    ``until``; returns how many. On PostgreSQL a row locked right now is skipped, not waited
    for: its holder is settling it (the drain's apply, on another connection of this very
    process) — a renewal stuck behind that apply let the other claims run out under load and
    other workers took them and sent them again. The next beat renews what was skipped."""
    free = _lock_in_order(session, ids, skip_locked=True)
    result = session.execute(
        sa.update(Outbox).where(*_still_held(free, holder)).values(claimed_until=until)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _lock_in_order(
    session: Session, ids: Collection[int], *, skip_locked: bool = False
) -> Collection[int]:
    """Take the row locks of ``ids`` in ascending id order before updating them (PostgreSQL;
    a no-op on SQLite, which locks the whole file). Two transactions that update overlapping
    rows — the claim renewer and a drain settling outcomes — then wait for each other instead
    of deadlocking: an UPDATE alone locks in whatever order it meets the rows. Returns the
    ids locked (``skip_locked``: those no other transaction holds; all ids on SQLite)."""
    if not ids or session.get_bind().dialect.name != "postgresql":
        return ids
    locked = session.execute(
        sa.select(col(Outbox.id))
        .where(col(Outbox.id).in_(ids))
        .order_by(col(Outbox.id))
        .with_for_update(skip_locked=skip_locked)
    )
    return [row_id for (row_id,) in locked]


def lock_in_order(session: Session, ids: Collection[int]) -> None:
    """Take the row locks of ``ids`` now, in ascending id order (PostgreSQL; see
    :func:`_lock_in_order`), for a transaction that then updates them in another order."""
    _lock_in_order(session, ids)


def stranded_systems(session: Session, systems: Collection[str], now: dt.datetime) -> list[str]:
    """Among ``systems``, those with ``in_flight`` rows whose claim ran out before ``now``."""
    found = session.exec(
        select(Outbox.system)
        .where(
            col(Outbox.system).in_(systems),
            col(Outbox.status) == "in_flight",
            col(Outbox.claimed_until) < now,
        )
        .distinct()
    ).all()
    return sorted(str(system) for system in found)


def _claimable(now: dt.datetime) -> Any:
    """Rows a drain may claim at ``now``: unsent and due, or in flight under a claim that ran
    out (its holder died). The claim itself and ``due_systems`` ask the same question."""
    return sa.or_(
        sa.and_(col(Outbox.status).in_(UNSENT_STATES), col(Outbox.next_attempt_at) <= now),
        sa.and_(col(Outbox.status) == "in_flight", col(Outbox.claimed_until) < now),
    )


def lock_due(
    session: Session, system: str, now: dt.datetime, limit: int, *, creates: bool = True
) -> list[int]:
    """Lock (``FOR UPDATE SKIP LOCKED``) and return the ids of up to ``limit`` rows of
    ``system`` due at ``now`` — unsent and due, or in flight with a lapsed claim — in queue
    order; creates left out unless ``creates``."""
    if session.get_bind().dialect.name == "sqlite":
        return _due_on_sqlite(session, system, now, limit, creates=creates)
    query = (
        select(Outbox.id)
        .where(
            Outbox.system == system,
            _claimable(now),
        )
        .order_by(col(Outbox.next_attempt_at), col(Outbox.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if not creates:
        query = query.where(Outbox.op != "create")
    return [row_id for row_id in session.exec(query).all() if row_id is not None]


def _due_on_sqlite(
    session: Session, system: str, now: dt.datetime, limit: int, *, creates: bool
) -> list[int]:
    """``lock_due``'s rows on SQLite, read from ``ix_outbox_drain`` a status at a time.

    SQLite answers the one query with an ``OR`` of two conditions on ``status`` by reading
    every row of the system (done ones included) and sorting those due: each claim of a
    10,000-deal load read ~10,000 rows per system inside the write lock, O(N²) over a load.
    Each status's due rows come in queue order straight from the index (``system, status,
    next_attempt_at``, then rowid), so ``limit`` of each, merged, is the same answer for
    ``limit`` rows read per status. Text, built once: SQLAlchemy took ~10× the query's own
    time to compile and bind the four-part union. (SQLite has no row locks: the write
    transaction is the lock.)"""
    statement = _DUE_SQLITE[creates]
    params = {"system": system, "now": now, "limit": limit}
    return [int(row_id) for (row_id,) in session.execute(statement, params).all()]


def _due_on_sqlite_statement(*, creates: bool) -> sa.TextClause:
    only = "" if creates else " AND op != 'create'"
    parts = [
        "SELECT * FROM (SELECT id, next_attempt_at FROM outbox"
        f" WHERE system = :system AND status = '{status}' AND {due}{only}"
        " ORDER BY next_attempt_at, id LIMIT :limit)"
        for status, due in (
            *((status, "next_attempt_at <= :now") for status in UNSENT_STATES),
            ("in_flight", "claimed_until < :now"),
        )
    ]
    sql = f"SELECT id FROM ({' UNION ALL '.join(parts)}) ORDER BY next_attempt_at, id LIMIT :limit"
    stamp = Outbox.__table__.c.next_attempt_at.type  # type: ignore[attr-defined]
    return sa.text(sql).bindparams(sa.bindparam("now", type_=stamp))


_DUE_SQLITE = {creates: _due_on_sqlite_statement(creates=creates) for creates in (True, False)}


def claim_rows(session: Session, ids: Collection[int], holder: str, until: dt.datetime) -> None:
    """Mark the rows ``ids`` ``in_flight``, claimed by ``holder`` until ``until``."""
    session.execute(
        sa.update(Outbox)
        .where(col(Outbox.id).in_(ids))
        .values(status="in_flight", claimed_by=holder, claimed_until=until)
    )


def locks_rows(db: sa.Engine) -> bool:
    """Whether the store ``db`` locks single rows (PostgreSQL: a claim locks its rows ``SKIP
    LOCKED`` inside its transaction); SQLite locks the whole file for every writer."""
    return db.dialect.name != "sqlite"


def claim_if_due(
    session: Session,
    ids: Sequence[int],
    holder: str,
    now: dt.datetime,
    until: dt.datetime,
    *,
    creates: bool = True,
) -> list[int]:
    """Claim, among the rows ``ids`` (found due at ``now`` on a snapshot), those still due —
    another process may have claimed some since — for ``holder`` until ``until``; returns
    them, in the order given. Counted, not returned row by row (see ``unchanged``): only when
    some row was taken meanwhile are the ones claimed read back."""
    if not ids:
        return []
    due = [col(Outbox.id).in_(ids), _claimable(now)]
    if not creates:
        due.append(col(Outbox.op) != "create")
    result = session.execute(
        sa.update(Outbox)
        .where(*due)
        .values(status="in_flight", claimed_by=holder, claimed_until=until)
    )
    if int(getattr(result, "rowcount", -1)) == len(set(ids)):
        return list(ids)
    ours = (*_still_held(ids, holder), col(Outbox.claimed_until) == until)
    claimed = {int(i) for (i,) in session.execute(sa.select(col(Outbox.id)).where(*ours))}
    return [row_id for row_id in ids if row_id in claimed]


def prepare_view(session: Session, ids: Collection[int]) -> Sequence[Any]:
    """The columns a drain's prepare reads of the rows ``ids`` that exist, as rows with
    attribute access (``row.status``…): no ORM object per row (their identity-map upkeep cost
    more than the query)."""
    columns = (
        Outbox.id,
        Outbox.record_id,
        Outbox.system,
        Outbox.op,
        Outbox.reason,
        Outbox.status,
        Outbox.claimed_by,
        Outbox.updated_at,
        Outbox.idempotency_key,
        Outbox.intent_at,
        Outbox.intent,
    )
    query = sa.select(*(col(c) for c in columns)).where(col(Outbox.id).in_(ids))
    return session.execute(query).all()


def settle_view(session: Session, ids: Collection[int]) -> Sequence[tuple[Any, ...]]:
    """``(id, record_id, system, op, status, attempts, intent, intent_at, claimed_by,
    updated_at, created_at, waiting)`` of the rows ``ids`` that exist: what settling a push
    reads."""
    columns = (
        Outbox.id,
        Outbox.record_id,
        Outbox.system,
        Outbox.op,
        Outbox.status,
        Outbox.attempts,
        Outbox.intent,
        Outbox.intent_at,
        Outbox.claimed_by,
        Outbox.updated_at,
        Outbox.created_at,
        Outbox.waiting,
    )
    query = sa.select(*(col(c) for c in columns)).where(col(Outbox.id).in_(ids))
    return [tuple(row) for row in session.execute(query).all()]


#: what an apply decided on a snapshot re-checks of each row before writing its outcomes
VERSION_COLUMNS = ("status", "claimed_by", "updated_at", "attempts", "intent_at")


def unchanged(session: Session, expected: Mapping[int, Sequence[Any]]) -> bool:
    """Whether every row ``id -> values of VERSION_COLUMNS`` still holds those values.

    On PostgreSQL the rows are locked, in id order, until the transaction ends (nothing moves
    them between this check and the writes; the order keeps the claims' renewer from
    deadlocking with it, as ``lock_in_order``). On SQLite one row comes back, a count, from
    a statement built as text: each row a query returns hands the GIL over once, and inside
    the write lock every hand-over waits behind the send threads; SQLAlchemy took ~10 ms to
    compile a VALUES of a group's rows, each time anew."""
    if not expected:
        return True
    if session.get_bind().dialect.name != "sqlite":
        query = (
            sa.select(*(col(getattr(Outbox, name)) for name in ("id", *VERSION_COLUMNS)))
            .where(col(Outbox.id).in_(list(expected)))
            .order_by(col(Outbox.id))
            .with_for_update()
        )
        found = {int(row[0]): tuple(row[1:]) for row in session.execute(query).all()}
        return found == {row_id: tuple(values) for row_id, values in expected.items()}
    table = Outbox.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect
    process = [table.c[name].type._cached_bind_processor(dialect) for name in VERSION_COLUMNS]
    same = " AND ".join(f"outbox.{name} IS held.{name}" for name in VERSION_COLUMNS)
    names = ", ".join(("id", *VERSION_COLUMNS))
    one = "(" + ", ".join("?" * (1 + len(VERSION_COLUMNS))) + ")"
    rows = list(expected.items())
    per_statement = bulk.MAX_PARAMS // (1 + len(VERSION_COLUMNS))
    counted = 0
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        params: list[Any] = []
        for row_id, values in chunk:
            params.append(row_id)
            params += [p(v) if p is not None else v for p, v in zip(process, values, strict=True)]
        sql = (
            f"WITH held ({names}) AS (VALUES {', '.join([one] * len(chunk))})"
            f" SELECT count(*) FROM held JOIN outbox ON outbox.id = held.id AND {same}"
        )
        counted += int(session.connection().exec_driver_sql(sql, tuple(params)).scalar_one())
    return counted == len(expected)


def write_changes(session: Session, changes: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
    """Set the given columns of each row ``(id, {column: value})``: one statement per set of
    columns (rows settled alike share it)."""
    table = Outbox.__table__  # type: ignore[attr-defined]
    _lock_in_order(session, [row_id for row_id, _ in changes])
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row_id, values in sorted(changes, key=lambda change: change[0]):
        columns = tuple(sorted(values))
        by_columns.setdefault(columns, []).append({"id": row_id, **{c: values[c] for c in columns}})
    for rows in by_columns.values():
        bulk.update_rows(session, table, rows)


def record_doubts(
    session: Session, holder: str, sent: Sequence[tuple[int, Mapping[str, Any]]]
) -> None:
    """Store what each update row ``(id, values)`` sends as its ``intent`` and clear its
    ``intent_at``, one statement for the batch; rows no longer ``in_flight`` for ``holder``
    are left alone."""
    table = Outbox.__table__  # type: ignore[attr-defined]
    bulk.update_rows(
        session,
        table,
        # intent_at cleared: a create row whose deal got linked meanwhile now sends an
        # update, and its create intent is moot (``open_intents`` skips linked ones)
        [{"id": row_id, "intent": values, "intent_at": None} for row_id, values in sent],
        where={"status": "in_flight", "claimed_by": holder},
    )


def mark_intents(session: Session, ids: Collection[int], holder: str, now: dt.datetime) -> set[int]:
    """Set ``intent_at`` to ``now`` and count an attempt on the rows ``ids`` still
    ``in_flight`` for ``holder``; returns those rows' ids. Counted, not returned row by row
    (on SQLite each row returned hands the GIL over once inside the write lock): only when
    some row is no longer ours are the ones marked read back."""
    result = session.execute(
        sa.update(Outbox)
        .where(*_still_held(ids, holder))
        .values(intent_at=now, attempts=col(Outbox.attempts) + 1)
    )
    if int(getattr(result, "rowcount", -1)) == len(set(ids)):
        return set(ids)
    ours = (*_still_held(ids, holder), col(Outbox.intent_at) == now)
    return {int(row_id) for (row_id,) in session.execute(sa.select(col(Outbox.id)).where(*ours))}


def set_intents(session: Session, sent: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
    """Store what each create row ``(id, values)`` sends as its ``intent``, one statement for
    the batch."""
    table = Outbox.__table__  # type: ignore[attr-defined]
    bulk.update_rows(session, table, [{"id": row_id, "intent": values} for row_id, values in sent])


def release_claimed(session: Session, ids: Collection[int], holder: str, now: dt.datetime) -> None:
    """Put the rows ``ids`` claimed by ``holder`` back to ``retry``, due at ``now``,
    unclaimed."""
    session.execute(
        sa.update(Outbox)
        .where(col(Outbox.id).in_(ids), col(Outbox.claimed_by) == holder)
        .values(status="retry", claimed_by=None, claimed_until=None, next_attempt_at=now)
    )


def forget_intents(session: Session, ids: Collection[int], holder: str) -> None:
    """Clear the create intents of rows ``ids`` still claimed by ``holder`` (their request
    never left: there is nothing to look up), and the attempt their intent counted — a row
    given back at every slice's end would otherwise back off ever longer on its first real
    failure."""
    session.execute(
        sa.update(Outbox)
        .where(
            col(Outbox.id).in_(ids),
            col(Outbox.claimed_by) == holder,
            col(Outbox.intent_at).is_not(None),
        )
        .values(
            intent_at=None,
            intent=None,
            attempts=sa.case((col(Outbox.attempts) > 0, col(Outbox.attempts) - 1), else_=0),
        )
    )


def due_systems(session: Session, now: dt.datetime) -> list[str]:
    """The systems with rows a drain could claim at ``now`` (due, or in flight with a claim
    that ran out), sorted."""
    due = session.exec(select(Outbox.system).where(_claimable(now)).distinct()).all()
    return sorted(str(system) for system in due)
