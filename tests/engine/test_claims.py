"""Outbox claims die with their holder: short, renewed by a heartbeat while the holder lives,
released at once by an embedded process for a dead earlier incarnation, and never taken from a
live holder whose push outlasts one claim length (no double send)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlmodel import col, select

from sync.engine import claims
from sync.engine.context import Counts, Engine
from sync.engine.cycle import poll, run_cycle
from sync.engine.push import claim, drain
from sync.store.db import make_engine, upgrade
from sync.store.models import Outbox
from sync.timefmt import utcnow
from tests.e2e.conftest import FAST_RETRY, World, make_world
from tests.engine.test_push_concurrency import created, creates_sent, deal_names, seed_ruddr

HOST = socket.gethostname()[:40]
#: a claim long enough that its heartbeat's slack outlasts thread stalls on a loaded machine
CLAIM_UNDER_LOAD = 1.5


def second_engine(world: World, db_url: str) -> Engine:
    """Another process's engine (its own holder id) on ``db_url``, against the same vendors."""
    return Engine.from_config(
        world.config,
        make_engine(db_url),
        transports={n: e.transport() for n, e in world.emulators.items()},
        retry=FAST_RETRY,
    )


def rows(engine: Engine, system: str) -> list[Outbox]:
    with engine.session() as session:
        return list(session.exec(select(Outbox).where(Outbox.system == system)).all())


def test_a_holder_id_names_host_process_and_boot() -> None:
    """Two engines of one process get distinct ids of the form host:pid:boot:n."""
    first, second = claims.holder_id(), claims.holder_id()
    assert first != second
    host, pid, boot, _ = first.split(":")
    assert (host, int(pid)) == (HOST, os.getpid()) and len(boot) == 8
    assert second.split(":")[:3] == first.split(":")[:3]


def test_only_provably_dead_holders_of_this_host_count_as_dead() -> None:
    """A gone pid of this host, or this pid with another boot id, is a dead incarnation; a
    live process, this process itself, another host and an older id form are not."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    ours = claims.holder_id()
    boot = ours.split(":")[2]
    assert claims.is_dead_incarnation(f"{HOST}:{gone.pid}:{boot}:1")
    assert claims.is_dead_incarnation(f"{HOST}:{os.getpid()}:deadbeef:1")
    assert not claims.is_dead_incarnation(ours)
    assert not claims.is_dead_incarnation(f"{HOST}:{os.getppid()}:deadbeef:1")
    assert not claims.is_dead_incarnation(f"elsewhere:{gone.pid}:{boot}:1")
    assert not claims.is_dead_incarnation("wrk_0123456789abcdef0123")


def test_the_heartbeat_renews_held_claims_and_stops_with_the_engine(tmp_path: Path) -> None:
    """Claimed rows' ``claimed_until`` moves forward every beat while held; once dropped, or
    once the engine is closed, they are no longer renewed and run out."""
    world = make_world(tmp_path)
    seed_ruddr(world, 6)
    engine = world.engine
    engine.claim_seconds = CLAIM_UNDER_LOAD
    poll(engine, "ruddr")
    for system in world.config.systems:
        poll(engine, system)
    ids = claim(engine, "close", 3)
    assert len(ids) == 3
    first = {r.id: r.claimed_until for r in rows(engine, "close") if r.id in ids}
    give_up = time.monotonic() + 60  # a bound on waiting for the beats, not a goal
    later = first
    while time.monotonic() < give_up and not all(later[i] > first[i] for i in ids):  # type: ignore[operator]
        time.sleep(0.05)
        later = {r.id: r.claimed_until for r in rows(engine, "close") if r.id in ids}
    assert all(later[i] > first[i] for i in ids)  # type: ignore[operator]
    engine.claims.drop(ids[:1])
    engine.close()  # stops the heartbeat: nothing renews after this line
    time.sleep(engine.claim_seconds)  # so every claim has run out by now
    now = utcnow()
    assert all(r.claimed_until < now for r in rows(engine, "close") if r.id in ids)  # type: ignore[operator]


def test_a_dead_holders_rows_are_pushed_by_another_engine_after_one_claim(
    tmp_path: Path, db_url: str
) -> None:
    """Engine A claims Close's creates and dies (its heartbeat stops, nothing is sent): engine
    B takes none of them while A's claims run, then pushes every row once they have run out,
    each deal created once. (How soon after is a timing figure, not asserted here.)"""
    world = make_world(tmp_path)
    seed_ruddr(world, 8)
    upgrade(db_url)
    a, b = second_engine(world, db_url), second_engine(world, db_url)
    for engine in (a, b):
        engine.claim_seconds = 1.0
    for system in world.config.systems:
        poll(a, system)
    ids = claim(a, "close", 100)
    assert len(ids) >= 8
    a.claims.stop()  # a SIGKILL: no renewal, no release
    expiry = min(r.claimed_until for r in rows(a, "close") if r.id in ids and r.claimed_until)
    taken = drain(b, "close")
    # a loaded machine may finish that drain after A's claims ran out: then B may take them
    assert taken["created"] == 0 or utcnow() >= expiry, taken.values
    give_up = time.monotonic() + 60  # a bound on waiting for the condition, not a goal
    while taken["created"] < len(ids) and time.monotonic() < give_up:
        time.sleep(0.1)
        taken.merge(drain(b, "close"))
    assert taken["created"] == len(ids), taken.values
    assert creates_sent(world, "close") == created(b, "close") == len(ids)
    assert deal_names(world, "close").most_common(1)[0][1] == 1
    for engine in (a, b):
        engine.close()
        engine.db.dispose()


def test_a_live_holder_keeps_its_rows_through_pushes_longer_than_a_claim(
    tmp_path: Path, db_url: str
) -> None:
    """Close answers after 2 s, claims last 1.5 s: two engines pushing amount edits to Close
    together never take each other's rows (the heartbeat keeps them), so each edit is sent to
    Close exactly once."""
    world = make_world(tmp_path)
    seed_ruddr(world, 6)
    upgrade(db_url)
    engines = [second_engine(world, db_url) for _ in range(2)]
    # The heartbeat beats every quarter claim, so a claim lapses only if a beat is more than
    # 3/4 of it late. On a loaded 2-core box (the suite's `-n 2`) a thread stalls for over a
    # second at times: 0.3 s claims (0.225 s of slack) were taken from live holders there.
    for engine in engines:
        engine.claim_seconds = CLAIM_UNDER_LOAD
    run_cycle(engines[0])
    for number, deal in enumerate(world.users["ruddr"].all()):
        world.users["ruddr"].edit(deal["id"], amount=float(1000 + number))
    poll(engines[0], "ruddr")  # Close's outbox now holds one update per edited deal
    world.faults("close", latency_ms=CLAIM_UNDER_LOAD * 1000 + 500)  # answers outlast a claim
    world.reset_calls()
    barrier = threading.Barrier(2)
    results: list[Counts] = []

    def run(engine: Engine) -> None:
        barrier.wait()
        results.append(drain(engine, "close", batch=2, concurrency=2))

    threads = [threading.Thread(target=run, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    updates = [r for r in rows(engines[0], "close") if r.op == "update"]
    assert len(updates) >= 6 and {r.status for r in updates} == {"done"}
    assert all(r["pushed"] for r in results), [r.values for r in results]  # both took part
    assert world.calls("close", writes_only=True) == len(updates)  # no row sent twice


def test_an_embedded_process_releases_what_its_dead_earlier_run_claimed(
    tmp_path: Path,
) -> None:
    """At start, rows held by a dead process of this host go back to ``retry``, due now; rows
    held by a live process or by another host are left to their claims."""
    world = make_world(tmp_path)
    seed_ruddr(world, 4)
    engine = world.engine
    for system in world.config.systems:
        poll(engine, system)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    holders = [
        f"{HOST}:{gone.pid}:0badf00d:1",  # dead
        f"{HOST}:{os.getppid()}:0badf00d:1",  # alive
        f"another-host:{gone.pid}:0badf00d:1",  # unknowable
    ]
    pending = [r.id for r in rows(engine, "close")][:3]
    with engine.session() as session:
        for row_id, holder in zip(pending, holders, strict=True):
            row = session.get(Outbox, row_id)
            assert row is not None
            row.status, row.claimed_by, row.claimed_until = "in_flight", holder, utcnow()
            session.add(row)
        session.commit()
    assert claims.release_dead_holders(engine) == 1
    with engine.session() as session:
        after = {
            r.claimed_by: r.status
            for r in session.exec(select(Outbox).where(col(Outbox.id).in_(pending))).all()
        }
    assert after == {None: "retry", holders[1]: "in_flight", holders[2]: "in_flight"}


@pytest.mark.usefixtures("restore_logging")
def test_the_claim_length_comes_from_the_environment_without_patching_the_engine_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``CRMSYNC_CLAIM_SECONDS`` sets this engine's claim length (others keep the 20 s
    default); a non-number is a configuration error naming the variable."""
    from sync.config import ConfigError, load_config
    from sync.runtime.context import build_engine

    config = load_config(
        Path(__file__).resolve().parents[2] / "config.yaml",
        env={"CRMSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"},
    )
    monkeypatch.setenv("CRMSYNC_CLAIM_SECONDS", "7.5")
    tuned = build_engine(config, distributed=False)
    assert tuned.claim_seconds == 7.5
    monkeypatch.delenv("CRMSYNC_CLAIM_SECONDS")
    assert build_engine(config, distributed=False).claim_seconds == claims.CLAIM_SECONDS == 20
    monkeypatch.setenv("CRMSYNC_CLAIM_SECONDS", "soon")
    with pytest.raises(ConfigError, match="CRMSYNC_CLAIM_SECONDS"):
        build_engine(config, distributed=False)
