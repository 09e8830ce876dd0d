"""Per-process runtime context: the config, the store engine and the crmsync Engine, built once.

:func:`build_engine` is the one way a process builds its Engine (the CLI, workers, the
scheduler, the admin API, the benches' recovery runs): the store, transports, limiter, retry
and tuning are passed in, and nothing is patched on a module. Workers build theirs once, here
(:func:`engine`), from ``$CRMSYNC_CONFIG`` (default ./config.yaml), so every process of a
deployment reads the same file. In distributed mode the connectors share the Redis token
bucket; in embedded mode each connector keeps its in-process bucket.

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
from collections.abc import Mapping
from typing import Any

import httpx
import redis
import sqlalchemy as sa

from sync.config import Config, ConfigError, load_config
from sync.config.reader import ConfigProblem
from sync.engine.claims import CLAIM_SECONDS
from sync.engine.context import BACKOFF_BASE, Engine
from sync.runtime import collector
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


def build_engine(
    config: Config,
    *,
    distributed: bool,
    db: sa.Engine | None = None,
    transports: Mapping[str, httpx.BaseTransport] | None = None,
    limiter: Any = None,
    retry: Any = None,
    claim_seconds: float | None = None,
    backoff_base: float | None = None,
) -> Engine:
    """The one way a process builds its Engine; everything is passed in, nothing patched.

    ``db``: the store engine (default: a new one on ``config.store.url``). ``limiter``: the
    connectors' rate limiter (default: the shared Redis bucket when ``distributed`` and a
    broker is configured, else each connector's own). ``claim_seconds`` / ``backoff_base``:
    default ``$CRMSYNC_CLAIM_SECONDS`` / ``$CRMSYNC_BACKOFF_BASE``, else the engine's."""
    if claim_seconds is None:
        claim = os.environ.get(CLAIM_ENV)
        claim_seconds = _positive(CLAIM_ENV, claim) if claim else CLAIM_SECONDS
    if backoff_base is None:
        backoff = os.environ.get(BACKOFF_ENV)
        backoff_base = float(backoff) if backoff else BACKOFF_BASE
    if limiter is None and distributed and config.broker.url:
        from sync.runtime.redis_limiter import from_config

        limiter = from_config(redis_client(config.broker.url), config.systems, prefix=prefix())
    return Engine.from_config(
        config,
        db if db is not None else make_engine(config.store.url),
        transports=transports,
        limiter=limiter,
        retry=retry,
        claim_seconds=claim_seconds,
        backoff_base=backoff_base,
    )


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
            collector.tune()  # a worker's process: see sync.runtime.collector
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
