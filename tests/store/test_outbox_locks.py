"""Outbox row locks on the real PostgreSQL (issue 25): ``lock_in_order`` takes every given
row's lock at once, so a transaction that then updates them one by one (the row-by-row apply
after a unique conflict) acquires nothing later that the claims' renewer could hold; and the
renewer skips the rows being settled rather than wait for them — waiting, under load, let a
worker's other claims run out and other workers sent them again. A bridge check locks two
records and their open rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select

from sync.store import claims as stored_claims
from sync.store import outbox, records
from sync.store.db import make_engine
from sync.store.models import Link, Outbox, Record
from sync.timefmt import utcnow


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
        stored_claims.lock_in_order(session, [ids[2], ids[0], ids[1]])
        assert all(_locked_elsewhere(pg, row_id) for row_id in ids[:3])
        assert not _locked_elsewhere(pg, ids[3])
        session.rollback()
    assert not any(_locked_elsewhere(pg, row_id) for row_id in ids)


def test_a_renewal_skips_a_row_being_settled_instead_of_waiting(pg: sa.Engine) -> None:
    """While another transaction holds one of the rows (a drain's apply settling it), the
    renewal returns at once having renewed the others; the next renewal renews it too."""
    ids = _rows(pg, 3)
    holder, soon, later = "host:1:boot:1", utcnow(), utcnow() + dt.timedelta(seconds=20)
    with Session(pg) as session:
        stored_claims.claim_rows(session, ids, holder, soon)
        session.commit()
    with Session(pg) as settling, Session(pg) as renewing:
        stored_claims.lock_in_order(settling, [ids[1]])
        renewing.execute(sa.text("SET LOCAL lock_timeout = '2s'"))  # a wait would fail here
        assert stored_claims.renew_claims(renewing, ids, holder, later) == 2
        renewing.commit()
        settling.rollback()
    with Session(pg) as session:
        assert stored_claims.renew_claims(session, ids, holder, later) == 3
        session.commit()
        rows = session.exec(select(Outbox).where(col(Outbox.id).in_(ids))).all()
        until = {row.id: row.claimed_until for row in rows}
    assert all(
        value is not None and value >= later - dt.timedelta(seconds=1) for value in until.values()
    )


def test_a_bridge_check_keeps_drains_and_links_off_the_two_records(pg: sa.Engine) -> None:
    """While a capture checks whether two records may be folded (``capture.bridge``): a
    drain's claim passes their open rows by, and a link to one of them waits (the fold would
    delete the record under it); the third record's row is claimed as usual."""
    ids = _rows(pg, 3)
    with Session(pg) as checking:
        records.lock(checking, ["r1", "r0"])
        seen = outbox.open_states_locked(checking, ["r0", "r1"])
        assert sorted(row[0] for row in seen) == ["r0", "r1"]
        with Session(pg) as draining:
            due = stored_claims.lock_due(draining, "close", utcnow(), 10)
            assert due == [ids[2]]
            draining.rollback()
        with Session(pg) as linking:
            linking.execute(sa.text("SET LOCAL lock_timeout = '1s'"))
            linking.add(Link(record_id="r0", system="ruddr", external_id="d1"))
            with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
                linking.flush()
            linking.rollback()
        checking.rollback()
