"""The distributed scheduler's enqueueing (sync.scheduler.EnqueueDispatcher) against the real
Redis as the Celery broker: only the leader enqueues, each job once per period, and the task
lands on the system's own queue of the configured broker."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from sync.runtime.starters import celery_sender
from sync.scheduler import EnqueueDispatcher
from tests.e2e.conftest import World, make_world

#: a database of its own: the queues' keys are global names (``crmsync.close``)
BROKER = os.environ.get("CRMSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
BROKER_URL = f"{BROKER}/11"


@pytest.fixture
def broker() -> Iterator[redis.Redis[Any]]:
    client: redis.Redis[Any] = redis.Redis.from_url(BROKER_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis at {BROKER_URL} is not reachable: {exc}")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path, seed_opportunities=0)


def _queued(client: redis.Redis[Any], queue: str) -> list[str]:
    """The task names waiting on a queue (kombu keeps a queue as a Redis list of JSON)."""
    return [json.loads(raw)["headers"]["task"] for raw in client.lrange(queue, 0, -1)]


def test_two_schedulers_enqueue_each_poll_once_per_period_on_the_systems_queue(
    broker: redis.Redis[Any], world: World
) -> None:
    config = world.config.model_copy(
        update={"broker": world.config.broker.model_copy(update={"url": BROKER_URL})}
    )
    prefix = f"crmsync-test-{uuid.uuid4().hex[:12]}"
    send = celery_sender(config)
    schedulers = [EnqueueDispatcher(broker, send, prefix=prefix) for _ in range(2)]
    for scheduler in schedulers:
        scheduler.periods["poll:close"] = 60.0
    for _ in range(3):  # each fires three times within the period
        for scheduler in schedulers:
            scheduler.poll("close")
    assert _queued(broker, "crmsync.close") == ["crmsync.poll_system"]
    assert _queued(broker, "crmsync.admin") == []
    assert sum(s.leadership.check() for s in schedulers) == 1  # one leader, still leading


def test_the_leader_enqueues_no_poll_of_a_stretched_scan_system_before_its_interval(
    broker: redis.Redis[Any], tmp_path: Path
) -> None:
    """Ruddr's listing outgrew its 1 s interval under its limit (sync.engine.pace): the
    leader's Ruddr tick enqueues nothing while Close's enqueues its poll as ever."""
    from sync.engine.pace import poll_due
    from sync.scheduler import EmbeddedDispatcher
    from tests.engine.test_pace import stretched_world

    world = stretched_world(tmp_path)
    EmbeddedDispatcher(world.engine).poll("ruddr")  # the listing that measures it
    config = world.config.model_copy(
        update={"broker": world.config.broker.model_copy(update={"url": BROKER_URL})}
    )
    prefix = f"crmsync-test-{uuid.uuid4().hex[:12]}"
    leader = EnqueueDispatcher(
        broker, celery_sender(config), prefix=prefix, due=lambda s: poll_due(world.engine, s)
    )
    leader.periods.update({"poll:ruddr": 1.0, "poll:close": 1.0})
    leader.poll("ruddr")
    leader.poll("close")
    assert _queued(broker, "crmsync.ruddr") == []
    assert _queued(broker, "crmsync.close") == ["crmsync.poll_system"]
    world.engine.close()
