"""Many rows in one SQLite statement: inserts as one ``INSERT … VALUES (…), (…)``, updates as
one ``WITH v(…) AS (VALUES …) UPDATE … FROM v``.

An ``executemany`` runs its statement once per row, and pysqlite lets go of the GIL around
every one of those steps. Inside a write transaction each step then waits for the GIL again
behind whichever threads took it meanwhile — during a load, the pool threads parsing answers
and the other drains planning theirs: an apply of 128 outcomes made ~350 steps and held the
store's write lock ~4× as long as its own CPU (issue 25). One statement per batch is one step.

Values go through each column's own bind processor (JSON through ``json_dumps``, datetimes as
SQLAlchemy stores them on SQLite; ``None`` as SQLAlchemy binds it: JSON ``null`` for a JSON
column), and Python-side column defaults fill the columns a row leaves out, one call per row
as Core's insert does. Every row carries the same columns as the first. PostgreSQL keeps
``executemany`` (psycopg already sends a batch as one multi-row statement).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

#: bound parameters per statement (SQLite's limit is 32,766 since 3.32)
MAX_PARAMS = 30_000


def _on_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _processors(
    session: Session, table: sa.Table, names: Sequence[str]
) -> list[Callable[[Any], Any] | None]:
    dialect = session.get_bind().dialect
    by_type: dict[str, Callable[[Any], Any] | None] = {}  # one per kind of column (a memo each)
    processors = []
    for name in names:
        kind = table.c[name].type
        processors.append(by_type.setdefault(repr(kind), kind._cached_bind_processor(dialect)))
    return processors


def _defaults(table: sa.Table, names: Sequence[str]) -> list[tuple[str, Any]]:
    """``(column, default)`` of the columns left out that have a Python-side default."""
    given = set(names)
    return [
        (column.name, column.default)
        for column in table.c
        if column.name not in given and column.default is not None
    ]


def _default_value(default: Any) -> Any:
    if default.is_callable:
        return default.arg(None)  # SQLAlchemy wraps a no-argument callable to take a context
    return default.arg


def _bound(
    rows: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    processors: Sequence[Callable[[Any], Any] | None],
) -> list[Any]:
    """The rows' values in order, each through its column's processor. A batch repeats its
    scalars (a page's rows share their stamps, systems, ops): each distinct one is processed
    once per column — the datetime formatting alone was a third of a capture's inserts."""
    shared: dict[int, dict[tuple[type, Any], Any]] = {}  # columns with one processor share
    memos = [shared.setdefault(id(process), {}) for process in processors]
    flat: list[Any] = []
    for row in rows:
        for name, process, memo in zip(names, processors, memos, strict=True):
            value = row[name]
            if process is None:
                flat.append(value)
            elif isinstance(value, dict | list):  # unhashable; JSON documents are all unlike
                flat.append(process(value))
            else:
                key = (type(value), value)  # by type too: True and 1 are equal keys
                if key not in memo:
                    memo[key] = process(value)
                flat.append(memo[key])
    return flat


def insert_rows(session: Session, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (column → value, the same columns in each) into ``table``."""
    if not rows:
        return
    if not _on_sqlite(session):
        session.execute(sa.insert(table), list(rows))
        return
    defaults = _defaults(table, list(rows[0]))
    if defaults:
        rows = [{**row, **{n: _default_value(d) for n, d in defaults}} for row in rows]
    names = list(rows[0])
    processors = _processors(session, table, names)
    connection = session.connection()
    one = "(" + ", ".join("?" * len(names)) + ")"
    head = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES "
    per_statement = max(1, MAX_PARAMS // len(names))
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        sql = head + ", ".join([one] * len(chunk))
        connection.exec_driver_sql(sql, tuple(_bound(chunk, names, processors)))


def update_rows(
    session: Session,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    where: Mapping[str, Any] | None = None,
) -> None:
    """Set the columns of each row (``{"id": …, column: value, …}``, the same columns in each)
    on the row of ``table`` with that id; rows whose other columns do not hold ``where``'s
    values (``{column: value}``) are left alone."""
    if not rows:
        return
    names = list(rows[0])
    columns = [name for name in names if name != "id"]
    if not _on_sqlite(session):
        _update_many(session, table, rows, columns, where or {})
        return
    processors = _processors(session, table, names)
    extra = list((where or {}).items())
    extra_processors = _processors(session, table, [name for name, _ in extra])
    guards = "".join(f" AND {table.name}.{name} = ?" for name, _ in extra)
    guard_values = tuple(
        process(value) if process is not None else value
        for (_, value), process in zip(extra, extra_processors, strict=True)
    )
    connection = session.connection()
    one = "(" + ", ".join("?" * len(names)) + ")"
    sets = ", ".join(f"{name} = v.{name}" for name in columns)
    per_statement = max(1, (MAX_PARAMS - len(extra)) // len(names))
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        sql = (
            f"WITH v ({', '.join(names)}) AS (VALUES {', '.join([one] * len(chunk))}) "
            f"UPDATE {table.name} SET {sets} FROM v WHERE {table.name}.id = v.id{guards}"
        )
        params = tuple(_bound(chunk, names, processors)) + guard_values
        connection.exec_driver_sql(sql, params)


def _update_many(
    session: Session,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    where: Mapping[str, Any],
) -> None:
    """The same update as an ``executemany`` (PostgreSQL)."""
    statement = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("v_id"), *(table.c[k] == v for k, v in where.items()))
        .values({name: sa.bindparam(f"v_{name}") for name in columns})
    )
    session.execute(statement, [{f"v_{k}": v for k, v in row.items()} for row in rows])
