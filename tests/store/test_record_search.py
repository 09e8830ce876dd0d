"""Finding deals by part of their name (the console's search), on SQLite and PostgreSQL."""

from __future__ import annotations

from sync.store import records
from sync.store.db import make_engine, make_sessionmaker, upgrade
from sync.store.models import Record
from sync.timefmt import utcnow


def test_a_name_search_ignores_case_and_wildcards_and_skips_deleted_deals(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as session:
        session.add(Record(id="rec_1", fields={"name": "Renewal 2026 - Platform"}))
        session.add(Record(id="rec_2", fields={"name": "renewal 100% off"}))
        session.add(Record(id="rec_3", fields={"name": "Renewal gone"}, deleted_at=utcnow()))
        session.add(Record(id="rec_4", fields={"amount": "1.00"}))  # no name at all
        session.commit()
        assert [r.id for r in records.named(session, "RENEWAL", 10)] == ["rec_1", "rec_2"]
        assert [r.id for r in records.named(session, "100%", 10)] == ["rec_2"]
        assert [r.id for r in records.named(session, "2_26", 10)] == []  # "_" is no wildcard
        assert [r.id for r in records.named(session, "renewal", 1)] == ["rec_1"]
    engine.dispose()
