"""Engine and session factory for the store, and Alembic migrations run from code.

SQLite is the embedded default. Each SQLite connection is switched to WAL (readers never wait
for the writer), ``synchronous=NORMAL`` (safe in WAL, much faster), enforced foreign keys (as
PostgreSQL enforces them) and a busy timeout, and transactions are begun explicitly so that
SAVEPOINTs work — pysqlite's own transaction handling breaks them, see
https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl

Transactions begin ``IMMEDIATE`` (take the write lock up front): the embedded runtime runs jobs
on several threads, and a deferred transaction that reads and then writes after another thread
committed fails at once with SQLITE_BUSY instead of waiting (https://sqlite.org/lang_transaction.html).
At CRM sizes serialising writers costs nothing; pass ``sqlite_begin="DEFERRED"`` for read-only use,
or set the execution option ``sqlite_begin="DEFERRED"`` on one connection (``Engine.read_session``):
a read then takes no lock at all, so pushes running on several threads read while one writes.
The threads of one process queue for that write lock in order (``sync.store.writer``) rather
than through SQLite's busy handler, which serves no one in order and gave up after the busy
timeout during a 10,000-deal load; a ``BEGIN`` that SQLite still refuses (another process held
the lock past the timeout) is tried again — nothing was done yet.

Pools are sized for the push threads (``POOL_SIZE`` + ``POOL_OVERFLOW`` connections): one drain
thread per system plus its bounded pool of push threads each hold a session briefly. An in-memory
SQLite database has exactly one connection (:func:`supports_threads` is then False and the
engine pushes on the calling thread).

JSON columns are encoded and decoded with orjson (:func:`json_dumps`): a load encodes and
decodes dozens of JSON values per deal (records, links, journal, outbox intents), and the
standard library's ``json`` was the largest single cost of the store's work.

Migrations need no ``alembic.ini``: :func:`alembic_config` builds the configuration and points
it at ``sync/store/migrations``. ``crmsync db upgrade`` calls :func:`upgrade`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import orjson
import sqlalchemy as sa
import structlog
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import SingletonThreadPool, StaticPool
from sqlmodel import Session, SQLModel

from sync.store.writer import GatedConnection, enter_writer, gate_for, leave_writer

log = structlog.get_logger("crmsync.store")
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: tries of a ``BEGIN IMMEDIATE`` that SQLite refused as locked, each after its busy timeout
BEGIN_ATTEMPTS = 3
#: connections kept open, and opened beyond that under load (threads waiting on a full pool
#: would otherwise queue for ``pool_timeout``)
POOL_SIZE = 10
POOL_OVERFLOW = 30


def json_dumps(value: Any) -> str:
    """A JSON column's text: orjson's, and the standard library's for what orjson refuses (an
    integer beyond 64 bits; anything ``json`` refuses too still raises as it did)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value)


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in str(url)


def make_engine(
    url: str | URL, *, sqlite_begin: Literal["IMMEDIATE", "DEFERRED"] = "IMMEDIATE", **kwargs: Any
) -> Engine:
    """An engine for ``url`` with the settings crmsync relies on (see the module docstring)."""
    parsed = make_url(url)
    kwargs.setdefault("json_serializer", json_dumps)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        if "poolclass" not in kwargs:
            kwargs.setdefault("pool_size", POOL_SIZE)
            kwargs.setdefault("max_overflow", POOL_OVERFLOW)
        return sa.create_engine(parsed, **kwargs)
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("check_same_thread", False)  # the scheduler runs jobs on threads
    if _is_memory(parsed):
        kwargs.setdefault("poolclass", StaticPool)  # one connection, or each sees an empty DB
    else:
        Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)
        connect_args.setdefault("factory", GatedConnection)  # writers queue: sync.store.writer
        if "poolclass" not in kwargs:
            kwargs.setdefault("pool_size", POOL_SIZE)
            kwargs.setdefault("max_overflow", POOL_OVERFLOW)
    engine = sa.create_engine(parsed, connect_args=connect_args, **kwargs)
    database = None if _is_memory(parsed) else parsed.database
    _install_sqlite_pragmas(engine, database=database, begin=sqlite_begin)
    return engine


def _install_sqlite_pragmas(engine: Engine, *, database: str | None, begin: str) -> None:
    wal = database is not None  # an in-memory database has no WAL (and one connection)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        if database is not None and isinstance(dbapi_connection, GatedConnection):
            dbapi_connection.gate = gate_for(database)
        cursor = dbapi_connection.cursor()
        if wal:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", begin)
        if mode not in ("IMMEDIATE", "DEFERRED"):
            raise ValueError(f"sqlite_begin must be IMMEDIATE or DEFERRED, not {mode!r}")
        if mode == "DEFERRED":
            connection.exec_driver_sql("BEGIN DEFERRED")
            return
        dbapi_connection = connection.connection.dbapi_connection
        enter_writer(dbapi_connection)
        try:
            _begin_immediate(connection)
        except BaseException:
            leave_writer(dbapi_connection)
            raise


def _begin_immediate(connection: sa.Connection) -> None:
    """``BEGIN IMMEDIATE``, tried again when SQLite answers that the database is locked (it
    waited out its busy timeout behind another process): the transaction did nothing yet."""
    for attempt in range(1, BEGIN_ATTEMPTS + 1):
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except sa.exc.OperationalError as exc:
            if "locked" not in str(exc.orig) or attempt == BEGIN_ATTEMPTS:
                raise
            log.warning("store_begin_locked", attempt=attempt, error=str(exc.orig))


def insert_ignoring(
    session: Session, table: sa.Table, rows: Sequence[Mapping[str, Any]], unique: Sequence[str]
) -> None:
    """Insert ``rows`` into ``table`` with one statement, leaving out those whose ``unique``
    columns a row already holds — committed by another worker meanwhile, on either dialect
    (``ON CONFLICT DO NOTHING``): the first to store a key keeps it, and the statement
    neither fails nor waits for a retry row by row."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(table).on_conflict_do_nothing(index_elements=list(unique)), rows)


def supports_threads(engine: Engine) -> bool:
    """Whether sessions on several threads at once get connections of their own (not so for
    an in-memory SQLite database, whose one connection every session shares)."""
    return not isinstance(engine.pool, StaticPool | SingletonThreadPool)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; objects stay readable after commit."""
    return sessionmaker(bind=engine, class_=Session, expire_on_commit=False)


# --------------------------------------------------------------------------- migrations


def alembic_config(url: str | URL | None = None) -> AlembicConfig:
    """Alembic configuration for the store without any ini file.

    The URL travels in ``attributes`` rather than the ini options, where ``%`` in a password
    would be read as interpolation.
    """
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.attributes["url"] = make_url(url)
    return config


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision`` (default: the newest)."""
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    """The newest revision shipped with this version of crmsync."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(url: str | URL) -> str | None:
    """The revision the database at ``url`` is at (``None`` if never migrated)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def schema_diff(url: str | URL) -> list[Any]:
    """Differences between the tables in ``sync.store.models`` and the database at ``url``.

    Empty after ``upgrade(url)`` means the migrations describe the models exactly — the same
    comparison ``alembic check`` makes.
    """
    import sync.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        engine.dispose()
