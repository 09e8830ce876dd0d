"""The store's engine settings and its migrations, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import SQLModel

import sync.store.models  # noqa: F401  (registers the tables)
from sync.store.db import (
    current_revision,
    head_revision,
    make_engine,
    make_sessionmaker,
    schema_diff,
    upgrade,
)


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_creates_every_model_table_on_an_empty_database(db_url: str) -> None:
    """`upgrade` on an empty database creates every table of the models and records the head."""
    upgrade(db_url)
    assert set(SQLModel.metadata.tables) <= _tables(db_url)
    assert current_revision(db_url) == head_revision()


def test_migrations_match_the_models_exactly(db_url: str) -> None:
    """After `upgrade`, comparing models and database finds nothing (what `alembic check` does)."""
    upgrade(db_url)
    assert schema_diff(db_url) == []


def test_upgrade_twice_is_a_no_op(db_url: str) -> None:
    """Running `upgrade` on a database already at head changes nothing and does not fail."""
    upgrade(db_url)
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()


def test_an_empty_database_differs_from_the_models(sqlite_url: str) -> None:
    """The model/migration comparison can fail: an unmigrated database shows missing tables."""
    make_engine(sqlite_url).dispose()
    assert schema_diff(sqlite_url)


def test_sqlite_connections_use_wal_and_enforce_foreign_keys(sqlite_url: str) -> None:
    """Every SQLite connection runs in WAL mode with foreign keys and a busy timeout."""
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    engine.dispose()


def test_sqlite_savepoints_roll_back_only_the_inner_block(sqlite_url: str) -> None:
    """A nested transaction (SAVEPOINT) on SQLite rolls back alone, keeping the outer work."""
    engine = make_engine(sqlite_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        nested = connection.begin_nested()
        connection.exec_driver_sql("INSERT INTO t VALUES (2)")
        nested.rollback()
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT x FROM t").scalars().all() == [1]
    engine.dispose()


def test_concurrent_read_modify_write_on_sqlite_loses_nothing(sqlite_url: str) -> None:
    """Threads that read then write the same row all succeed and no increment is lost."""
    engine = make_engine(sqlite_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE counter (n INTEGER)")
        connection.exec_driver_sql("INSERT INTO counter VALUES (0)")

    errors: list[Exception] = []

    def work() -> None:
        try:
            for _ in range(25):
                with engine.begin() as connection:
                    n = connection.exec_driver_sql("SELECT n FROM counter").scalar_one()
                    time.sleep(0.001)  # let another thread read the same value meanwhile
                    connection.exec_driver_sql(f"UPDATE counter SET n = {n + 1}")
        except Exception as exc:  # reported below: threads do not fail the test by themselves
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT n FROM counter").scalar_one() == 100
    engine.dispose()


def test_in_memory_sqlite_is_shared_by_all_sessions() -> None:
    """An in-memory SQLite engine keeps one database, so a second session sees the first's rows."""
    engine = make_engine("sqlite://")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        connection.exec_driver_sql("INSERT INTO t VALUES (7)")
    with make_sessionmaker(engine)() as session:
        assert session.execute(sa.text("SELECT x FROM t")).scalar() == 7
    engine.dispose()


def test_sqlite_file_parent_directory_is_created(tmp_path: Path) -> None:
    """A SQLite URL whose directory does not exist yet still works (the folder is created)."""
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'store.db'}"
    upgrade(url)
    assert "records" in _tables(url)
