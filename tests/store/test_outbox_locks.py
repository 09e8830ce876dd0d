"""Outbox row locks on the real PostgreSQL (issue 25): ``lock_in_order`` takes every given
row's lock at once, so a transaction that then updates them one by one (the row-by-row apply
after a unique conflict) acquires nothing later that the claims' renewer — which locks the
same process's rows in id order — could hold: the two wait for each other, never deadlock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel

from sync.store import outbox
from sync.store.db import make_engine
from sync.store.models import Outbox, Record


@pytest.fixture
def pg(pg_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(pg_url)
    SQLModel.metadata.create_all(engine)
    yield engine
    engine.dispose()


def _rows(engine: sa.Engine, count: int) -> list[int]:
    with Session(engine) as session:
        session.add_all(Record(id=f"r{n}") for n in range(count))
        session.flush()  # the rows' records first (a foreign key)
        rows = [Outbox(record_id=f"r{n}", system="close", op="create") for n in range(count)]
        session.add_all(rows)
        session.commit()
        return [int(row.id or 0) for row in rows]


def _locked_elsewhere(engine: sa.Engine, row_id: int) -> bool:
    with engine.connect() as connection:
        try:
            connection.execute(
                sa.text("SELECT id FROM outbox WHERE id = :id FOR UPDATE NOWAIT"), {"id": row_id}
            )
        except sa.exc.OperationalError:
            return True
        finally:
            connection.rollback()
        return False


def test_every_given_row_is_locked_until_the_transaction_ends(pg: sa.Engine) -> None:
    """Rows given in any order are all locked at once; the others stay free; the locks end
    with the transaction."""
    ids = _rows(pg, 4)
    with Session(pg) as session:
        outbox.lock_in_order(session, [ids[2], ids[0], ids[1]])
        assert all(_locked_elsewhere(pg, row_id) for row_id in ids[:3])
        assert not _locked_elsewhere(pg, ids[3])
        session.rollback()
    assert not any(_locked_elsewhere(pg, row_id) for row_id in ids)
