"""``recovery``: how long the pushes of a process killed with SIGKILL stay stuck (issue 12).

Real processes, real HTTP: the shipped config's emulators are served from this process (Ruddr
seeded with N deals, every target answering ``--latency-ms`` late, so pushes are in flight when
the kill comes), each scenario on a fresh SQLite store, crmsync in child processes.

- **worker**: this process captures every system (the outbox then holds a create per deal and
  target); two drainers (child processes draining every due outbox in a loop, as workers do)
  push together; one is SIGKILLed while it holds claims. Measured: from the kill until every
  push it had claimed is done (by the survivor, once the dead one's claims ran out: no longer
  than ``CRMSYNC_CLAIM_SECONDS``, 20 s by default, since nobody renews them), and until the
  outbox is empty.
- **embedded**: ``crmsync run --once`` on a fresh store is SIGKILLed mid-load, then started
  again. Measured: from the kill until the restarted run has done every push the killed one
  had claimed (it releases them at start) and until it exits 0 (converged).

Both end with ``verify`` clean and every deal linked once in every system.
``python -m bench.recovery --records N`` prints one JSON object; ``python -m bench`` runs it as
the ``recovery`` scenario.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import col, func, select

from bench.common import ENV_OF, unlimited_config, verified
from sync.config import load_config
from sync.engine.cycle import poll
from sync.runtime.context import build_engine
from sync.store.db import make_engine, upgrade
from sync.store.models import Outbox

ROOT = Path(__file__).resolve().parents[1]
HOST = socket.gethostname()[:40]
TIMEOUT_S = 120.0
TARGET_S = 30.0


@contextlib.contextmanager
def serving(records: int, seed: int, latency_ms: float) -> Iterator[dict[str, str]]:
    """The shipped config's emulators over HTTP (Ruddr with ``records`` deals, the targets
    slow); yields the environment a crmsync process needs to reach them (and ``_roots``: their
    control URLs)."""
    from sync.emulators.ruddr import RuddrEmulator
    from sync.emulators.server import build_all, running

    # only the shipped config's vendors (an installed emulator it does not use has no
    # *_BASE_URL there)
    emulators = build_all(only=ENV_OF, seed=seed, seed_opportunities=0)
    emulators["ruddr"] = RuddrEmulator(seed=seed, seed_opportunities=records)
    if "hubspot" in emulators:  # the processes poll back to back: no search index lag
        emulators["hubspot"].index_lag = 0  # type: ignore[attr-defined]
    with running(emulators=emulators) as served:
        for name, s in served.items():
            if name != "ruddr":
                faults = {"latency_ms": latency_ms}
                httpx.post(f"{s.root_url}/_emulator/faults", json=faults).raise_for_status()
        urls = {f"{ENV_OF[kind]}_BASE_URL": s.base_url for kind, s in served.items()}
        yield {**urls, "_roots": " ".join(s.root_url for s in served.values())}


def _env(urls: dict[str, str], store: str, claim_seconds: float) -> dict[str, str]:
    tmp = Path(store.removeprefix("sqlite:///")).parent
    return {
        **os.environ,
        **urls,
        "CRMSYNC_CONFIG": str(unlimited_config(tmp)),
        "CRMSYNC_DATABASE_URL": store,
        "CRMSYNC_CLAIM_SECONDS": f"{claim_seconds:g}",
        "CRMSYNC_LOG_LEVEL": "WARNING",
        "CRMSYNC_LOG_FORMAT": "json",
        "CRMSYNC_FIRST_RUN": "waive",  # seeded deals everywhere: a load, not a first-run match
        "PYTHONPATH": str(ROOT),
    }


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *args], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )


def _claimed_by(db: Any, pid: int) -> set[int]:
    """Outbox rows held by the process ``pid`` right now."""
    from sqlmodel import Session

    with Session(db) as session:
        rows = session.exec(
            select(Outbox.id).where(
                col(Outbox.status) == "in_flight",
                col(Outbox.claimed_by).startswith(f"{HOST}:{pid}:"),
            )
        ).all()
    return {row for row in rows if row is not None}


def _open(db: Any, ids: set[int] | None = None) -> int:
    """Rows not done (of ``ids``, or all) — dead letters and parked rows count as open."""
    from sqlmodel import Session

    with Session(db) as session:
        query = select(func.count()).select_from(Outbox).where(col(Outbox.status) != "done")
        if ids is not None:
            query = query.where(col(Outbox.id).in_(ids))
        return int(session.exec(query).one())


def _wait(check: Any, what: str, timeout: float = TIMEOUT_S, every: float = 0.05) -> float:
    """Poll ``check`` until truthy; returns when (monotonic)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(every)
    raise RuntimeError(f"recovery bench: timed out after {timeout:.0f}s waiting for {what}")


def _kill_while_holding(proc: subprocess.Popen[bytes], db: Any) -> tuple[float, set[int]]:
    """SIGKILL ``proc`` once it holds claims; returns the kill time and the rows it held."""
    _wait(lambda: len(_claimed_by(db, proc.pid)) >= 4, "the victim to claim pushes", every=0.02)
    time.sleep(0.3)  # inside its vendor calls
    proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    proc.wait(timeout=20)
    return killed, _claimed_by(db, proc.pid)


def _outcome(env: dict[str, str]) -> dict[str, Any]:
    """Verify the store against every system; every deal linked once everywhere."""
    result = verified(env, env["_roots"].split())
    return {
        "verify_clean": result.clean,
        "deals": result.deals,
        "fully_linked": sum(result.links.values()) == result.deals * len(result.config.systems),
    }


def worker_kill(urls: dict[str, str], tmp: Path, claim_seconds: float) -> dict[str, Any]:
    """Two drainers; one SIGKILLed holding claims; the other finishes its pushes."""
    store = f"sqlite:///{tmp / 'worker.db'}"
    upgrade(store)
    env = _env(urls, store, claim_seconds)
    engine = build_engine(load_config(Path(env["CRMSYNC_CONFIG"]), env=env), distributed=False)
    try:
        for system in engine.systems:
            poll(engine, system)
    finally:
        engine.close()
        engine.db.dispose()
    db = make_engine(store)
    drainer = ["-m", "bench.recovery", "drain"]
    victim = _start(drainer, env, tmp / "victim.log")
    survivor = _start(drainer, env, tmp / "survivor.log")
    try:
        killed, held = _kill_while_holding(victim, db)
        redone = _wait(lambda: _open(db, held) == 0, "the dead worker's pushes to be redone")
        drained = _wait(lambda: _open(db) == 0, "the outbox to drain")
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(timeout=30)
        db.dispose()
    return {
        "held_at_kill": len(held),
        "claimed_redone_s": redone - killed,
        "outbox_empty_s": drained - killed,
        **_outcome(env),
    }


def embedded_kill(urls: dict[str, str], tmp: Path, claim_seconds: float) -> dict[str, Any]:
    """``run --once`` SIGKILLed mid-load, then started again until it exits."""
    store = f"sqlite:///{tmp / 'embedded.db'}"
    env = _env(urls, store, claim_seconds)
    run_once = ["-m", "sync", "run", "--once", "--no-live"]
    upgrade(store)  # before the run starts, so the bench can read the store meanwhile
    first = _start(run_once, env, tmp / "first.log")
    db = make_engine(store)
    try:
        killed, held = _kill_while_holding(first, db)
        again = _start(run_once, env, tmp / "again.log")
        redone = _wait(lambda: _open(db, held) == 0, "the killed run's pushes to be redone")
        code = again.wait(timeout=TIMEOUT_S)
        converged = time.monotonic()
    finally:
        db.dispose()
    return {
        "held_at_kill": len(held),
        "claimed_redone_s": redone - killed,
        "converged_s": converged - killed,
        "restart_exit_code": code,
        **_outcome(env),
    }


def measure(records: int, seed: int = 7, latency_ms: float = 150.0) -> dict[str, Any]:
    claim_seconds = float(os.environ.get("CRMSYNC_CLAIM_SECONDS") or 20)
    with (
        tempfile.TemporaryDirectory(prefix="crmsync-recovery-") as tmp,
        serving(records, seed, latency_ms) as urls,
    ):
        worker = worker_kill(urls, Path(tmp), claim_seconds)
    with (
        tempfile.TemporaryDirectory(prefix="crmsync-recovery-") as tmp,
        serving(records, seed, latency_ms) as urls,
    ):
        embedded = embedded_kill(urls, Path(tmp), claim_seconds)
    return {
        "scenario": "recovery",
        "records": records,
        "latency_ms": latency_ms,
        "claim_seconds": claim_seconds,
        "target_s": TARGET_S,
        "worker": worker,
        "embedded": embedded,
    }


def drain_forever() -> None:
    """Child: drain every due outbox in a loop, as a worker does, until SIGTERM."""
    from sync.engine.operations import due_systems
    from sync.engine.push import drain

    engine = build_engine(load_config(), distributed=False)
    stop = False

    def finish(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, finish)
    while not stop:
        due = due_systems(engine)
        for system in due:
            drain(engine, system)
        if not due:
            time.sleep(0.1)
    engine.close()


def run_in_subprocess(records: int, seed: int = 7, latency_ms: float = 150.0) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.recovery",
            "run",
            "--records",
            str(records),
            "--seed",
            str(seed),
            "--latency-ms",
            f"{latency_ms:g}",
        ],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__)
    parser.add_argument("mode", choices=("run", "drain"), nargs="?", default="run")
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-ms", type=float, default=150.0)
    args = parser.parse_args(argv)
    from sync.logging import configure_logging

    configure_logging(level="WARNING")
    if args.mode == "drain":
        drain_forever()
        return 0
    print(json.dumps(measure(args.records, args.seed, args.latency_ms)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
