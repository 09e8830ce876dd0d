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
from itertools import chain
from operator import itemgetter
from typing import Any
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Session

#: bound parameters per statement (SQLite's limit is 32,766 since 3.32)
MAX_PARAMS = 30_000


def _on_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


Processor = Callable[[Any], Any] | None
#: per dialect: the processor of each kind of column (by its ``repr``: columns of one kind
#: share one, and so their memo of processed values) and of each (table, column), resolved
#: once — a ``repr`` of a column type costs more than binding a page of its values
_RESOLVED: WeakKeyDictionary[Dialect, dict[Any, Processor]] = WeakKeyDictionary()


def _processors(session: Session, table: sa.Table, names: Sequence[str]) -> list[Processor]:
    dialect = session.get_bind().dialect
    resolved = _RESOLVED.setdefault(dialect, {})
    for name in names:
        if (table, name) not in resolved:
            kind = table.c[name].type
            shared = resolved.setdefault(repr(kind), kind._cached_bind_processor(dialect))
            resolved[(table, name)] = shared
    return [resolved[(table, name)] for name in names]


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


#: processed values of one bind processor for values of one type, shared by the columns of a
#: batch that have that processor (a record's ``created_at`` and ``updated_at``)
Memos = dict[tuple[Callable[[Any], Any], type | None], dict[Any, Any]]


def _column(values: list[Any], process: Callable[[Any], Any] | None, memos: Memos) -> list[Any]:
    """One column's values through its processor. A batch repeats its scalars (a page's rows
    share their stamps, systems, ops): each distinct one is processed once — the datetime
    formatting alone was a third of a capture's inserts. Equal values of one type are one
    value; a column mixing types (``True`` and ``1``) or holding JSON documents, which are all
    unlike, has each value processed."""
    if process is None:
        return values
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if len(kinds) > 1:
        return list(map(process, values))
    memo = memos.setdefault((process, kinds.pop() if kinds else None), {})
    try:
        for value in dict.fromkeys(values):  # the first of equal values, as they come
            if value not in memo:
                memo[value] = process(value)
    except TypeError:  # unhashable: JSON documents
        return list(map(process, values))
    return list(map(memo.__getitem__, values))


def _bound(
    rows: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    processors: Sequence[Callable[[Any], Any] | None],
) -> list[Any]:
    """The rows' values in order, row by row, each through its column's processor."""
    memos: Memos = {}
    columns = [
        _column(list(map(itemgetter(name), rows)), process, memos)
        for name, process in zip(names, processors, strict=True)
    ]
    return list(chain.from_iterable(zip(*columns, strict=True)))


def _same(values: list[Any]) -> bool:
    """Whether a column holds one scalar in every row (of one type: ``1`` is not ``True``).
    JSON documents are left out: equal ones may still be written differently (``[1]`` and
    ``[1.0]``)."""
    first = values[0]
    return (
        not isinstance(first, dict | list)
        and values[-1] == first
        and values.count(first) == len(values)
        and len(set(map(type, values))) == 1
    )


def insert_rows(session: Session, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (column → value, the same columns in each) into ``table``.

    A column holding one value in every row is bound once per statement (``?1``…, numbered
    parameters every row repeats), not once per row: most of a capture's outbox row is the
    same for the page (status, attempts, stamps, the empty columns)."""
    if not rows:
        return
    if not _on_sqlite(session):
        session.execute(sa.insert(table), list(rows))
        return
    defaults = _defaults(table, list(rows[0]))
    if defaults:
        rows = [{**row, **{n: _default_value(d) for n, d in defaults}} for row in rows]
    columns = {name: list(map(itemgetter(name), rows)) for name in rows[0]}
    same = [name for name, values in columns.items() if len(rows) > 1 and _same(values)]
    varying = [name for name in columns if name not in same]
    shared = [
        process(columns[name][0]) if process is not None else columns[name][0]
        for name, process in zip(same, _processors(session, table, same), strict=True)
    ]
    memos: Memos = {}
    bound = [
        _column(columns[name], process, memos)
        for name, process in zip(varying, _processors(session, table, varying), strict=True)
    ]
    connection = session.connection()
    one = "(" + ", ".join([f"?{n}" for n in range(1, len(same) + 1)] + ["?"] * len(varying)) + ")"
    head = f"INSERT INTO {table.name} ({', '.join(same + varying)}) VALUES "
    per_statement = max(1, (MAX_PARAMS - len(same)) // max(1, len(varying)))
    for start in range(0, len(rows), per_statement):
        chunk = [values[start : start + per_statement] for values in bound]
        count = min(per_statement, len(rows) - start)
        params = shared + list(chain.from_iterable(zip(*chunk, strict=True)))
        connection.exec_driver_sql(head + ", ".join([one] * count), tuple(params))


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
