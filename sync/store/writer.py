"""One writer at a time on an SQLite file, queued in order inside the process.

SQLite has one write lock per database file. A connection that finds it taken polls: its busy
handler sleeps 1, 2, 5 … then 100 ms between tries, until the busy timeout runs out, and a
transaction that begins meanwhile may take the lock first — whoever polls at the right moment
wins, not whoever waited longest. During a load the lock is hardly ever free: five drains
claim rows, journal intents and apply outcomes back to back, and at 1,000 deals the write
lock was held ~75 % of the load's wall time (issue 25). A drain thread that had waited long
enough to poll every 100 ms kept losing to fresher transactions until its 10 s ran out, and
the 10,000-deal load died on ``database is locked`` at ``BEGIN IMMEDIATE``.

So the threads of one process queue for the write lock themselves: :class:`WriterGate` is
taken, first come first served, before ``BEGIN IMMEDIATE`` and given back when the
transaction ends (``COMMIT``, ``ROLLBACK``, or the connection closed; see
:class:`GatedConnection`). A writer waits for the ones ahead of it and is woken the moment
its turn comes; it never gives up behind writers of its own process. SQLite's busy timeout
still arbitrates between processes (a CLI command beside a running worker).

Two ways out keep a mistake from hanging: a thread that already holds the gate and begins a
second write transaction (on another connection) does not queue behind itself, and a writer
that waited ``GATE_TIMEOUT_S`` goes on to SQLite's busy handler without the gate — either way
SQLite refuses it after its busy timeout, as it did before there was a gate.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import deque
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("crmsync.store")

#: the longest a writer queues in the process before it tries SQLite's lock regardless
GATE_TIMEOUT_S = 60.0


class WriterGate:
    """A first-come-first-served lock: ``acquire`` queues behind the holder and the earlier
    waiters; ``release`` hands the gate straight to the longest waiter."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._busy = False
        self._owner: int | None = None
        self._queue: deque[threading.Lock] = deque()

    def held_here(self) -> bool:
        """Whether the calling thread holds the gate."""
        return self._owner == threading.get_ident()

    def busy(self) -> bool:
        """Whether some thread holds the gate."""
        return self._busy

    def waiting(self) -> int:
        """How many writers queue for it."""
        return len(self._queue)

    def acquire(self, timeout: float = GATE_TIMEOUT_S) -> bool:
        """Take the gate, waiting up to ``timeout`` seconds for the writers ahead; returns
        whether it was taken."""
        with self._mutex:
            if not self._busy:
                self._busy, self._owner = True, threading.get_ident()
                return True
            turn = threading.Lock()
            turn.acquire()
            self._queue.append(turn)
        handed = turn.acquire(timeout=timeout)
        if not handed:
            with self._mutex:
                if turn in self._queue:  # still waiting: leave the queue
                    self._queue.remove(turn)
                    return False
            turn.acquire()  # handed over between the timeout and the check: it is ours
        self._owner = threading.get_ident()
        return True

    def release(self) -> None:
        """Give the gate to the longest waiter, or free it."""
        with self._mutex:
            self._owner = None
            if self._queue:
                self._queue.popleft().release()  # still busy: the waiter owns it now
            else:
                self._busy = False


_gates: dict[str, WriterGate] = {}
_gates_lock = threading.Lock()


def _forget_gates() -> None:
    """A forked child starts with no writer: a gate held by a parent's thread at the fork
    would otherwise stay taken in the child, where that thread does not exist."""
    global _gates_lock
    _gates.clear()
    _gates_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_gates)


def gate_for(database: str) -> WriterGate:
    """The process's gate of the SQLite file ``database`` (one per file, whichever engine
    opens it)."""
    key = str(Path(database).resolve())
    with _gates_lock:
        return _gates.setdefault(key, WriterGate())


class GatedConnection(sqlite3.Connection):
    """A pysqlite connection that gives the writer gate back once its transaction ended.

    ``make_engine`` passes it as sqlite3's connection ``factory`` for a file database and
    sets :attr:`gate`; the engine's ``begin`` hook calls :meth:`enter_writer` before
    ``BEGIN IMMEDIATE``."""

    gate: WriterGate | None = None
    holds_gate = False

    def enter_writer(self) -> None:
        """Queue for the gate (unless this thread holds it already: see the module doc)."""
        gate = self.gate
        if gate is None or self.holds_gate or gate.held_here():
            return
        self.holds_gate = gate.acquire()
        if not self.holds_gate:
            log.warning("store_writer_gate_timeout", seconds=GATE_TIMEOUT_S)

    def leave_writer(self) -> None:
        """Give the gate back if this connection holds it and no transaction is open."""
        if self.holds_gate and not self.in_transaction and self.gate is not None:
            self.holds_gate = False
            self.gate.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.leave_writer()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.leave_writer()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.holds_gate and self.gate is not None:
                self.holds_gate = False
                self.gate.release()


def enter_writer(dbapi_connection: Any) -> None:
    """Queue for the write lock on ``dbapi_connection`` if it is gated (no-op otherwise)."""
    if isinstance(dbapi_connection, GatedConnection):
        dbapi_connection.enter_writer()


def leave_writer(dbapi_connection: Any) -> None:
    """Give the gate back after a ``BEGIN`` that failed (no-op if not gated or not held)."""
    if isinstance(dbapi_connection, GatedConnection):
        dbapi_connection.leave_writer()
