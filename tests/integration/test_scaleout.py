"""Scale-out on the distributed runtime (issue 25): one system's backlog spreads over the
workers — a drain whose claim comes back full queues another drain of the same system, an
idle worker takes it and claims beside the first (``SKIP LOCKED``) — and every deal still
arrives once."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from celery import Celery
from sqlmodel import col, func, select

from sync.engine.cycle import poll
from sync.store.models import Outbox, Record
from tests.integration.conftest import Stack, wait_for
from tests.integration.test_distributed import _names

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

#: more than one drain's claim (200 rows): the first claim comes back full
DEALS = 230


def _left_for(stack: Stack, system: str) -> int:
    engine = stack.engine()
    try:
        with engine.session() as session:
            query = select(func.count()).select_from(Outbox)
            query = query.where(Outbox.system == system, col(Outbox.status) != "done")
            return int(session.exec(query).one())
    finally:
        engine.close()
        engine.db.dispose()


def _records(stack: Stack) -> int:
    engine = stack.engine()
    try:
        with engine.session() as session:
            return int(session.exec(select(func.count()).select_from(Record)).one())
    finally:
        engine.close()
        engine.db.dispose()


def _close_drains(stack: Stack, worker: str) -> list[dict[str, object]]:
    lines = (line for line in stack.log_text(worker).splitlines() if line.startswith("{"))
    events = [json.loads(line) for line in lines]
    return [e for e in events if e.get("event") == "drain_done" and e.get("system") == "close"]


def test_one_systems_backlog_is_pushed_by_both_workers_once(
    make_stack: Callable[..., Stack],
) -> None:
    """A single drain task for Close, two workers: both create deals in Close (the first
    drain's full claim queued a second), and every deal is there once."""
    stack = make_stack(seed_opportunities=DEALS)
    engine = stack.engine()
    try:
        for system in ("ruddr", "close"):
            poll(engine, system)  # the outbox now owes Close a create per Ruddr deal
    finally:
        engine.close()
        engine.db.dispose()
    owed = _left_for(stack, "close")
    assert owed > 200, owed
    close = stack.emulators["close"]
    httpx.post(f"{close.root_url}/_emulator/faults", json={"latency_ms": 100}).raise_for_status()
    stack.worker("w1")
    stack.worker("w2")
    app = Celery("crmsync-test", broker=stack.env["CRMSYNC_BROKER_URL"])
    try:
        wait_for(lambda: len(app.control.ping(timeout=0.5) or []) >= 2, 60, "two workers up")
    finally:
        app.close()
    stack.send("crmsync.drain_system", "close")
    wait_for(lambda: _left_for(stack, "close") == 0, 120, "Close's backlog to be pushed")
    created = {
        w: sum(int(str(e.get("created", 0))) for e in _close_drains(stack, w)) for w in ("w1", "w2")
    }
    assert all(created.values()), f"one worker did all of Close's creates: {created}"
    assert sum(created.values()) == owed
    httpx.post(f"{close.root_url}/_emulator/faults", json={}).raise_for_status()
    held = sum(_names(stack, "close").values())  # seeded names repeat: count deals instead
    assert held == _records(stack), "Close holds a deal twice (or misses one)"
