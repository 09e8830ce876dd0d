"""``scaleout``: does a second (and a fourth) Celery worker make a load faster? (issue 25)

The distributed runtime for real, once per worker count W and round: a fresh PostgreSQL
database (created and dropped), a fresh Redis database and key prefix, the shipped config's
six emulators served over HTTP by a child process of their own (``bench.emulator_child``:
Ruddr seeded with N deals, every target answering ``--latency-ms`` late, so pushes are
I/O-bound and even a 2-core machine can show a speed-up). This process captures every system
and approves the first run (the outbox then holds a create per deal and target), starts W
Celery worker processes (``--pool solo``: one task at a time each, so W is the number of
drains that can run at once), waits until each answers a ping, queues one drain per system
and times until every outbox row is done. The workers are stopped, then ``verify`` (latency
off) must be clean and every target must hold exactly the store's deals (``duplicates``: what
it holds beyond them; the emulators seed a few reference deals of their own besides Ruddr's
N).

Per round, beside the time: each worker's CPU seconds, the emulators' (their process), the
store's PostgreSQL backends' (sampled from ``pg_stat_activity`` and ``/proc``), the machine's
1-minute load average (mean of the samples), and deals per worker CPU-second. On a shared
machine the last tells a scaling limit (it falls as W grows) from contention (deals/s falls,
it does not). ``--profile DIR`` runs each worker under ``bench.sampler`` (stack samples;
``SAMPLER_CPU=1``: per-thread CPU profiles instead).

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
from rich.console import Console
from rich.table import Table
from sqlmodel import Session, col, func, select

from bench.common import fresh_database, unlimited_config, verified
from bench.emulator_child import SHIPPED, EmulatorChild, cpu_seconds, origin
from sync.config import load_config
from sync.engine import first_run
from sync.engine.cycle import poll
from sync.runtime.context import build_engine
from sync.store.db import upgrade
from sync.store.models import Outbox

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get(
    "CRMSYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_ADMIN = "redis://127.0.0.1:6379/0"
TIMEOUT_S = 1800.0
#: how often the bench looks at the outbox (a scan of every row: 5 N of them) and samples
POLL_S = 0.5
#: the bench's own sessions on the store, told apart from the workers' by this name
BENCH_APP = "crmsync-scaleout-bench"
#: the Celery test stack's naming, so the bench and the integration tests never share a db
REDIS_DB_KEY = "crmsync-test-db:{}"


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


def _latency(child: EmulatorChild, latency_ms: float) -> None:
    """Every target answers ``latency_ms`` late (0: at once); Ruddr, only read, never."""
    for name, url in child.urls.items():
        if name != "ruddr":
            faults = {"latency_ms": latency_ms} if latency_ms else {}
            httpx.post(f"{origin(url)}/_emulator/faults", json=faults).raise_for_status()


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


def _worker(
    env: dict[str, str], name: str, log: Path, profile: Path | None
) -> subprocess.Popen[bytes]:
    """One ``--pool solo`` worker; with ``profile``, under the stack sampler (bench/sampler.py)."""
    python = [sys.executable]
    if profile is not None:
        python += ["-m", "bench.sampler", str(profile / f"{name}.stacks"), "--"]
    argv = [*python, "-m", "celery", "-A", "sync.celery_app", "worker", "--pool", "solo"]
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


class _Meter:
    """CPU seconds spent since it was made, by the workers, the emulators' child and the store's
    PostgreSQL backends (those of the bench's database, sampled: a backend that ends between
    two samples counts up to its last one), and the machine's 1-minute load average."""

    def __init__(self, procs: list[subprocess.Popen[bytes]], child: EmulatorChild, db: Any):
        self.procs, self.child, self.db = procs, child, db
        self.workers = [cpu_seconds(p.pid) for p in procs]
        self.emulators = child.cpu_s()
        self.backends: dict[int, tuple[float, float]] = {}  # pid: (first seen, last seen)
        self.loads: list[float] = []
        self.lock_samples = self.waiting = 0
        self.sample(start=True)

    def sample(self, start: bool = False) -> None:
        with self.db.connect() as connection:
            self.waiting += int(connection.execute(LOCK_WAITS).scalar_one()) > 0
            pids = connection.execute(BACKENDS).scalars().all()
        self.lock_samples += 1
        for pid in pids:
            with contextlib.suppress(OSError):  # ended meanwhile
                now = cpu_seconds(int(pid))
                first = self.backends.get(pid, (now if start else 0.0, now))[0]
                self.backends[pid] = (first, now)
        self.loads.append(os.getloadavg()[0])

    def spent(self) -> dict[str, Any]:
        self.sample()
        workers = [cpu_seconds(p.pid) - b for p, b in zip(self.procs, self.workers, strict=True)]
        return {
            "worker_cpu_s": workers,
            "workers_cpu_s": sum(workers),
            "emulators_cpu_s": self.child.cpu_s() - self.emulators,
            "postgres_cpu_s": sum(last - first for first, last in self.backends.values()),
            "load_avg": statistics.mean(self.loads),
            "lock_wait_share": self.waiting / max(self.lock_samples, 1),
        }


#: the store's own PostgreSQL backends: the database is fresh, so only the workers' and the
#: bench's, which is left out (its polls scan the outbox: 65 CPU s of 10,000 deals at 10 a
#: second, more than the workers' queries at N = 1,000)
BACKENDS = sa.text(
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
    f" AND application_name <> '{BENCH_APP}'"
)


def _drain(
    env: dict[str, str], workers: int, child: EmulatorChild, tmp: Path, profile: Path | None
) -> dict[str, Any]:
    """Start ``workers`` workers, queue one drain per system, time until the outbox is done;
    with it what each process spent meanwhile (:class:`_Meter`): against 2 cores × the
    seconds, they say whether the machine was full."""
    config = load_config(Path(env["CRMSYNC_CONFIG"]), env=env)
    db = sa.create_engine(env["CRMSYNC_DATABASE_URL"], connect_args={"application_name": BENCH_APP})
    app = _celery(env)
    procs = [_worker(env, f"w{i}", tmp / f"w{i}.log", profile) for i in range(workers)]
    try:
        _wait_ready(app, workers, procs)
        meter = _Meter(procs, child, db)
        started = time.monotonic()
        for system in config.systems:
            app.send_task("crmsync.drain_system", args=[system])
        while _left(db):
            meter.sample()  # a hot row would show as sessions waiting on locks
            if time.monotonic() - started > TIMEOUT_S:
                raise RuntimeError(f"scaleout bench: outbox not done after {TIMEOUT_S:.0f}s")
            if any(proc.poll() is not None for proc in procs):
                raise RuntimeError(f"scaleout bench: a worker died (logs in {tmp})")
            time.sleep(POLL_S)
        return {"seconds": time.monotonic() - started, **meter.spent()}
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


def _outcome(env: dict[str, str], child: EmulatorChild) -> dict[str, Any]:
    """``verify`` with the latency off, and per target the deals it holds beyond N."""
    from bench.scenarios import AUTH, USERS

    result = verified(env, (origin(url) for url in child.urls.values()))
    config, deals, links = result.config, result.deals, result.links
    duplicates: dict[str, int] = {}
    for name, cfg in config.systems.items():
        auth = httpx.BasicAuth("close-test-key", "") if cfg.type == "close" else None
        client = httpx.Client(base_url=cfg.base_url, headers=AUTH[cfg.type], auth=auth)
        with client:
            duplicates[name] = len(USERS[cfg.type](client).all()) - deals
    return {
        "verify_clean": result.clean,
        "duplicates": duplicates,
        "deals": deals,
        "fully_linked": all(links.get(name, 0) == deals for name in config.systems),
    }


#: the processes of a load: the workers, the emulators, the store
CPU_KEYS = ("workers_cpu_s", "emulators_cpu_s", "postgres_cpu_s")


def one_run(
    records: int, workers: int, latency_ms: float, seed: int, profile: Path | None = None
) -> dict[str, Any]:
    """One timed load with ``workers`` workers, on fresh emulators, database and Redis."""
    with (
        tempfile.TemporaryDirectory(prefix="crmsync-scaleout-") as tmp,
        fresh_database(PG_ADMIN, "crmsync_scaleout") as store,
        fresh_redis() as broker,
        EmulatorChild([*SHIPPED, "--records", str(records), "--seed", str(seed)]) as child,
    ):
        _latency(child, latency_ms)
        upgrade(store)
        env = {
            **os.environ,
            **child.env(),
            "CRMSYNC_CONFIG": str(unlimited_config(Path(tmp))),
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
        if profile is not None:
            profile = profile / f"n{records}-w{workers}-{uuid.uuid4().hex[:6]}"
            profile.mkdir(parents=True)
        timing = _drain(env, workers, child, logs, profile)
        outcome = _outcome(env, child)
    return {
        "workers": workers,
        **timing,
        "deals_per_s": records / timing["seconds"],
        "deals_per_worker_cpu_s": records / timing["workers_cpu_s"],
        # how many of the machine's cores the load got: against what the workers could use
        "cores": sum(timing[k] for k in CPU_KEYS) / timing["seconds"],
        **outcome,
    }


def measure(
    records: int,
    workers: list[int],
    latency_ms: float,
    rounds: int,
    seed: int = 7,
    profile: Path | None = None,
) -> dict[str, Any]:
    runs: dict[int, list[dict[str, Any]]] = {w: [] for w in workers}
    for _ in range(rounds):  # interleaved: a noisy minute hits every W alike
        for w in workers:
            runs[w].append(one_run(records, w, latency_ms, seed, profile))
            print(json.dumps(runs[w][-1]), file=sys.stderr, flush=True)
    medians = {w: statistics.median(r["deals_per_s"] for r in runs[w]) for w in workers}
    base = medians[workers[0]]

    def median(w: int, key: str) -> float:
        return float(statistics.median(r[key] for r in runs[w]))

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
                **{key: median(w, key) for key in MEDIANS},
                "worker_cpu_s": [[round(c, 1) for c in r["worker_cpu_s"]] for r in runs[w]],
                "load_avg": [round(r["load_avg"], 1) for r in runs[w]],
                "lock_wait_share": max(r["lock_wait_share"] for r in runs[w]),
                "verify_clean": all(r["verify_clean"] for r in runs[w]),
                "fully_linked": all(r["fully_linked"] for r in runs[w]),
                "duplicates": max(max(r["duplicates"].values()) for r in runs[w]),
            }
            for w in workers
        ],
    }


#: per worker count, the median over the rounds
MEDIANS = (*CPU_KEYS, "deals_per_worker_cpu_s", "cores")


def table(result: dict[str, Any]) -> Table:
    out = Table(
        title=f"scale-out on PostgreSQL + Celery (N = {result['records']}, "
        f"{result['latency_ms']:g} ms vendor latency, median of {result['rounds']})"
    )
    columns: tuple[str, ...] = ("workers", "deals/s", "speed-up", "seconds per round")
    columns += ("deals / worker CPU s", "CPU s workers/emul./PG", "cores", "load", "lock waits")
    for column in (*columns, "verify", "duplicates"):
        out.add_column(column, justify="right")
    for row in result["per_workers"]:
        out.add_row(
            str(row["workers"]),
            f"{row['deals_per_s']:.1f}",
            f"{row['speedup']:.2f}×",
            " ".join(f"{s:.1f}" for s in row["seconds"]),
            f"{row['deals_per_worker_cpu_s']:.0f}",
            f"{row['workers_cpu_s']:.1f} / {row['emulators_cpu_s']:.1f} / "
            f"{row['postgres_cpu_s']:.1f}",
            f"{row['cores']:.2f}",
            " ".join(f"{load:.1f}" for load in row["load_avg"]),
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
    parser.add_argument(
        "--profile", type=Path, help="sample the workers' stacks into DIR (bench/sampler.py)"
    )
    args = parser.parse_args(argv)
    from sync.logging import configure_logging

    configure_logging(level="WARNING")
    workers = [int(w) for w in args.workers.split(",")]
    result = measure(args.records, workers, args.latency_ms, args.rounds, args.seed, args.profile)
    Console(width=120, stderr=True).print(table(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
