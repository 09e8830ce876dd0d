"""Opening the store for CLI commands: one clear line, with the right hint, for every way it
can be unusable, and read commands that a running sync never blocks.

- A store that does not exist is not created by a command that only reads it (an empty SQLite
  file left behind would look like a store and hide the mistake): ``no store at …: create it
  with `crmsync db upgrade```.
- A store never migrated, or migrated by an older crmsync, gets the same hint.
- Read commands (``status``, ``plan``, ``verify``, listings, ``history``) open SQLite with
  ``BEGIN DEFERRED``: in WAL mode they read a snapshot and take no lock, so ``crmsync run``
  writing at the same moment never makes them fail with "database is locked".
- A busy store is reported as busy (try again), never as needing a migration.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from sync.config import Config, mask_url

if TYPE_CHECKING:
    from sync.engine.context import Engine

UPGRADE_HINT = "run `crmsync db upgrade`"


class StoreUnusable(Exception):
    """The store cannot serve this command; the message is the one line to show."""


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (``None`` for another database or an in-memory one)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or "mode=memory" in url:
        return None
    return Path(database)


def describe_store_error(url: str, exc: BaseException) -> str:
    """One line for a database error met while using the store, with a hint that fits it."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    where = mask_url(url)
    if isinstance(exc, OperationalError) and "locked" in text.lower():
        return f"the store at {where} is busy (another crmsync is writing to it); try again"
    if isinstance(exc, OperationalError) and "no such table" in text.lower():
        return f"the store at {where} has not been migrated ({text}): {UPGRADE_HINT}"
    return f"cannot use the store at {where}: {text}"


def check_store(config: Config) -> None:
    """Raise :class:`StoreUnusable` unless the store exists and is at the newest revision;
    creates nothing."""
    from alembic.migration import MigrationContext

    from sync.store.db import head_revision, make_engine

    url = config.store.url
    where = mask_url(url)
    try:
        file = _sqlite_file(url)
    except ArgumentError as exc:
        raise StoreUnusable(f"cannot use the store at {where}: {exc}") from None
    if file is not None and not file.exists():
        raise StoreUnusable(f"no store at {where}: create it with `crmsync db upgrade`")
    engine = make_engine(url, sqlite_begin="DEFERRED", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise StoreUnusable(describe_store_error(url, exc)) from None
    finally:
        engine.dispose()
    head = head_revision()
    if revision is None:
        raise StoreUnusable(f"the store at {where} has never been migrated: {UPGRADE_HINT}")
    if revision != head:
        raise StoreUnusable(
            f"the store at {where} is at revision {revision}, this crmsync needs {head}: "
            f"{UPGRADE_HINT}"
        )


def open_store_engine(config: Config, *, read_only: bool, distributed: bool = False) -> Engine:
    """A checked :class:`~sync.engine.context.Engine`; read-only ones never wait for a writer."""
    from sync.engine.context import Engine
    from sync.runtime.context import build_engine
    from sync.store.db import make_engine

    check_store(config)
    if not read_only:
        return build_engine(config, distributed=distributed)
    return Engine.from_config(config, make_engine(config.store.url, sqlite_begin="DEFERRED"))
