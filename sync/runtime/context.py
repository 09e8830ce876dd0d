"""Per-process runtime context: the config, the store engine and the crmsync Engine, built once.

Workers, the scheduler and the admin API all build their Engine here, from ``$CRMSYNC_CONFIG``
(default ./config.yaml), so every process of a deployment reads the same file. In distributed
mode the connectors share the Redis token bucket; in embedded mode each connector keeps its
in-process bucket.

Environment knobs (all optional):

- ``CRMSYNC_REDIS_PREFIX`` — prefix of every Redis key (locks, buckets, leadership); lets two
  deployments, or two tests, share one Redis.
- ``CRMSYNC_CLAIM_SECONDS`` — how long a claim on an outbox row lasts unless its holder renews
  it (default 20 s; a heartbeat renews it every quarter of that while the process lives). The
  pushes of a process killed mid-push are redone by another within about that long.
- ``CRMSYNC_BACKOFF_BASE`` — first wait after a failed push, doubled per attempt.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis

from sync.config import Config, ConfigError, load_config
from sync.config_reader import ConfigProblem
from sync.engine.state import Engine
from sync.store.db import make_engine

PREFIX_ENV = "CRMSYNC_REDIS_PREFIX"
CLAIM_ENV = "CRMSYNC_CLAIM_SECONDS"
BACKOFF_ENV = "CRMSYNC_BACKOFF_BASE"

_lock = threading.RLock()  # build_engine takes it again for the Redis client
_engine: Engine | None = None
_redis: dict[str, redis.Redis[Any]] = {}


def prefix() -> str:
    return os.environ.get(PREFIX_ENV) or "crmsync"


def redis_client(url: str) -> redis.Redis[Any]:
    """One client (connection pool) per URL per process."""
    with _lock:
        if url not in _redis:
            _redis[url] = redis.Redis.from_url(url, health_check_interval=30)
        return _redis[url]


def build_engine(config: Config, *, distributed: bool) -> Engine:
    """An Engine on ``config.store.url``; connectors share the Redis bucket when distributed."""
    limiter: Any = None
    if distributed and config.broker.url:
        from sync.runtime.redis_limiter import from_config

        limiter = from_config(redis_client(config.broker.url), config.systems, prefix=prefix())
    engine = Engine.from_config(config, make_engine(config.store.url), limiter=limiter)
    claim = os.environ.get(CLAIM_ENV)
    if claim:
        engine.claim_seconds = _positive(CLAIM_ENV, claim)
    backoff = os.environ.get(BACKOFF_ENV)
    if backoff:
        engine.backoff_base = float(backoff)
    return engine


def _positive(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if number <= 0:
        raise ConfigError([ConfigProblem(f"${name}", (), "a positive number of seconds", value)])
    return number


def engine(*, distributed: bool = True) -> Engine:
    """This process's Engine, built on first use from ``$CRMSYNC_CONFIG``."""
    global _engine
    with _lock:
        if _engine is None:
            _engine = build_engine(load_config(), distributed=distributed)
        return _engine


def reset() -> None:
    """Forget the Engine (after a fork, or on a config reload)."""
    global _engine
    with _lock:
        if _engine is not None:
            _engine.close()
            _engine.db.dispose(close=False)
        _engine = None
        _redis.clear()
