"""Rows that every worker may learn at once (a company link, a deal's identity key) are stored
by whichever worker comes first; the others' inserts leave them be instead of failing their
transaction (which made a drain's apply fall back to row by row). Both dialects."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Session, select

from sync.store import records, refs
from sync.store.db import make_engine, make_sessionmaker, upgrade
from sync.store.models import Record, RecordKey, RefMap

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def _ref(vendor_id: str) -> RefMap:
    return RefMap(system="close", kind="company", key="Acme", vendor_id=vendor_id, source="linked")


def test_a_reference_another_worker_stored_first_is_kept_and_nothing_fails(db_url: str) -> None:
    """Two workers learn the same company link; the second store keeps the first's row, adds
    the rows it alone learnt, and its transaction commits."""
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as first:
            refs.store_learnt(first, [_ref("c1")])
            first.commit()
        with make_sessionmaker(engine)() as second:
            mine = RefMap(system="close", kind="user", key="a@x.com", vendor_id="u1")
            refs.store_learnt(second, [_ref("c2"), mine])
            second.commit()
        with Session(engine) as session:
            stored = {(r.kind, r.key): r.vendor_id for r in session.exec(select(RefMap))}
        assert stored == {("company", "Acme"): "c1", ("user", "a@x.com"): "u1"}
    finally:
        engine.dispose()


def test_an_identity_key_stored_meanwhile_stays_with_its_record(db_url: str) -> None:
    """A key another worker gave its record first stays that record's; the other keys of the
    statement are stored."""
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as session:
            session.add_all([Record(id="r1", created_at=NOW), Record(id="r2", created_at=NOW)])
            session.commit()
            records.insert_keys(session, [{"record_id": "r1", "namespace": "sf", "value": "006A"}])
            session.commit()
            records.insert_keys(
                session,
                [
                    {"record_id": "r2", "namespace": "sf", "value": "006A"},
                    {"record_id": "r2", "namespace": "sf", "value": "006B"},
                ],
            )
            session.commit()
            keys = {k.value: k.record_id for k in session.exec(select(RecordKey))}
        assert keys == {"006A": "r1", "006B": "r2"}
    finally:
        engine.dispose()
