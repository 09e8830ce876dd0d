"""Alembic environment for the store: the target is ``SQLModel.metadata`` of sync.store.models.

Run through :mod:`sync.store.db` (``crmsync db upgrade``) or ``python -m sync.store.migrations``
to write a new revision; there is no alembic.ini. SQLite gets batch mode because it cannot
ALTER most things in place (https://alembic.sqlalchemy.org/en/latest/batch.html).
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy.engine import Connection, make_url
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

import sync.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from sync.store.db import make_engine

target_metadata = SQLModel.metadata


def _render_item(kind: str, obj: Any, autogen_context: Any) -> str | bool:
    # Revisions should not depend on sqlmodel's Python-side types: write the column type they
    # create (AutoString is a VARCHAR, UTCDateTime a DateTime with time zone).
    if kind != "type":
        return False
    if isinstance(obj, AutoString):
        length = getattr(obj.impl, "length", None)
        return f"sa.String(length={length})" if length else "sa.String()"
    if isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _options(dialect: str) -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        "render_as_batch": dialect == "sqlite",
        "compare_type": True,
        "compare_server_default": True,
        "render_item": _render_item,
    }


def _url() -> Any:
    url = context.config.attributes.get("url") or context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("no database URL: use sync.store.db.upgrade(url)")
    return make_url(url)


def run_offline() -> None:
    """Write the SQL to stdout instead of running it (``alembic upgrade --sql``)."""
    url = _url()
    context.configure(url=url, literal_binds=True, **_options(url.get_backend_name()))
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, **_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run against a live database (a connection handed over in attributes, or the URL)."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
