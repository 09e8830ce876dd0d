"""Learnt references are stored first-come (issue 25): two drains of one system on two workers
learn the same company at once; the second's insert must not fail its whole apply (it made
every apply of the group fall back to row by row), on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel, select

from sync.store import refs
from sync.store.db import make_engine
from sync.store.models import RefMap


@pytest.fixture
def store(db_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(db_url)
    SQLModel.metadata.create_all(engine)
    yield engine
    engine.dispose()


def _learnt(key: str, vendor_id: str) -> RefMap:
    return RefMap(
        system="parsalink", kind="company", key=key, vendor_id=vendor_id, source="created"
    )


def test_a_key_stored_meanwhile_keeps_its_row_and_the_others_are_stored(
    store: sa.Engine,
) -> None:
    """Another process stored "Acme" first: ours is dropped, "Hooli" (new) is stored, the
    transaction goes on."""
    with Session(store) as other:
        refs.insert_learnt(other, [_learnt("Acme", "acc-1")])
        other.commit()
    with Session(store) as session:
        refs.insert_learnt(session, [_learnt("Acme", "acc-2"), _learnt("Hooli", "acc-3")])
        session.commit()
        stored = {row.key: row.vendor_id for row in session.exec(select(RefMap)).all()}
    assert stored == {"Acme": "acc-1", "Hooli": "acc-3"}


def test_nothing_learnt_writes_nothing(store: sa.Engine) -> None:
    """No rows: no statement (an empty insert would be an error)."""
    with Session(store) as session:
        refs.insert_learnt(session, [])
        session.commit()
        assert session.exec(select(RefMap)).all() == []
