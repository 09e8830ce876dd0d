"""The distributed runtime end to end: real Redis, PostgreSQL, celery workers, schedulers."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from sync.engine import operations
from sync.engine.verify import verify
from sync.store.models import Outbox
from tests.integration.conftest import Stack, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]


def _converged(stack: Stack) -> bool:
    engine = stack.engine()
    try:
        if operations.open_outbox(engine):
            return False
        return verify(engine).clean
    finally:
        engine.close()
        engine.db.dispose()


def _names(stack: Stack, system: str) -> Counter[str]:
    served = stack.emulators[system]
    engine = stack.engine()
    try:
        return Counter(
            str(engine.mapper.to_canonical(system, r.data, engine.refs).get("name"))
            for page in engine.connector(system).scan()
            for r in page
        )
    finally:
        engine.close()
        engine.db.dispose()
        del served


def test_converges_with_two_workers_and_the_scheduler(make_stack: Callable[..., Stack]) -> None:
    """Deals seeded in Ruddr and Close reach the other system, once, via two workers."""
    stack = make_stack(seed_opportunities=4)
    stack.worker("w1")
    stack.worker("w2")
    stack.scheduler("s1")
    wait_for(lambda: _converged(stack), 60, "both systems to hold every deal")
    for system in ("ruddr", "close"):
        names = _names(stack, system)
        assert names and max(names.values()) == 1, f"duplicates in {system}: {names}"
    both = stack.log_text("w1") + stack.log_text("w2")
    assert "crmsync.drain_system" in both and "crmsync.poll_system" in both


def test_a_worker_killed_mid_push_loses_nothing_and_duplicates_nothing(
    make_stack: Callable[..., Stack],
) -> None:
    """SIGKILL during slow creates in Close: another worker redoes the work, no duplicates."""
    stack = make_stack(
        seed_opportunities=6,
        extra_env={"CRMSYNC_CLAIM_SECONDS": "3", "CRMSYNC_VISIBILITY_TIMEOUT": "5"},
    )
    close = stack.emulators["close"]
    httpx.post(f"{close.root_url}/_emulator/faults", json={"latency_ms": 700})
    victim = stack.worker("victim")
    stack.send("crmsync.poll_system", "close")
    stack.send("crmsync.poll_system", "ruddr")

    def close_push_in_flight() -> bool:
        engine = stack.engine()
        try:
            with engine.session() as session:
                rows = session.exec(
                    select(Outbox).where(
                        Outbox.system == "close", col(Outbox.status) == "in_flight"
                    )
                ).all()
            return bool(rows)
        finally:
            engine.db.dispose()

    wait_for(close_push_in_flight, 40, "a push to Close in flight")
    time.sleep(0.8)  # inside a create request
    stack.kill(victim, signal.SIGKILL)
    httpx.post(f"{close.root_url}/_emulator/faults", json={"latency_ms": 0})
    stack.worker("rescuer")
    stack.scheduler("s1")
    wait_for(lambda: _converged(stack), 60, "convergence after the crash")
    names = _names(stack, "close")
    assert max(names.values()) == 1, f"duplicates in Close: {names}"
    assert sum(names.values()) >= 12  # 6 of its own + 6 from Ruddr


def test_two_schedulers_never_double_enqueue(make_stack: Callable[..., Stack]) -> None:
    """Two schedulers, polls every 1 s: Redis holds one poll per period, and a follower takes
    over when the leader stops."""
    stack = make_stack(seed_opportunities=0)
    first = stack.scheduler("s1")
    stack.scheduler("s2")
    started = time.monotonic()
    # waits for the processes to start (slow on a busy machine) rather than sleeping a guess
    wait_for(lambda: stack.redis.llen("crmsync.ruddr") >= 2, 30, "two polls to be queued")
    time.sleep(1.5)
    queued = stack.redis.llen("crmsync.ruddr")
    elapsed = time.monotonic() - started
    assert queued <= elapsed + 1, f"{queued} polls queued in {elapsed:.1f}s: double enqueue"
    leaders = [name for name in ("s1", "s2") if "leadership_taken" in stack.log_text(name)]
    assert len(leaders) == 1
    leader = first if leaders == ["s1"] else stack.procs[1]
    stack.kill(leader, signal.SIGTERM)  # resigns on the way out
    before = stack.redis.llen("crmsync.ruddr")
    wait_for(  # the other one leads now
        lambda: stack.redis.llen("crmsync.ruddr") - before >= 2, 30, "the follower to lead"
    )


def test_the_rate_limit_is_shared_by_two_workers(make_stack: Callable[..., Stack]) -> None:
    """Two workers pushing to Ruddr together stay under its limit: the emulator sends no 429."""
    stack = make_stack(
        seed_opportunities=12,
        overrides={"ruddr": {"rate_limit": {"rate": 4, "burst": 2}}},
    )
    ruddr = stack.emulators["ruddr"]
    httpx.post(f"{ruddr.root_url}/_emulator/rate_limit", json={"rate": 5, "burst": 3})
    engine = stack.engine()
    try:
        from sync.engine.cycle import poll

        poll(engine, "ruddr")  # link Ruddr's own deals first, in this process (unlimited)
    finally:
        engine.close()
        engine.db.dispose()
    httpx.post(f"{ruddr.root_url}/_emulator/reset", json={})  # keeps data? reset the log only
    stack.worker("w1")
    stack.worker("w2")
    stack.send("crmsync.poll_system", "close")
    for _ in range(4):
        stack.send("crmsync.drain_system", "ruddr")
    wait_for(lambda: _converged(stack), 90, "Close's deals to reach Ruddr")
    log = httpx.get(f"{ruddr.root_url}/_emulator/requests").json()
    statuses = Counter(str(r["status"]) for r in log["requests"])
    assert statuses.get("429", 0) == 0, statuses
    assert sum(statuses.values()) >= 12


def test_the_admin_api_checks_the_token_and_runs_a_resync(
    make_stack: Callable[..., Stack],
) -> None:
    """Missing or wrong tokens get 401; a resync posted with the token completes."""
    import threading

    import uvicorn

    from sync.admin.app import create_app
    from sync.runtime.backend import admin_backend
    from tests.integration.conftest import ROOT

    stack = make_stack(seed_opportunities=3)
    stack.worker("w1")
    engine = stack.engine()
    import os

    saved = dict(os.environ)
    os.environ.update(stack.env)
    try:
        app = create_app(admin_backend(engine, stack.config()), token="s3cret-token-for-the-stack")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 10, "the admin API to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    try:
        assert httpx.get(f"{base}/health").status_code == 200
        assert httpx.post(f"{base}/resync", json={}).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.post(f"{base}/resync", json={}, headers=wrong).status_code == 401
        auth = {"Authorization": "Bearer s3cret-token-for-the-stack"}
        answer = httpx.post(f"{base}/resync", json={"full": True}, headers=auth)
        assert answer.status_code == 202
        run_id = answer.json()["run_id"]

        def finished() -> dict[str, Any] | None:
            run = httpx.get(f"{base}/runs/{run_id}", headers=auth).json()
            return run if run["status"] not in ("queued", "running") else None

        run = wait_for(finished, 60, "the resync to finish")
        assert run["status"] == "done", run
        assert run["counts"]["systems_done"] == run["counts"]["systems_total"] == 3
        status = httpx.get(f"{base}/status", headers=auth).json()
        assert {row["system"] for row in status["systems"]} == {"ruddr", "close"}
        assert "crmsync_api_calls" in httpx.get(f"{base}/metrics", headers=auth).text
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.close()
        del ROOT


def test_a_reconcile_task_on_a_worker_heals_nothing_after_convergence(
    make_stack: Callable[..., Stack],
) -> None:
    """`crmsync.reconcile` (what `crmsync reconcile` and the scheduler enqueue) runs on a worker
    through its run row: done, with healed 0 for every system once the stack has converged."""
    stack = make_stack(seed_opportunities=3)
    stack.worker("w1")
    stack.send("crmsync.resync", None, False, None)
    wait_for(lambda: _converged(stack), 60, "both systems to hold every deal")
    from sync.runtime.jobs import queue_run

    engine = stack.engine()
    try:
        run_id = queue_run(engine, None, kind="reconcile")
        stack.send("crmsync.reconcile", None, run_id)

        def finished() -> dict[str, Any] | None:
            run = operations.get_run(engine, run_id)
            return run if run and run["status"] not in ("queued", "running") else None

        run = wait_for(finished, 60, "the reconcile to finish")
    finally:
        engine.close()
        engine.db.dispose()
    assert run["status"] == "done", run
    assert run["counts"]["healed.ruddr"] == 0 and run["counts"]["healed.close"] == 0, run


def _user(stack: Stack, system: str) -> Any:
    """A vendor user of ``system`` over HTTP (tests/e2e/users.py)."""
    from tests.e2e.users import CloseUser, RuddrUser

    served = stack.emulators[system]
    client = httpx.Client(base_url=served.base_url, headers=served.headers, timeout=30)
    if system == "close":
        return CloseUser(client)
    return RuddrUser(client)


def _insist(action: Callable[[], Any], tries: int = 20) -> Any:
    """A user's call through a vendor answering 5xx at random (before doing anything, so a
    retry is safe): try again."""
    for _ in range(tries - 1):
        try:
            return action()
        except AssertionError:
            time.sleep(0.1)
    return action()


def _amounts(stack: Stack, system: str) -> dict[str, Any]:
    """Each deal's canonical amount in ``system``, by name."""
    engine = stack.engine()
    try:
        return {
            str(canonical.get("name")): canonical.get("amount")
            for page in engine.connector(system).scan()
            for r in page
            for canonical in [engine.mapper.to_canonical(system, r.data, engine.refs)]
        }
    finally:
        engine.close()
        engine.db.dispose()


def _held_by(stack: Stack, pid: int) -> int:
    """Outbox rows the process ``pid`` holds claims on right now."""
    import socket

    engine = stack.engine()
    try:
        with engine.session() as session:
            rows = session.exec(
                select(Outbox.id).where(
                    col(Outbox.status) == "in_flight",
                    col(Outbox.claimed_by).startswith(f"{socket.gethostname()[:40]}:{pid}:"),
                )
            ).all()
        return len(rows)
    finally:
        engine.db.dispose()


@pytest.mark.timeout(300)
def test_workers_killed_mid_push_under_faults_converge_within_90s_of_the_faults_ending(
    make_stack: Callable[..., Stack],
) -> None:
    """Two workers under 5xx and latency faults on both vendors while deals are created in
    Ruddr and edited in both systems; every few seconds a worker holding claims is SIGKILLed
    and replaced. With the default 20 s claims, once the faults stop the stack converges
    (nothing owed, `verify` clean) within 90 s: no deal twice, every last edit everywhere
    (an update whose worker died after the vendor applied it is our echo, not that system's
    edit: it must not beat a newer edit made elsewhere)."""
    stack = make_stack(seed_opportunities=4)
    workers = [stack.worker("w0"), stack.worker("w1")]
    stack.scheduler("s1")
    wait_for(lambda: _converged(stack), 90, "the first convergence")
    users = {system: _user(stack, system) for system in ("ruddr", "close")}
    names = sorted(_amounts(stack, "ruddr"))
    # each deal is edited in one system only, so its last edit is known without a conflict
    mine = {"ruddr": set(names[: len(names) // 2]), "close": set(names[len(names) // 2 :])}
    deals = {
        system: [(d["id"], _deal_name(system, d)) for d in users[system].all()] for system in users
    }
    deals = {s: [(i, n) for i, n in found if n in mine[s]] for s, found in deals.items()}
    faults = {"error_rate": 0.15, "latency_ms": 250}
    for served in stack.emulators.values():
        httpx.post(f"{served.root_url}/_emulator/faults", json=faults).raise_for_status()
    last: dict[str, float] = {}  # deal name -> the amount it was last given
    kills = hits = step = 0
    started = time.monotonic()
    while kills < 4 or time.monotonic() - started < 20:
        assert time.monotonic() - started < 90, f"only {kills} kills in 90 s"
        step += 1
        for system, user in users.items():
            deal_id, name = deals[system][step % len(deals[system])]
            amount = float(100 * step + (1 if system == "close" else 0))
            edit = {"value": int(amount * 100)} if system == "close" else {"amount": amount}
            _insist(lambda user=user, deal_id=deal_id, edit=edit: user.edit(deal_id, **edit))
            last[name] = amount
        if step % 3 == 0:
            new = f"Recovery deal {step}"
            _insist(lambda new=new: users["ruddr"].create(new, amount=7.0))
        if step % 4 == 0:
            victim = workers.pop(0)
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline and not _held_by(stack, victim.pid):
                time.sleep(0.05)
            hits += _held_by(stack, victim.pid) > 0
            stack.kill(victim)
            kills += 1
            workers.append(stack.worker(f"w{kills + 1}"))
        time.sleep(0.5)
    for served in stack.emulators.values():
        httpx.post(f"{served.root_url}/_emulator/faults", json={}).raise_for_status()
    assert hits >= 1, f"none of {kills} kills hit a worker holding claims: proves nothing"
    wait_for(lambda: _converged(stack), 90, "convergence within 90 s of the faults ending")
    for system in ("ruddr", "close"):
        names = _names(stack, system)
        assert max(names.values()) == 1, f"duplicates in {system}: {names}"
    amounts = {system: _amounts(stack, system) for system in users}
    assert amounts["ruddr"] == amounts["close"]
    for name, amount in last.items():
        wanted = f"{amount:.2f}"  # canonical amounts are decimal strings
        assert amounts["ruddr"].get(name) == amounts["close"].get(name) == wanted, name


def _deal_name(system: str, deal: dict[str, Any]) -> str:
    from tests.e2e.users import CLOSE_NAME

    return str(deal.get(f"custom.{CLOSE_NAME}") if system == "close" else deal.get("name"))


def test_a_warm_shutdown_gives_back_the_drains_claims_instead_of_finishing_them(
    make_stack: Callable[..., Stack],
) -> None:
    """SIGTERM while a drain has many slow creates to make (its slice a minute long): the
    worker stops claiming, gives back what it has not sent and exits — with creates still
    owed, none left claimed — instead of draining the whole outbox first. Another worker
    then finishes, once each."""
    stack = make_stack(seed_opportunities=60, overrides={"close": {"poll_every": "60s"}})
    close = stack.emulators["close"]
    httpx.post(f"{close.root_url}/_emulator/faults", json={"latency_ms": 1000})
    worker = stack.worker("stopping")
    stack.send("crmsync.poll_system", "close")
    stack.send("crmsync.poll_system", "ruddr")

    def close_creates(status: str) -> int:
        engine = stack.engine()
        try:
            with engine.session() as session:
                query = select(Outbox).where(
                    Outbox.system == "close", Outbox.op == "create", col(Outbox.status) == status
                )
                return len(session.exec(query).all())
        finally:
            engine.db.dispose()

    wait_for(lambda: close_creates("in_flight"), 60, "creates to Close in flight")
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(timeout=60)
    assert close_creates("in_flight") == 0, "nothing left claimed"
    assert close_creates("retry") + close_creates("pending") > 0, "it did not drain it all"
    httpx.post(f"{close.root_url}/_emulator/faults", json={"latency_ms": 0})
    stack.worker("finisher")
    stack.scheduler("s1")
    # verify clean: seeded deals share names, so duplicates are counted against the store
    wait_for(lambda: _converged(stack), 90, "convergence (verify clean) after the shutdown")
