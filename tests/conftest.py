"""Fixtures shared by every test: database URLs for SQLite and the real PostgreSQL.

``pg_url`` gives each test its own schema in the ``test`` database of the PostgreSQL that
``.ci/run`` starts (override with ``CRMSYNC_TEST_PG_URL``), and drops it afterwards, so tests
can run in parallel (``pytest -n 2``) without seeing each other's rows.
"""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from sync.runtime import collector

PG_URL = os.environ.get("CRMSYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _collector_as_found() -> Iterator[None]:
    """A test that runs ``crmsync run`` (or builds the runtime's engine) in-process tunes the
    garbage collector of the whole pytest process (``sync.runtime.collector``: ``gc.freeze()``,
    a young pass every 50,000 allocations) for every later test: what they drop unclosed is
    then freed in rare, large passes at unrelated moments, or frozen for good. Put it back."""
    thresholds = gc.get_threshold()
    yield
    collector.reset(thresholds)  # the next test's in-process run tunes (and is put back) again


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A URL of a fresh, empty SQLite database file."""
    return f"sqlite:///{tmp_path / 'crmsync.db'}"


@pytest.fixture(scope="session")
def _pg_admin() -> Iterator[sa.Engine]:
    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:  # a clear failure, never a silent skip
        pytest.fail(f"PostgreSQL at {PG_URL} is not reachable (run `bash .ci/run`): {exc}")
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url(_pg_admin: sa.Engine) -> Iterator[str]:
    """A URL of the real PostgreSQL whose search_path is a fresh schema, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with _pg_admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with _pg_admin.connect() as connection:
        connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each store test runs twice: on SQLite and on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo `configure_logging` after the test (handlers, level, structlog defaults, context)."""
    import logging

    import structlog

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
