"""A drain works in bounded slices (issue 25): past its deadline, or once its worker is
shutting down, it claims nothing more, gives back what it has not sent — a create's fresh
intent with it, since nothing can have been made — and says rows may remain; the next slice
sends them, once each, counting no attempt for the give-back."""

from __future__ import annotations

import time

from sqlmodel import select

from sync.engine.push import drain
from sync.store.models import Outbox
from tests.e2e.conftest import World
from tests.e2e.test_scenarios import count_named
from tests.engine.conftest import BACKLOG


def rows(world, status: str) -> list[Outbox]:  # type: ignore[no-untyped-def]
    with world.engine.session() as session:
        query = select(Outbox).where(Outbox.system == "ruddr", Outbox.status == status)
        return list(session.exec(query).all())


def test_a_slice_past_its_deadline_claims_nothing(ruddr_backlog: World) -> None:
    world = ruddr_backlog
    counts = drain(world.engine, "ruddr", until=time.monotonic() - 1)
    assert counts["sliced"] == 1 and not counts["created"]
    assert not rows(world, "in_flight")


def test_a_stopping_drain_gives_back_its_unsent_rows_and_the_next_sends_them_once(
    ruddr_backlog: World,
) -> None:
    world = ruddr_backlog
    sent = world.emulators["ruddr"].requests

    def stop() -> bool:  # the worker shuts down once the first create has landed
        return any(r["method"] == "POST" for r in sent)

    counts = drain(world.engine, "ruddr", batch=len(BACKLOG), concurrency=2, stop=stop)
    assert counts["sliced"] == 1
    assert 0 < counts["created"] < len(BACKLOG), counts.values
    assert not rows(world, "in_flight"), "nothing stays claimed"
    left = rows(world, "retry") + rows(world, "pending")
    assert left and all(row.intent_at is None for row in left), "unsent: no intent"
    assert all(row.attempts == 0 for row in left), "an attempt never sent is not counted"
    world.reset_calls()
    rest = drain(world.engine, "ruddr")
    assert not rest["sliced"] and rest["created"] == len(left)
    posts = [r for r in world.emulators["ruddr"].requests if r["method"] == "POST"]
    assert len(posts) == len(left), "no look-up: the unsent creates are simply sent"
    for name in BACKLOG:
        assert count_named(world, "ruddr", name) == 1


def test_a_slice_of_a_rate_limited_system_claims_no_more_than_it_can_send(
    ruddr_backlog: World,
) -> None:
    """Under a rate limit a slice claims (and journals create intents for) only what the limit
    lets it send before it ends — a burst and the rate for the time left — not a batch of 200:
    a worker killed holding them would leave every one in doubt, to be looked up before it is
    sent again. The rest is claimed by later slices and made once each."""
    from sync.config.models import RateLimitConfig
    from sync.engine.push.drain import slice_rows
    from sync.store.models import Journal

    world = ruddr_backlog
    cfg = world.engine.config.systems["ruddr"]
    cfg.rate_limit = RateLimitConfig(rate=1, burst=2)  # 1 s left: 1 + 2 rows a claim
    assert slice_rows(cfg, 1.0) == 3 and slice_rows(cfg, 1.0, per_request=100) == 300
    sent = world.emulators["ruddr"].requests

    def stop() -> bool:
        return any(r["method"] == "POST" for r in sent)

    first = drain(world.engine, "ruddr", concurrency=2, until=time.monotonic() + 1, stop=stop)
    assert first["sliced"] == 1 and first["created"] >= 1
    with world.engine.session() as session:
        intents = session.exec(
            select(Journal).where(Journal.system == "ruddr", Journal.action == "create_intent")
        ).all()
    assert len(intents) <= 3, f"{len(intents)} intents journaled by a 3-row slice"
    while drain(world.engine, "ruddr", until=time.monotonic() + 1)["sliced"]:
        pass
    for name in BACKLOG:
        assert count_named(world, "ruddr", name) == 1
