"""Migration 0006 (first_run): a store synced before guided first runs keeps syncing."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from sync.store.db import make_engine, upgrade
from sync.store.models import FirstRun, Record
from sync.timefmt import utcnow


def test_a_store_synced_before_this_release_is_approved_by_its_migration(tmp_path: Path) -> None:
    """Upgrading a store that already holds records never stops its creates."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0003")
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.insert(Record.__table__),  # type: ignore[attr-defined]
            [
                {
                    "id": "rec_1",
                    "fields": {},
                    "provenance": {},
                    "held": [],
                    "created_at": utcnow(),
                    "updated_at": utcnow(),
                }
            ],
        )
    upgrade(url)
    with engine.connect() as connection:
        state = connection.execute(sa.select(FirstRun.__table__.c.state)).scalar_one()  # type: ignore[attr-defined]
    assert state == "approved"
    fresh = f"sqlite:///{tmp_path / 'new.db'}"
    upgrade(fresh)
    with make_engine(fresh).connect() as connection:
        assert connection.execute(sa.select(FirstRun.__table__.c.key)).first() is None  # type: ignore[attr-defined]
