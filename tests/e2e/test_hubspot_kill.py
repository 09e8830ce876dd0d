"""A `crmsync run --once` SIGKILLed while HubSpot commits its batch create (issue 22): black
box, the emulators over HTTP, the shipped config, a real process on a SQLite store."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sync.emulators.server import Served, running
from tests.e2e.conftest import AUTH, _user
from tests.e2e.test_soak import VENDORS, cli_env

pytestmark = pytest.mark.slow
LATENCY_MS = 3000  # every HubSpot answer this late: the window the kill lands in
NAMES = [f"Killed mid-batch {i}" for i in range(5)]


@pytest.fixture
def served() -> Iterator[dict[str, Served]]:
    with running(only=VENDORS, seed=5, seed_opportunities=4) as emulators:
        yield emulators


def intents(db: Path) -> int:
    """Create intents journaled for HubSpot: written, committed, before the batch is sent."""
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            query = "SELECT count(*) FROM journal WHERE system = 'hubspot' AND action = ?"
            return int(conn.execute(query, ("create_intent",)).fetchone()[0])
    except sqlite3.OperationalError:  # the store is being made, or locked for a moment
        return 0


def batches(hubspot: Served) -> int:
    """The batch creates HubSpot answered (logged once answered: a dead client's too)."""
    return sum(1 for r in hubspot.emulator.requests if r["path"].endswith("/batch/create"))


def test_a_run_killed_during_a_hubspot_batch_create_leaves_every_deal_once(
    served: dict[str, Served], tmp_path: Path
) -> None:
    """Five Ruddr deals are owed to HubSpot; `run --once` journals its create intents and sends
    one batch/create, and is SIGKILLed while HubSpot (3 s late) is still answering. HubSpot
    commits all five; nobody records it. The restarted run adopts them by crmsync's id: each
    deal is in HubSpot once, and `verify` exits 0."""
    db = tmp_path / "kill.db"
    env = cli_env(db, served)

    def run_once() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "sync", "run", "--once", "--no-live"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def finish(proc: subprocess.Popen[bytes]) -> int:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode in (0, 1, -signal.SIGKILL), err.decode()[-3000:]
        return proc.returncode

    hubspot = served["hubspot"]
    finish(run_once())  # the seeded deals, synced
    ruddr = _user("ruddr", httpx.Client(base_url=served["ruddr"].base_url, headers=AUTH["ruddr"]))
    users = _user("hubspot", httpx.Client(base_url=hubspot.base_url, headers=AUTH["hubspot"]))
    for name in NAMES:
        ruddr.create(name)
    hubspot.emulator.faults.latency_ms = LATENCY_MS
    before, sent = intents(db), batches(hubspot)
    proc = run_once()
    deadline = time.monotonic() + 120
    while intents(db) < before + len(NAMES):
        assert proc.poll() is None, "the run ended before it sent the batch"
        assert time.monotonic() < deadline, "no create intent for HubSpot in 120 s"
        time.sleep(0.05)
    time.sleep(LATENCY_MS / 1000 / 2)  # the batch is on its way: HubSpot answers in 3 s
    proc.send_signal(signal.SIGKILL)
    assert finish(proc) == -signal.SIGKILL
    while batches(hubspot) == sent:  # HubSpot finishes the request the dead client sent
        assert time.monotonic() < deadline, "the batch/create never reached HubSpot"
        time.sleep(0.05)
    held = [d["name"] for d in users.all()]
    assert all(held.count(name) == 1 for name in NAMES), held  # committed, answer lost
    hubspot.emulator.faults.latency_ms = 0
    for _ in range(3):
        if finish(run_once()) == 0:
            break
    held = [d["name"] for d in users.all()]
    assert {name: held.count(name) for name in NAMES} == dict.fromkeys(NAMES, 1)
    verify = subprocess.run(
        [sys.executable, "-m", "sync", "verify"], cwd=tmp_path, env=env, capture_output=True
    )
    assert verify.returncode == 0, verify.stdout.decode()[-3000:]
