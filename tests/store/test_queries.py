"""Store queries whose locking, ordering or selection matters beyond "it returns the row"."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any, cast

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.orm import ORMExecuteState
from sqlmodel import Session, SQLModel, select

from sync.store import claims as stored_claims
from sync.store import first_run, links, outbox, records
from sync.store.db import make_engine, make_sessionmaker
from sync.store.models import FirstRun, Journal, Link, Outbox, Record
from sync.timefmt import utcnow

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


@pytest.fixture
def session() -> Iterator[Session]:
    engine = make_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    with make_sessionmaker(engine)() as session:
        yield session
    engine.dispose()


def _records(session: Session, *ids: str, deleted: tuple[str, ...] = ()) -> None:
    for record_id in ids:
        session.add(Record(id=record_id, deleted_at=NOW if record_id in deleted else None))
    session.flush()


def _row(session: Session, record_id: str, **columns: Any) -> Outbox:
    row = Outbox(record_id=record_id, system=columns.pop("system", "close"), op="update")
    for name, value in columns.items():
        setattr(row, name, value)
    session.add(row)
    session.flush()
    return row


def _statements(session: Session) -> list[sa.Executable]:
    seen: list[sa.Executable] = []

    @sa.event.listens_for(session, "do_orm_execute")
    def _seen(state: ORMExecuteState) -> None:
        seen.append(state.statement)

    return seen


def test_the_first_run_row_is_locked_only_when_asked(session: Session) -> None:
    """``approve`` reads the row FOR UPDATE (two drains deciding at once serialise on it);
    the other readers take no lock."""
    session.add(FirstRun(key=first_run.KEY, state="review"))
    session.commit()
    session.expunge_all()
    seen = _statements(session)
    assert first_run.get(session, for_update=True) is not None
    session.expunge_all()
    assert first_run.get(session) is not None
    dialect = PGDialect()
    compiled = [
        str(cast(sa.ClauseElement, statement).compile(dialect=dialect)) for statement in seen
    ]
    assert len(compiled) == 2
    assert compiled[0].endswith("FOR UPDATE")
    assert "FOR UPDATE" not in compiled[1]


def test_renewing_claims_touches_only_the_holders_rows_in_flight(session: Session) -> None:
    _records(session, "r1", "r2", "r3", "r4")
    mine = _row(session, "r1", status="in_flight", claimed_by="me", claimed_until=NOW)
    settled = _row(session, "r2", status="done", claimed_by="me", claimed_until=NOW)
    theirs = _row(session, "r3", status="in_flight", claimed_by="other", claimed_until=NOW)
    _row(session, "r4", status="in_flight", claimed_by="me", claimed_until=NOW)  # not asked
    later = NOW + dt.timedelta(minutes=5)
    ids = [row.id for row in (mine, settled, theirs) if row.id is not None]
    assert stored_claims.renew_claims(session, ids, "me", later) == 1
    session.expire_all()
    until = {row.record_id: row.claimed_until for row in session.exec(select(Outbox))}
    assert until == {"r1": later, "r2": NOW, "r3": NOW, "r4": NOW}


def test_releasing_dead_holders_puts_their_rows_back_due_now(session: Session) -> None:
    _records(session, "r1", "r2", "r3")
    _row(session, "r1", status="in_flight", claimed_by="dead", claimed_until=NOW)
    _row(session, "r2", status="in_flight", claimed_by="alive", claimed_until=NOW)
    _row(session, "r3", status="done", claimed_by="dead", claimed_until=NOW)
    assert sorted(str(h) for h in stored_claims.in_flight_holders(session)) == ["alive", "dead"]
    assert stored_claims.release_holders(session, ["dead"], NOW) == 1
    session.expire_all()
    rows = {row.record_id: row for row in session.exec(select(Outbox))}
    released = rows["r1"]
    assert (released.status, released.claimed_by, released.claimed_until) == ("retry", None, None)
    assert released.next_attempt_at == NOW
    assert (rows["r2"].status, rows["r3"].status) == ("in_flight", "done")


def test_open_intents_come_oldest_first_and_skip_linked_records(session: Session) -> None:
    _records(session, "a", "b", "c", "d", "e")
    early, late = NOW, NOW + dt.timedelta(seconds=1)
    _row(session, "a", op="create", intent_at=late, intent={"name": "A"})
    _row(session, "b", op="create", intent_at=early, intent={"name": "B"})
    _row(session, "c", op="create", intent_at=early)
    _row(session, "d", op="create", intent_at=early, status="done")  # settled
    _row(session, "e", op="create", intent_at=early)  # linked meanwhile
    _row(session, "a", op="create", system="ruddr", intent_at=early)  # another system
    session.add(Link(record_id="e", system="close", external_id="lead_e"))
    session.flush()
    found = [record_id for _, record_id, _, _ in outbox.open_intents(session, "close")]
    assert found == ["b", "c", "a"]


def test_live_ids_are_paged_in_id_order(session: Session) -> None:
    _records(session, "r3", "r1", "r4", "r2", "r5", deleted=("r2",))
    assert records.live_ids_after(session, "", 2) == ["r1", "r3"]
    assert records.live_ids_after(session, "r3", 2) == ["r4", "r5"]
    assert records.live_ids_after(session, "r5", 2) == []


@pytest.mark.parametrize("chunk", [2, 1000])
def test_dropping_shadow_fields_rewrites_the_systems_links_holding_one(
    db_url: str, chunk: int
) -> None:
    """A mapping's transform changed: the field leaves the shadow and ``sent`` of every link
    of that system holding it (read a few at a time, on both dialects); other fields, links
    without it and other systems' links stay as they were."""
    engine = make_engine(db_url)
    SQLModel.metadata.create_all(engine)
    with make_sessionmaker(engine)() as session:
        _records(session, "r1", "r2", "r3", "r4")
        held = {"name": "A", "stage": {"id": "s"}, "value": 5}
        for record_id, system, shadow in (
            ("r1", "close", held),
            ("r2", "close", {"name": "B"}),
            ("r3", "close", held),
            ("r4", "ruddr", held),
        ):
            link = Link(record_id=record_id, system=system, external_id=f"{system}_{record_id}")
            link.shadow, link.sent = dict(shadow), {"stage": ["x", "y"]}
            session.add(link)
        session.commit()
        assert links.drop_shadow_fields(session, "close", {"stage"}, chunk=chunk) == 2
        session.commit()
        session.expunge_all()
        found = {
            link.record_id: (link.shadow, link.sent) for link in session.exec(select(Link)).all()
        }
    engine.dispose()
    assert found == {
        "r1": ({"name": "A", "value": 5}, {}),
        "r2": ({"name": "B"}, {"stage": ["x", "y"]}),
        "r3": ({"name": "A", "value": 5}, {}),
        "r4": (held, {"stage": ["x", "y"]}),
    }


def test_absorbing_a_record_moves_its_rows_and_drops_its_unsent_pushes(session: Session) -> None:
    _records(session, "keep", "gone", "other")
    session.add(Link(record_id="gone", system="close", external_id="lead_1"))
    session.add(Journal(record_id="gone", action="created", at=utcnow()))
    _row(session, "gone", status="pending")
    _row(session, "gone", status="in_flight", system="ruddr")
    _row(session, "other", status="pending")
    session.flush()
    records.absorb(session, {"gone": "keep"}, outbox.UNSENT_STATES)
    session.expire_all()
    assert session.get(Record, "gone") is None
    assert [link.record_id for link in session.exec(select(Link))] == ["keep"]
    assert [entry.record_id for entry in session.exec(select(Journal))] == ["keep"]
    rows = sorted((row.record_id, row.status) for row in session.exec(select(Outbox)))
    assert rows == [("keep", "in_flight"), ("other", "pending")]


def test_settling_rows_writes_only_the_columns_each_changed(session: Session) -> None:
    """``write_changes`` sets each row's own changed columns (rows changed alike share a
    statement) and leaves every other column as it was; ``settle_view`` reads them back."""
    _records(session, "r1", "r2")
    one = _row(session, "r1", status="in_flight", claimed_by="me", reason="kept")
    two = _row(session, "r2", status="in_flight", claimed_by="me", attempts=2)
    assert one.id is not None and two.id is not None
    stored_claims.write_changes(
        session,
        [
            (one.id, {"status": "done", "claimed_by": None}),
            (two.id, {"status": "retry", "last_error": "503", "attempts": 3}),
        ],
    )
    session.expire_all()
    first, second = session.get(Outbox, one.id), session.get(Outbox, two.id)
    assert first is not None and second is not None
    assert (first.status, first.claimed_by, first.reason) == ("done", None, "kept")
    assert (second.status, second.claimed_by, second.last_error, second.attempts) == (
        "retry",
        "me",
        "503",
        3,
    )
    view = {row[0]: row for row in stored_claims.settle_view(session, [one.id, two.id])}
    assert view[one.id][4] == "done" and view[two.id][5] == 3


def test_which_records_exist_is_answered_by_id(session: Session) -> None:
    """``existing`` names the given records that are stored (tombstoned ones too)."""
    _records(session, "r1", "r2", deleted=("r2",))
    assert records.existing(session, ["r1", "r2", "gone"]) == {"r1", "r2"}
    assert records.existing(session, []) == set()
