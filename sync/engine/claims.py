"""Outbox claims that die with their holder.

A drain claims the rows it pushes (``Outbox.claimed_by`` / ``claimed_until``). A claim is
short (``Engine.claim_seconds``, default 20 s) and renewed by a heartbeat thread every quarter
of that while its holder lives, for the rows it still holds; so a process killed mid-push
(SIGKILL, OOM, a lost machine) stops renewing and its rows can be claimed again within one
claim length, while a live but slow push (a long vendor answer) is never taken away from it.

Holder ids are ``host:pid:boot:n`` — ``boot`` is drawn once per process (again after a fork),
``n`` counts the engines of the process. An embedded process (single-process by design) can so
tell, at start, which ``in_flight`` rows an earlier incarnation of itself left: same host, and
either that pid is gone or it is now ours with another boot id. :func:`release_dead_holders`
puts those back at once rather than after their claim runs out; rows of a live process, or of
another host, are never released (they expire by themselves if their holder is dead).

The heartbeat can also run a *sweep* every tick (distributed workers enqueue drains for the
systems with due rows, the rows of a dead worker among them), so the work left by a killed
worker is picked up within seconds of its claims expiring, not at the next poll.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import structlog

from sync.store import claims as stored_claims
from sync.store.db import supports_threads
from sync.timefmt import utcnow

if TYPE_CHECKING:
    from sync.engine.context import Engine

log = structlog.get_logger("crmsync.claims")

#: default claim length; the heartbeat renews held claims every quarter of it
CLAIM_SECONDS = 20.0
_HOST = socket.gethostname()[:40] or "localhost"
_boot = uuid.uuid4().hex[:8]
_serial = itertools.count(1)


def _new_boot() -> None:
    """A forked child is another process: its claims must not pass for its parent's."""
    global _boot, _serial
    _boot = uuid.uuid4().hex[:8]
    _serial = itertools.count(1)


os.register_at_fork(after_in_child=_new_boot)


def holder_id() -> str:
    """A new holder id for one engine of this process: ``host:pid:boot:n``."""
    return f"{_HOST}:{os.getpid()}:{_boot}:{next(_serial)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def is_dead_incarnation(holder: str) -> bool:
    """Whether ``holder`` is provably a dead process of this host (see the module doc).
    Ids of another form (older versions) or of another host cannot be proved dead."""
    parts = holder.split(":")
    if len(parts) != 4 or parts[0] != _HOST or not parts[1].isdigit():
        return False
    pid, boot = int(parts[1]), parts[2]
    if pid == os.getpid():
        return boot != _boot
    return not _pid_alive(pid)


def release_dead_holders(engine: Engine) -> int:
    """Put back (due now) the rows claimed by dead earlier processes of this host; returns how
    many. Embedded mode calls it at start; the rows' pushes then run in this process's cycle."""
    with engine.session() as session:
        holders = stored_claims.in_flight_holders(session)
        dead = [h for h in holders if h and h != engine.worker_id and is_dead_incarnation(h)]
        if not dead:
            return 0
        count = stored_claims.release_holders(session, dead, utcnow())
        session.commit()
    log.warning("claims_released", rows=count, holders=dead, reason="their process died")
    return count


class ClaimKeeper:
    """The rows one engine holds, and the heartbeat that renews their claims.

    Drains call :meth:`hold` after a claim and :meth:`drop` once the rows are settled. Where
    sessions cannot run on two threads (an in-memory SQLite store), there is no thread:
    :meth:`renew_if_due` renews from the drain itself, between batches."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._held: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_renewal = 0.0
        self._sweep: Callable[[], object] | None = None

    @property
    def interval(self) -> float:
        return max(0.05, self.engine.claim_seconds / 4)

    def until(self) -> dt.datetime:
        """The ``claimed_until`` of a claim made or renewed now."""
        return utcnow() + dt.timedelta(seconds=self.engine.claim_seconds)

    def hold(self, ids: Iterable[int]) -> None:
        with self._lock:
            self._held.update(ids)
        self._ensure_thread()

    def drop(self, ids: Iterable[int]) -> None:
        with self._lock:
            self._held.difference_update(ids)

    def held(self) -> set[int]:
        with self._lock:
            return set(self._held)

    @property
    def watching(self) -> bool:
        return self._sweep is not None

    def watch(self, sweep: Callable[[], object]) -> None:
        """Run ``sweep`` on every heartbeat (and start the heartbeat now)."""
        self._sweep = sweep
        self._ensure_thread()

    def renew(self) -> int:
        """Push back the expiry of every row this engine still holds; returns how many."""
        self._last_renewal = time.monotonic()
        ids = sorted(self.held())
        if not ids:
            return 0
        with self.engine.session() as session:
            renewed = stored_claims.renew_claims(session, ids, self.engine.worker_id, self.until())
            session.commit()
        return renewed

    def renew_if_due(self) -> None:
        """Renew from the caller's thread when the heartbeat cannot run (no thread)."""
        if self._thread is None and time.monotonic() - self._last_renewal >= self.interval:
            self.renew()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        if not supports_threads(self.engine.db):
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(
                target=self._beat, args=(self._stop,), name="crmsync-claims", daemon=True
            )
            self._thread.start()

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            try:
                self.renew()
                if self._sweep is not None:
                    self._sweep()
            except Exception as exc:  # a store or broker hiccup: try again next beat
                log.warning("claims_heartbeat_failed", error=f"{type(exc).__name__}: {exc}")

    def stop(self) -> None:
        """Stop the heartbeat (the engine is closing; held claims then expire on their own).
        The engine stays usable: the next :meth:`hold` starts a new heartbeat."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._thread = None
        self._stop = threading.Event()


def stranded_systems(engine: Engine) -> list[str]:
    """Systems with rows whose claim ran out while ``in_flight``: their holder died."""
    with engine.read_session() as session:
        return stored_claims.stranded_systems(session, engine.systems, utcnow())
