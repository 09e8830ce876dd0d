"""One-statement inserts and updates on SQLite (``sync.store.bulk``) store exactly what Core's
``executemany`` stores: the same text for JSON (``None`` included), datetimes and defaults."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from sync.store import bulk
from sync.store.db import make_engine, upgrade
from sync.store.models import Journal, Outbox, Record

JOURNAL = Journal.__table__  # type: ignore[attr-defined]
OUTBOX = Outbox.__table__  # type: ignore[attr-defined]
RECORDS = Record.__table__  # type: ignore[attr-defined]
AT = dt.datetime(2026, 12, 7, 12, 30, 1, 123456, tzinfo=dt.UTC)


@pytest.fixture
def store(tmp_path: Path) -> sa.Engine:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    return make_engine(url)


def stored(engine: sa.Engine, table: sa.Table, ids: range) -> list[tuple[Any, ...]]:
    """The raw stored values of the rows ``ids``, every column but the id (and the ``at`` a
    default stamps)."""
    columns = [c.name for c in table.c if c.name not in ("id", "at", "linked_at")]
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            f"SELECT {', '.join(columns)} FROM {table.name} WHERE id BETWEEN ? AND ? ORDER BY id",
            (ids.start, ids.stop - 1),
        ).all()
    return [tuple(row) for row in rows]


def journal_rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "record_id": f"rec_{i}",
            "action": "created",
            "system": "close" if i % 2 else None,
            "run_id": None,
            "field": None,
            "old": None,
            "new": {"amount": i, "name": "Deal é", "when": None} if i % 3 else None,
        }
        for i in range(n)
    ]


def test_inserted_rows_are_stored_as_executemany_stores_them(store: sa.Engine) -> None:
    """Journal rows (JSON values and None, a default ``reason`` and ``at`` left out) inserted
    in one statement read back exactly as the same rows inserted by ``executemany``."""
    rows = journal_rows(7)
    with Session(store) as session:
        session.execute(sa.insert(JOURNAL), rows)
        bulk.insert_rows(session, JOURNAL, rows)
        session.commit()
    assert stored(store, JOURNAL, range(1, 8)) == stored(store, JOURNAL, range(8, 15))


def test_a_batch_beyond_the_parameter_limit_is_split(
    store: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More rows than one statement may bind go in several statements, every row stored."""
    monkeypatch.setattr(bulk, "MAX_PARAMS", 20)
    with Session(store) as session:
        bulk.insert_rows(session, JOURNAL, journal_rows(9))
        session.commit()
    assert len(stored(store, JOURNAL, range(1, 100))) == 9


def test_columns_of_one_value_are_stored_as_executemany_stores_them(
    store: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Columns holding one value in every row (bound once per statement) store what
    ``executemany`` stores — also where equal values differ in type (``1`` and ``True``),
    where equal documents fill a JSON column, where every column is the same, and where the
    batch spans several statements; and a row stays where it was in the batch."""
    monkeypatch.setattr(bulk, "MAX_PARAMS", 20)
    alike = {"action": "created", "system": "close", "field": None, "at": AT}
    batches = [
        [
            {**alike, "record_id": f"rec_{i}", "old": 1 if i % 2 else True, "new": {}}
            for i in range(9)
        ],
        [{**alike, "record_id": "rec_same", "old": 1.5, "new": None} for _ in range(3)],
        [{**alike, "record_id": "rec_one", "old": [1], "new": {"a": 1}}],
    ]
    first = 1
    for rows in batches:
        with Session(store) as session:
            session.execute(sa.insert(JOURNAL), rows)
            bulk.insert_rows(session, JOURNAL, rows)
            session.commit()
        n = len(rows)
        core = stored(store, JOURNAL, range(first, first + n))
        assert core == stored(store, JOURNAL, range(first + n, first + 2 * n))
        assert [row[0] for row in core] == [row["record_id"] for row in rows]
        first += 2 * n


def outbox_row(i: int) -> dict[str, Any]:
    return {
        "record_id": f"rec_{i}",
        "system": "close",
        "op": "create",
        "idempotency_key": f"rec_{i}:close",
        "status": "in_flight",
        "claimed_by": "me" if i % 2 else "someone else",
        "next_attempt_at": AT,
        "created_at": AT,
        "updated_at": AT,
    }


def test_updated_rows_match_executemany_and_respect_the_guard(store: sa.Engine) -> None:
    """Setting columns (a JSON value, None, a datetime) row by row in one statement leaves the
    same stored values as an ``executemany`` of the same update, and rows that fail the guard
    (``claimed_by``) untouched."""
    with Session(store) as session:
        records = [{"id": f"rec_{i}", "fields": {}, "provenance": {}, "held": {}} for i in range(8)]
        bulk.insert_rows(session, RECORDS, records)  # defaults: created_at, updated_at
        bulk.insert_rows(session, OUTBOX, [outbox_row(i) for i in range(8)])
        session.commit()
    changes = [
        {"id": i + 1, "intent": {"n": i} if i % 3 else None, "claimed_until": AT, "status": "done"}
        for i in range(8)
    ]
    with Session(store) as session:
        core = (
            sa.update(OUTBOX)
            .where(OUTBOX.c.id == sa.bindparam("v_id"), OUTBOX.c.claimed_by == "me")
            .values({k: sa.bindparam(f"v_{k}") for k in ("intent", "claimed_until", "status")})
        )
        session.execute(core, [{f"v_{k}": v for k, v in row.items()} for row in changes[:4]])
        shifted = [
            {**row, "id": row["id"] + 4, "intent": changes[i]["intent"]}
            for i, row in enumerate(changes[:4])
        ]
        bulk.update_rows(session, OUTBOX, shifted, where={"claimed_by": "me"})
        session.commit()
    first, second = stored(store, OUTBOX, range(1, 5)), stored(store, OUTBOX, range(5, 9))
    strip = [tuple(v for v in row if not str(v).startswith("rec_")) for row in first]
    assert strip == [tuple(v for v in row if not str(v).startswith("rec_")) for row in second]
    statuses = [row[OUTBOX.c.keys().index("status") - 1] for row in second]
    assert statuses == ["in_flight", "done", "in_flight", "done"]  # the guard held


def test_both_dialects_insert_defaults_and_guard_updates(db_url: str) -> None:
    """On SQLite and PostgreSQL alike: inserted rows get the columns' defaults, and an update
    sets each row's own values, only on rows that hold the guard's values."""
    upgrade(db_url)
    engine = make_engine(db_url)
    with Session(engine) as session:
        records = [{"id": f"rec_{i}", "fields": {}, "provenance": {}, "held": {}} for i in range(4)]
        bulk.insert_rows(session, RECORDS, records)
        bulk.insert_rows(session, OUTBOX, [outbox_row(i) for i in range(4)])
        session.commit()
    with Session(engine) as session:
        ids = [row_id for (row_id,) in session.execute(sa.select(OUTBOX.c.id).order_by("id"))]
        rows = [
            {"id": row_id, "intent": {"n": n}, "intent_at": None} for n, row_id in enumerate(ids)
        ]
        bulk.update_rows(session, OUTBOX, rows, where={"claimed_by": "me"})
        session.commit()
        stored = session.execute(
            sa.select(OUTBOX.c.intent, OUTBOX.c.attempts, OUTBOX.c.reason).order_by("id")
        ).all()
    assert [row.intent for row in stored] == [None, {"n": 1}, None, {"n": 3}]
    assert {(row.attempts, row.reason) for row in stored} == {(0, "")}  # the defaults
    engine.dispose()
