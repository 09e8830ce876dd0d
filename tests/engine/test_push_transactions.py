"""A drain never holds the store's write lock while a vendor answers: its transactions (claim,
intents, apply) are short and none of them waits for a request — on SQLite one such
transaction would stop every other drain of the process for as long as the vendor takes."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from sync.engine.cycle import poll
from sync.engine.push import drain
from tests.e2e.conftest import World, make_world

pytestmark = pytest.mark.slow


def write_lock_taken(database: Path) -> bool:
    """Whether some connection holds the SQLite file's write lock right now (a connection of
    our own that waits for nothing asks for it and gives it back)."""
    probe = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return True
    finally:
        if probe.in_transaction:
            probe.execute("ROLLBACK")
        probe.close()
    return False


def watch_requests(world: World, database: Path) -> list[str]:
    """Every emulator checks the store's write lock while it answers a request (the request is
    in flight: the client waits for this answer); returns the list the requests answered under
    a held lock go to."""
    held: list[str] = []
    for emulator in world.emulators.values():
        answer = emulator._log

        def logged(request: Any, status: int, started: float, answer: Any = answer) -> None:
            if write_lock_taken(database):
                held.append(f"{request.method} {request.url.path}")
            answer(request, status, started)

        emulator._log = logged  # type: ignore[method-assign]
    return held


def test_no_write_transaction_of_a_drain_spans_a_vendor_request(tmp_path: Path) -> None:
    """Drains pushing a load to every target, with a third of the creates' answers lost after
    the vendor made the deal (so recoveries look deals up and creates are sent again), one
    push at a time on the draining thread: during every request the drains send, the store's
    write lock is free — no claim, intent or apply transaction is open across a vendor call.
    (The claims' heartbeat, the only other writer, is slowed out of the way.)"""
    world = make_world(tmp_path)
    world.emulators["ruddr"].reset_state(seed=7, opportunities=12)
    engine = world.engine
    engine.claim_seconds = 3600.0
    for system in world.config.systems:
        poll(engine, system)
    targets = [name for name in world.config.systems if name != "ruddr"]
    for system in targets:
        world.faults(system, fail_after_commit_rate=0.3)
    held = watch_requests(world, tmp_path / "crmsync.db")
    sent = 0
    for _ in range(4):  # a lost answer's row comes back due at once (no backoff here)
        for system in targets:
            counts = drain(engine, system, concurrency=1)
            sent += counts["created"] + counts["adopted"]
    try:
        assert sent >= 12 * len(targets) // 2  # the drains did push, recoveries included
        assert held == []
    finally:
        engine.close()
