"""``scaleout``: does a second (and a fourth) Celery worker make a load faster? (issue 25)

The distributed runtime for real, once per worker count W and round: a fresh PostgreSQL
database (created and dropped), a fresh Redis database and key prefix, the shipped config's
five emulators served over HTTP from this process (Ruddr seeded with N deals, every target
answering ``--latency-ms`` late: pushes are I/O-bound, so even a 2-core machine can show a
speed-up). This process captures every system and approves the first run (the outbox then
holds a create per deal and target), starts W Celery worker processes (``--pool solo``: one
task at a time each, so W is the number of drains that can run at once), waits until each
answers a ping, queues one drain per system and times until every outbox row is done. The
workers are stopped, then ``verify`` (latency off) must be clean and every target must hold
exactly the store's deals (``duplicates``: what it holds beyond them; the emulators seed a
few reference deals of their own besides Ruddr's N).

Client-side rate limits are off (the emulators enforce none here): ParsaLink's 100 requests
a minute would make every figure ParsaLink's budget, not the workers'. The limit is shared by
the workers through Redis whatever W, so with limits on, a system's pushes cannot go faster
than its limit with any number of workers.

``python -m bench.scaleout --records N --workers 1,2,4 --latency-ms 50 [--rounds 3]`` prints a
table (median deals/s per W over the rounds, speed-up against W = 1) and one JSON line;
``python -m bench --scenario scaleout`` runs it too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import redis
import sqlalchemy as sa
import yaml
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlmodel import Session, col, func, select

from bench.common import ENV_OF, verified
from sync.config import load_config
from sync.engine import first_run
from sync.engine.cycle import poll
from sync.runtime.context import build_engine
from sync.store.db import make_engine, upgrade
from sync.store.models import Outbox

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get(
    "CRMSYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_ADMIN = "redis://127.0.0.1:6379/0"
TIMEOUT_S = 1800.0
#: the Celery test stack's naming, so the bench and the integration tests never share a db
REDIS_DB_KEY = "crmsync-test-db:{}"


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new PostgreSQL database (its URL), dropped afterwards even with sessions still open."""
    name = f"crmsync_scaleout_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextlib.contextmanager
def fresh_redis() -> Iterator[str]:
    """A Redis database no test or other bench uses meanwhile, flushed before and after."""
    admin: redis.Redis[Any] = redis.Redis.from_url(REDIS_ADMIN)
    for number in range(1, 16):
        if admin.set(REDIS_DB_KEY.format(number), "bench-scaleout", nx=True, ex=3600):
            url = f"redis://127.0.0.1:6379/{number}"
            client: redis.Redis[Any] = redis.Redis.from_url(url)
            client.flushdb()
            try:
                yield url
            finally:
                client.flushdb()
                client.close()
                admin.delete(REDIS_DB_KEY.format(number))
                admin.close()
            return
    raise RuntimeError("scaleout bench: no free Redis database (1..15)")


@contextlib.contextmanager
def _serving(records: int, seed: int, latency_ms: float) -> Iterator[tuple[dict[str, str], Any]]:
    """The shipped config's emulators over HTTP, Ruddr with ``records`` deals, the targets
    ``latency_ms`` late; yields the *_BASE_URL environment and the served emulators."""
    from sync.emulators.ruddr import RuddrEmulator
    from sync.emulators.server import build_all, running

    emulators = build_all(only=ENV_OF, seed=seed, seed_opportunities=0)
    emulators["ruddr"] = RuddrEmulator(seed=seed, seed_opportunities=records)
    emulators["hubspot"].index_lag = 0  # type: ignore[attr-defined]  # verify reads at once
    with running(emulators=emulators) as served:
        for name, s in served.items():
            if name != "ruddr":
                faults = {"latency_ms": latency_ms}
                httpx.post(f"{s.root_url}/_emulator/faults", json=faults).raise_for_status()
        yield {f"{ENV_OF[kind]}_BASE_URL": s.base_url for kind, s in served.items()}, served


def _config(tmp: Path) -> Path:
    """The shipped config.yaml without client-side rate limits (see the module doc)."""
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    for system in data["systems"].values():
        system.pop("rate_limit", None)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _capture(env: dict[str, str]) -> None:
    """Read every system once and approve the first run: the outbox holds the load."""
    engine = build_engine(load_config(Path(env["CRMSYNC_CONFIG"]), env=env), distributed=False)
    try:
        for system in engine.systems:
            poll(engine, system)
        first_run.approve(engine, by="bench.scaleout")
    finally:
        engine.close()
        engine.db.dispose()


def _worker(env: dict[str, str], name: str, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "celery", "-A", "sync.celery_app", "worker", "--pool", "solo"]
    argv += ["-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--loglevel", "WARNING"]
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def _celery(env: dict[str, str]) -> Any:
    from celery import Celery

    from sync.celery_app import route_task

    app = Celery("crmsync-bench", broker=env["CRMSYNC_BROKER_URL"])
    app.conf.task_routes = (route_task,)
    return app


def _wait_ready(app: Any, count: int, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(proc.poll() is not None for proc in procs):
            raise RuntimeError("scaleout bench: a worker exited at start (see its log)")
        if len(app.control.ping(timeout=0.5) or []) >= count:
            return
    raise RuntimeError(f"scaleout bench: {count} workers did not answer a ping within 120 s")


def _left(db: Any) -> int:
    """Outbox rows not done (dead letters and parked rows count as left)."""
    with Session(db) as session:
        query = select(func.count()).select_from(Outbox).where(col(Outbox.status) != "done")
        return int(session.exec(query).one())


#: sessions of the store's database waiting for a row or table lock right now
LOCK_WAITS = sa.text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


def _lock_waits(db: Any) -> int:
    with db.connect() as connection:
        return int(connection.execute(LOCK_WAITS).scalar_one())


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) the process ``pid`` has spent so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _drain(env: dict[str, str], workers: int, tmp: Path) -> dict[str, float]:
    """Start ``workers`` workers, queue one drain per system, time until the outbox is done.
    Also the CPU seconds the workers and this process (the emulators) spent meanwhile: against
    2 cores × the seconds, they say whether the machine was full."""
    config = load_config(Path(env["CRMSYNC_CONFIG"]), env=env)
    db = make_engine(env["CRMSYNC_DATABASE_URL"])
    app = _celery(env)
    procs = [_worker(env, f"w{i}", tmp / f"w{i}.log") for i in range(workers)]
    try:
        _wait_ready(app, workers, procs)
        cpu = [_cpu(p.pid) for p in procs] + [_cpu(os.getpid())]
        started = time.monotonic()
        for system in config.systems:
            app.send_task("crmsync.drain_system", args=[system])
        samples = waiting = 0  # a hot row would show as sessions waiting on locks
        while _left(db):
            samples += 1
            waiting += _lock_waits(db) > 0
            if time.monotonic() - started > TIMEOUT_S:
                raise RuntimeError(f"scaleout bench: outbox not done after {TIMEOUT_S:.0f}s")
            if any(proc.poll() is not None for proc in procs):
                raise RuntimeError(f"scaleout bench: a worker died (logs in {tmp})")
            time.sleep(0.1)
        seconds = time.monotonic() - started
        spent = [_cpu(p.pid) for p in procs] + [_cpu(os.getpid())]
        used = [after - before for before, after in zip(cpu, spent, strict=True)]
        return {
            "seconds": seconds,
            "workers_cpu_s": sum(used[:-1]),
            "emulators_cpu_s": used[-1],
            "lock_wait_share": waiting / max(samples, 1),
        }
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        app.close()
        db.dispose()


def _outcome(env: dict[str, str], served: dict[str, Any]) -> dict[str, Any]:
    """``verify`` with the latency off, and per target the deals it holds beyond N."""
    from bench.scenarios import AUTH, USERS

    result = verified(env, (s.root_url for s in served.values()))
    config, deals, links = result.config, result.deals, result.links
    duplicates: dict[str, int] = {}
    for name, cfg in config.systems.items():
        auth = httpx.BasicAuth("close-test-key", "") if cfg.type == "close" else None
        client = httpx.Client(
            transport=served[cfg.type].emulator.transport(),
            base_url=cfg.base_url,
            headers=AUTH[cfg.type],
            auth=auth,
        )
        with client:
            duplicates[name] = len(USERS[cfg.type](client).all()) - deals
    return {
        "verify_clean": result.clean,
        "duplicates": duplicates,
        "deals": deals,
        "fully_linked": all(links.get(name, 0) == deals for name in config.systems),
    }


def one_run(records: int, workers: int, latency_ms: float, seed: int) -> dict[str, Any]:
    """One timed load with ``workers`` workers, on fresh emulators, database and Redis."""
    with (
        tempfile.TemporaryDirectory(prefix="crmsync-scaleout-") as tmp,
        fresh_database() as store,
        fresh_redis() as broker,
        _serving(records, seed, latency_ms) as (urls, served),
    ):
        upgrade(store)
        env = {
            **os.environ,
            **urls,
            "CRMSYNC_CONFIG": str(_config(Path(tmp))),
            "CRMSYNC_DATABASE_URL": store,
            "CRMSYNC_BROKER_URL": broker,
            "CRMSYNC_REDIS_PREFIX": f"scaleout{uuid.uuid4().hex[:8]}",
            "CRMSYNC_LOG_LEVEL": os.environ.get("SCALEOUT_LOG_LEVEL", "WARNING"),
            "CRMSYNC_LOG_FORMAT": "json",
            "PYTHONPATH": str(ROOT),
        }
        _capture(env)
        logs = Path(os.environ.get("SCALEOUT_LOGS") or tmp)  # keep them: SCALEOUT_LOGS=dir
        logs.mkdir(parents=True, exist_ok=True)
        timing = _drain(env, workers, logs)
        outcome = _outcome(env, served)
    per_s = records / timing["seconds"]
    return {"workers": workers, **timing, "deals_per_s": per_s, **outcome}


def measure(
    records: int, workers: list[int], latency_ms: float, rounds: int, seed: int = 7
) -> dict[str, Any]:
    runs: dict[int, list[dict[str, Any]]] = {w: [] for w in workers}
    for _ in range(rounds):  # interleaved: a noisy minute hits every W alike
        for w in workers:
            runs[w].append(one_run(records, w, latency_ms, seed))
            print(json.dumps(runs[w][-1]), file=sys.stderr, flush=True)
    medians = {w: statistics.median(r["deals_per_s"] for r in runs[w]) for w in workers}
    base = medians[workers[0]]
    return {
        "scenario": "scaleout",
        "records": records,
        "latency_ms": latency_ms,
        "rounds": rounds,
        "per_workers": [
            {
                "workers": w,
                "deals_per_s": medians[w],
                "speedup": medians[w] / base,
                "seconds": [round(r["seconds"], 2) for r in runs[w]],
                "workers_cpu_s": statistics.median(r["workers_cpu_s"] for r in runs[w]),
                "emulators_cpu_s": statistics.median(r["emulators_cpu_s"] for r in runs[w]),
                "lock_wait_share": max(r["lock_wait_share"] for r in runs[w]),
                "verify_clean": all(r["verify_clean"] for r in runs[w]),
                "fully_linked": all(r["fully_linked"] for r in runs[w]),
                "duplicates": max(max(r["duplicates"].values()) for r in runs[w]),
            }
            for w in workers
        ],
    }


def table(result: dict[str, Any]) -> Table:
    out = Table(
        title=f"scale-out on PostgreSQL + Celery (N = {result['records']}, "
        f"{result['latency_ms']:g} ms vendor latency, median of {result['rounds']})"
    )
    columns = ("workers", "deals/s", "speed-up", "seconds per round", "CPU s workers / emulators")
    for column in (*columns, "lock waits", "verify", "duplicates"):
        out.add_column(column, justify="right")
    for row in result["per_workers"]:
        out.add_row(
            str(row["workers"]),
            f"{row['deals_per_s']:.1f}",
            f"{row['speedup']:.2f}×",
            " ".join(f"{s:.1f}" for s in row["seconds"]),
            f"{row['workers_cpu_s']:.1f} / {row['emulators_cpu_s']:.1f}",
            f"{row['lock_wait_share']:.0%}",
            "clean" if row["verify_clean"] and row["fully_linked"] else "[red]drift[/]",
            str(row["duplicates"]),
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=3, help="runs per worker count (median)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    from sync.logging import configure_logging

    configure_logging(level="WARNING")
    workers = [int(w) for w in args.workers.split(",")]
    result = measure(args.records, workers, args.latency_ms, args.rounds, args.seed)
    Console(width=120, stderr=True).print(table(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
