"""The Redis token bucket against the real Redis: shared rate, bursts, 429 penalties."""

from __future__ import annotations

import threading
import time
from typing import Any

import redis

from sync.connectors.ratelimit import Adaptive, RateLimiter
from sync.runtime.redis_limiter import RedisTokenBucket


def _bucket(client: redis.Redis[Any], prefix: str, rate: float, burst: float) -> RedisTokenBucket:
    bucket = RedisTokenBucket(client, prefix=prefix)
    bucket.configure("close", rate, burst)
    return bucket


def test_implements_the_rate_limiter_protocol(redis_client: redis.Redis[Any], prefix: str) -> None:
    """The Redis bucket is a RateLimiter the HTTP layer accepts."""
    assert isinstance(RedisTokenBucket(redis_client, prefix=prefix), RateLimiter)


def test_burst_is_free_then_tokens_cost_one_over_rate(
    redis_client: redis.Redis[Any], prefix: str
) -> None:
    """The first ``burst`` tokens need no wait; the next ones wait 1/rate each, in order."""
    bucket = _bucket(redis_client, prefix, rate=10, burst=3)
    waits = [bucket.reserve("close") for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0.05 < waits[3] <= 0.1
    assert 0.15 < waits[4] <= 0.2


def test_two_processes_share_one_bucket(redis_client: redis.Redis[Any], prefix: str) -> None:
    """Two limiter objects (two workers) drawing on one system split one rate, not two."""
    first = _bucket(redis_client, prefix, rate=20, burst=1)
    second = _bucket(redis.Redis.from_url("redis://127.0.0.1:6379/0"), prefix, rate=20, burst=1)
    sent: list[float] = []
    lock = threading.Lock()

    def worker(bucket: RedisTokenBucket) -> None:
        for _ in range(10):
            bucket.acquire("close")
            with lock:
                sent.append(time.monotonic())

    threads = [threading.Thread(target=worker, args=(b,)) for b in (first, second)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    # 20 tokens at 20/s with a burst of 1: at least 19 intervals of 50 ms.
    assert elapsed >= 0.9
    assert len(sent) == 20


def test_unconfigured_systems_are_not_limited(redis_client: redis.Redis[Any], prefix: str) -> None:
    """A system without a rate limit in config never waits and writes nothing to Redis."""
    bucket = _bucket(redis_client, prefix, rate=1, burst=1)
    assert [bucket.reserve("ruddr") for _ in range(50)] == [0.0] * 50
    assert not redis_client.exists(bucket.key("ruddr"))


def test_penalize_blocks_and_adapts_the_rate_down(
    redis_client: redis.Redis[Any], prefix: str
) -> None:
    """After a 429, nobody may send for the penalty, the bucket starts empty, the rate halves."""
    bucket = _bucket(redis_client, prefix, rate=100, burst=10)
    bucket.penalize("close", 0.5)
    assert bucket.factor("close") == 0.5
    wait = bucket.reserve("close")
    # blocked 0.5 s, then an empty bucket at half rate: one token costs 1/50 s more.
    assert 0.5 < wait <= 0.53


def test_a_hold_blocks_without_slowing_and_a_resize_is_shared(
    redis_client: redis.Redis[Any], prefix: str
) -> None:
    """A vendor's "window nearly spent" (``hold``) blocks every worker for its time but is no
    refusal: the rate factor stays whole. A size the vendor announces (``resize``) applies to
    the bucket in Redis from the next token on, keeping the tokens it has."""
    bucket = _bucket(redis_client, prefix, rate=100, burst=10)
    assert isinstance(bucket, Adaptive)
    start = time.monotonic()
    bucket.hold("close", 0.5)
    assert bucket.factor("close") == 1.0
    wait = bucket.reserve("close")
    spent = time.monotonic() - start  # a loaded machine takes a while between the two calls
    assert 0.5 - spent <= wait <= 0.52
    other = _bucket(redis_client, prefix, rate=100, burst=10)
    other.resize("close", 10, 2)
    waits = [other.reserve("close") for _ in range(3)]  # the bucket is empty after the hold
    assert waits[1] - waits[0] >= 0.09  # a token a tenth of a second, shared with ``bucket``


def test_the_bucket_key_expires(redis_client: redis.Redis[Any], prefix: str) -> None:
    """Bucket state carries a TTL, so retired systems leave nothing behind in Redis."""
    bucket = _bucket(redis_client, prefix, rate=5, burst=5)
    bucket.reserve("close")
    assert 0 < redis_client.pttl(bucket.key("close")) <= 62_000
