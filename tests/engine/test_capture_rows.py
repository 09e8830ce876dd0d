"""Capture inserts a page's new records, links, keys and outbox rows as plain column values,
one statement per table (no ORM objects). Those values must name every column of their table:
a column added to a model and forgotten here would silently take the database's default. A
deal repeated within one page is linked once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlmodel import SQLModel, func, select

from sync.engine.capture.page import NewLink, NewRecord, Poll
from sync.engine.capture.poll import _ingest_page
from sync.engine.context import Counts
from sync.engine.journal import outbox_row
from sync.store.models import Link, Outbox, Record
from sync.timefmt import utcnow
from tests.e2e.conftest import single_system


def columns(model: type[SQLModel], *, without_id: bool) -> set[str]:
    names = {column.name for column in model.__table__.columns}  # type: ignore[attr-defined]
    return names - {"id"} if without_id else names


@pytest.mark.parametrize(
    ("plain", "model", "without_id"),
    [(NewRecord, Record, False), (NewLink, Link, True)],
)
def test_new_rows_name_every_column(plain: type, model: type[SQLModel], without_id: bool) -> None:
    assert {f.name for f in dataclasses.fields(plain)} == columns(model, without_id=without_id)


def test_a_new_outbox_row_names_every_column() -> None:
    assert set(outbox_row("r1", "close", "create", "why")) == columns(Outbox, without_id=True)


def test_a_deal_listed_twice_in_one_page_is_linked_once(tmp_path: Path) -> None:
    """A vendor page that repeats a deal (an offset listing shifting under writes) creates one
    record and one link, and counts the repeat, instead of failing on the unique link."""
    world = single_system(tmp_path, "close", seed_opportunities=3)
    try:
        engine = world.engine
        page = next(iter(engine.connector("close").scan()))
        twice = [page[0], page[0], *page[1:]]
        poll = Poll(engine, "close", Counts(), None, utcnow())
        with engine.session() as session:
            _ingest_page(poll, session, twice)
            session.commit()
        assert poll.counts["repeated"] == 1
        with engine.session() as session:
            links = session.exec(select(Link).where(Link.external_id == page[0].external_id)).all()
            records = session.exec(select(func.count()).select_from(Record)).one()
        assert len(links) == 1
        assert records == len(page)
    finally:
        world.engine.close()
