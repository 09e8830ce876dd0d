"""A Redis lock with a token, renewal and expiry — "one poll per system at a time".

Built on redis-py's :class:`redis.lock.Lock` (SET NX PX with a random token; release and extend
are Lua scripts that check the token, so a process never frees a lock another one now holds —
https://redis.io/docs/latest/develop/use/patterns/distributed-locks/). On top of it:

- ``held()`` renews the lock from a daemon thread every ``ttl / 3`` while the work runs, so a
  long poll keeps it, and a crashed process (SIGKILL) loses it within ``ttl`` by expiry;
- ``lost`` turns true if a renewal finds the lock gone (expired during a long pause), so the
  holder can stop rather than work alongside the next holder.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
import structlog
from redis.exceptions import LockError, RedisError
from redis.lock import Lock

log = structlog.get_logger("crmsync.locks")


class RenewedLock:
    """A named, expiring Redis lock renewed in the background while held."""

    def __init__(self, client: redis.Redis[Any], name: str, *, ttl: float = 30.0) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.name = name
        self.ttl = ttl
        # thread_local=False: the renewal thread must see the token the owner thread set.
        self._lock = Lock(client, name, timeout=ttl, thread_local=False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    @property
    def token(self) -> bytes | None:
        token = self._lock.local.token
        return token if isinstance(token, bytes) else None

    def acquire(self, *, wait: float | None = None) -> bool:
        """Take the lock (give up after ``wait`` seconds; ``None`` = do not wait)."""
        blocking = wait is not None and wait > 0
        got = bool(
            self._lock.acquire(blocking=blocking, blocking_timeout=wait if blocking else None)
        )
        if got:
            self.lost = False
            self._start_renewal()
        return got

    def release(self) -> None:
        """Free the lock if we still hold it (never someone else's)."""
        self._stop_renewal()
        # Expired and maybe taken by another holder: nothing of ours to free.
        with contextlib.suppress(LockError):
            self._lock.release()

    def owned(self) -> bool:
        try:
            return bool(self._lock.owned())
        except RedisError:
            return False

    def renew(self) -> bool:
        """Push the expiry ``ttl`` into the future; False if the lock is no longer ours."""
        try:
            self._lock.extend(self.ttl, replace_ttl=True)
        except LockError:
            self.lost = True
            return False
        return True

    @contextmanager
    def held(self, *, wait: float | None = None) -> Iterator[bool]:
        """``with lock.held() as got:`` — ``got`` says whether we hold it; released on exit."""
        got = self.acquire(wait=wait)
        try:
            yield got
        finally:
            if got:
                self.release()

    def _start_renewal(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._renew_loop, name=f"renew:{self.name}", daemon=True
        )
        self._thread.start()

    def _stop_renewal(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.ttl)
        self._thread = None

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                if not self.renew():
                    log.warning("lock_lost", lock=self.name)
                    return
            except RedisError as exc:  # Redis away for a moment: try again next period
                log.warning("lock_renew_failed", lock=self.name, error=str(exc))
