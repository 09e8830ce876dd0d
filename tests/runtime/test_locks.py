"""The renewed Redis lock and scheduler leadership against the real Redis."""

from __future__ import annotations

import time
from typing import Any

import redis

from sync.runtime.leader import Leadership, claim_slot
from sync.runtime.locks import RenewedLock


def test_only_one_holder_at_a_time(redis_client: redis.Redis[Any], prefix: str) -> None:
    """A second lock on the same name is refused while the first is held, granted after."""
    first = RenewedLock(redis_client, f"{prefix}:poll:close", ttl=5)
    second = RenewedLock(redis_client, f"{prefix}:poll:close", ttl=5)
    assert first.acquire()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


def test_release_never_frees_someone_elses_lock(
    redis_client: redis.Redis[Any], prefix: str
) -> None:
    """A holder whose lock expired and was retaken cannot release the new holder's lock."""
    name = f"{prefix}:poll:close"
    stale = RenewedLock(redis_client, name, ttl=0.2)
    assert stale.acquire()
    stale._stop_renewal()  # a frozen process: no renewals
    time.sleep(0.3)
    fresh = RenewedLock(redis_client, name, ttl=5)
    assert fresh.acquire()
    stale.release()
    assert fresh.owned()
    assert redis_client.get(name) == fresh.token
    fresh.release()


def test_renewal_keeps_a_long_holder(redis_client: redis.Redis[Any], prefix: str) -> None:
    """A holder working longer than the TTL keeps the lock through background renewal."""
    name = f"{prefix}:poll:ruddr"
    lock = RenewedLock(redis_client, name, ttl=0.3)
    with lock.held() as got:
        assert got
        time.sleep(0.8)
        assert lock.owned()
        assert not RenewedLock(redis_client, name, ttl=1).acquire()
    assert not redis_client.exists(name)


def test_a_crashed_holder_loses_the_lock_by_expiry(
    redis_client: redis.Redis[Any], prefix: str
) -> None:
    """Without renewals (the holder died) the lock frees itself after the TTL."""
    name = f"{prefix}:poll:truto"
    dead = RenewedLock(redis_client, name, ttl=0.2)
    assert dead.acquire()
    dead._stop_renewal()
    time.sleep(0.3)
    assert not dead.renew()
    assert dead.lost
    assert RenewedLock(redis_client, name, ttl=1).acquire()


def test_one_leader_and_takeover_after_resign(redis_client: redis.Redis[Any], prefix: str) -> None:
    """Of two schedulers exactly one leads; when it resigns the other takes over."""
    a = Leadership(redis_client, prefix=prefix, ttl=2)
    b = Leadership(redis_client, prefix=prefix, ttl=2)
    assert a.check()
    assert not b.check()
    assert a.check()  # renewing keeps it
    a.resign()
    assert b.check()
    assert not a.check()
    b.resign()


def test_claim_slot_lets_one_enqueue_per_period(
    redis_client: redis.Redis[Any], prefix: str
) -> None:
    """Two schedulers ticking in the same period enqueue a job once; the next period again."""
    assert claim_slot(redis_client, "poll:close", 0.3, prefix=prefix)
    assert not claim_slot(redis_client, "poll:close", 0.3, prefix=prefix)
    assert claim_slot(redis_client, "poll:ruddr", 0.3, prefix=prefix)
    time.sleep(0.3)
    assert claim_slot(redis_client, "poll:close", 0.3, prefix=prefix)
