"""Capture inserts a page's new records, links, keys and outbox rows as plain column values,
one statement per table (no ORM objects). Those values must name every column of their table:
a column added to a model and forgotten here would silently take the database's default."""

from __future__ import annotations

import dataclasses

import pytest
from sqlmodel import SQLModel

from sync.engine.capture import NewLink, NewRecord
from sync.engine.journal import outbox_row
from sync.store.models import Link, Outbox, Record


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
