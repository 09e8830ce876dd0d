"""The in-process worlds' store (``--store``): a SQLite file in the world's temporary directory
(the default), or a fresh PostgreSQL database on ``--pg-url``'s server, dropped with the world.
Either gets its schema from the migrations, as crmsync's own processes do.

On PostgreSQL the store's own work (parsing, planning, executing, writing the WAL) runs in other
processes, its backends, so the bench's ``time.process_time`` no longer sees it, as it does
SQLite's: :class:`BackendClock` counts their CPU seconds, from ``/proc`` (the server runs on
this machine in the benches and in CI; elsewhere the figure is ``None``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import fresh_database
from bench.emulator_child import cpu_seconds
from sync.store.db import upgrade

STORES = ("sqlite", "postgresql")
#: a maintenance database: the bench only creates and drops its own next to it
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
#: the name of each world's database is this and a random suffix
PREFIX = "crmsync_bench"


@contextlib.contextmanager
def world_store(kind: str, directory: Path, pg_url: str = DEFAULT_PG_URL) -> Iterator[str]:
    """The URL of an empty store of ``kind`` with the schema at head. SQLite: a file in
    ``directory``; PostgreSQL: a new database, dropped on exit even on failure."""
    if kind == "sqlite":
        url = f"sqlite:///{directory / 'crmsync.db'}"
        upgrade(url)
        yield url
    elif kind == "postgresql":
        with fresh_database(pg_url, PREFIX) as url:
            upgrade(url)
            yield url
    else:
        raise ValueError(f"store must be one of {', '.join(STORES)}, not {kind!r}")


class BackendClock:
    """CPU seconds spent so far by the PostgreSQL backends of every connection an engine's
    pool has opened. The pool's own events say which backends those are (no query on the
    store, no sampling thread): a backend is read when the pool closes its connection (the
    overflow beyond the pool's size comes and goes under concurrent pushes) and whenever
    :meth:`seconds` is asked, so none is missed however the pool churns."""

    def __init__(self, db: sa.Engine) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, float] = {}  # backend pid: its CPU seconds when last read
        self._gone = 0.0  # CPU seconds of the backends whose connections were closed
        self.readable = True  # False once a backend's /proc entry could not be read
        sa.event.listen(db, "connect", self._opened)
        sa.event.listen(db, "close", self._closed)
        sa.event.listen(db, "close_detached", self._detached)

    def seconds(self) -> float | None:
        """The backends' CPU seconds so far (None when ``/proc`` does not show them)."""
        with self._lock:
            for pid in self._live:
                self._live[pid] = self._read(pid, self._live[pid])
            return self._gone + sum(self._live.values()) if self.readable else None

    def _read(self, pid: int, last: float) -> float:
        try:
            return cpu_seconds(pid)
        except OSError:  # not on this machine, or it ended without the pool closing it
            self.readable = False
            return last

    def _opened(self, dbapi_connection: Any, _record: Any) -> None:
        pid = _backend_pid(dbapi_connection)
        with self._lock:
            self._live[pid] = self._read(pid, 0.0)

    def _closed(self, dbapi_connection: Any, _record: Any) -> None:
        self._detached(dbapi_connection)

    def _detached(self, dbapi_connection: Any) -> None:
        pid = _backend_pid(dbapi_connection)
        with self._lock:
            if pid in self._live:
                self._gone += self._read(pid, self._live.pop(pid))


def _backend_pid(dbapi_connection: Any) -> int:
    """The server process of a psycopg (3) connection: libpq knows it, no query needed."""
    return int(dbapi_connection.info.backend_pid)
