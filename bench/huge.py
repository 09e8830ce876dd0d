"""``--huge``: a million deals between Ruddr and Close, on PostgreSQL (issue 25). By hand only.

Ruddr and Close are seeded with half of ``--deals`` each and served over HTTP by a child
process; crmsync runs in child processes of its own (``crmsync run --once``: the embedded loop,
one process) against a fresh PostgreSQL database, with only those two systems configured and
no client-side rate limit (at Ruddr's 20 requests a second the 500,000 creates it receives
would take 7 h alone: the figure is crmsync's throughput, not the vendor's limit). Phases:

1. **initial load**: every deal created in the other system (1,000,000 creates);
2. **quiet cycle**: nothing changed (Ruddr is listed in full: it only scans; Close is asked
   what changed since its watermark: the load's own writes, read back once);
3. **quiet again**: the steady state (the load's last write by then `lookback` old: Close's
   listing of what changed is one empty page);
4. **churn**: 0.1 % of the deals edited (amount), half in each vendor, then one cycle.

Per phase: wall time, deals/s, crmsync's CPU time (user + system of its process: its own work,
not the time it waits on a vendor or on PostgreSQL) per deal, the vendor requests beside the
ideal, crmsync's peak RSS (``VmHWM``, polled), each system's poll (embedded: wall and CPU
time, from its ``capture_done`` log line; with workers: wall time, from its ``runs`` row),
and the emulators' CPU time and peak RSS apart from ours. ``--progress S``: a line on stderr
every S seconds of a phase (RSS, CPU, links, pushes done). At the end: the database's size on
disk (``pg_database_size``), and every deal linked once in both systems with nothing owed.

``python -m bench.huge --deals N`` (default 1,000,000) prints a table and writes JSON
(``--json``); ``python -m bench --huge`` is the same. ``--keep`` leaves the database.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.common import fresh_database, unlimited_config
from bench.emulator_child import EmulatorChild
from bench.huge_watch import Polls, Progress, cpu_seconds, poll_runs, vm_hwm_mb
from bench.large_load import _kind
from bench.scenarios import AMOUNT_EDIT, AUTH, PAGE, USERS
from sync.config import load_config
from sync.store.db import upgrade

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = {"ruddr": "RUDDR", "close": "CLOSE"}
DEFAULT_DEALS = 1_000_000
CHURN_SHARE = 0.001
PG = os.environ.get("CRMSYNC_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("CRMSYNC_BENCH_REDIS_URL", "redis://127.0.0.1:6379")
CHILD = (sys.executable, "-m", "bench.huge")


# -- the emulators' child process ------------------------------------------------------------


class Tally(list[dict[str, Any]]):
    """An emulator's request log that keeps counts, not entries: a million requests logged in
    full would hold gigabytes in the emulators' process."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix
        self.kinds: Counter[str] = Counter()
        self.references: set[str] = set()

    def append(self, entry: dict[str, Any]) -> None:
        kind = _kind(entry["path"], self.prefix, entry["method"])
        self.kinds[kind] += 1
        self.kinds["total"] += 1
        if int(entry["status"]) >= 400:
            self.kinds["errors"] += 1
        if kind == "reference":
            self.references.add(entry["path"])

    def clear(self) -> None:
        self.kinds.clear()
        self.references.clear()

    def report(self) -> dict[str, Any]:
        return {**self.kinds, "distinct_references": len(self.references)}


def serve(deals: int, seed: int) -> None:
    """Child: Ruddr and Close with half the deals each; on stdin ``counts`` prints the request
    counts since the last ``reset`` (which warms Close's listing first) as one JSON line; end
    of input stops."""
    from sync.emulators.server import build_all, running

    half = deals // 2
    emulators = {
        **build_all(only=["ruddr"], seed=seed, seed_opportunities=half),
        **build_all(only=["close"], seed=seed, seed_opportunities=deals - half),
    }
    tallies = {}
    for name, emulator in emulators.items():
        tallies[name] = emulator.requests = Tally(emulator.prefix)
    with running(emulators=emulators) as served:
        urls = {name: s.base_url for name, s in served.items()}
        print(json.dumps(urls), flush=True)
        for command in sys.stdin:
            if command.strip() == "reset":
                warm_close(urls["close"])
                for tally in tallies.values():
                    tally.clear()
            print(json.dumps({name: t.report() for name, t in tallies.items()}), flush=True)


def warm_close(url: str) -> None:
    """Have Close's emulator sort its deals by ``date_updated`` now, before a phase: after the
    seeding or a phase's writes its first listing re-sorts every deal, which at 500,000 and
    more outlasts crmsync's 30 s read timeout on a busy machine (the 1,000,000 run of
    2026-12-07 failed so). A vendor answers a page in constant time: the bench should too."""
    httpx.get(
        f"{url}/opportunity/",
        params={"date_updated__gte": "1970-01-01T00:00:00Z", "_order_by": "date_updated"},
        auth=httpx.BasicAuth("close-test-key", ""),
        timeout=None,
    ).raise_for_status()


class Emulators(EmulatorChild):
    """The parent's handle on the emulators' child: its URLs, counts, CPU time and RSS."""

    def __init__(self, deals: int, seed: int) -> None:
        super().__init__([*CHILD, "serve", "--deals", str(deals), "--seed", str(seed)])

    def ask(self, command: str) -> dict[str, dict[str, int]]:
        return dict(super().ask(command))


# -- crmsync's child processes --------------------------------------------------------------


def write_config(tmp: Path) -> Path:
    """config.yaml with Ruddr and Close only, and no client-side rate limit."""
    return unlimited_config(tmp, only=SYSTEMS)


def crmsync_env(config: Path, store: str, urls: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        **{f"{SYSTEMS[name]}_BASE_URL": url for name, url in urls.items()},
        "CRMSYNC_CONFIG": str(config),
        "CRMSYNC_DATABASE_URL": store,
        "CRMSYNC_LOG_LEVEL": "INFO",  # a few lines a run: `capture_done` times each poll
        "CRMSYNC_LOG_FORMAT": "json",
        "CRMSYNC_FIRST_RUN": "waive",  # seeded deals on both sides: a load, not a match
        "PYTHONPATH": str(ROOT),
    }


def run_once(env: dict[str, str], log: Path, progress: Progress) -> dict[str, Any]:
    """``crmsync run --once`` to its end: wall time, exit code, CPU time (``wait4``), peak
    RSS (``VmHWM``, read every 0.2 s while it lives) and each system's poll (``Polls``)."""
    started = time.perf_counter()
    polls = Polls(log)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sync", "run", "--once", "--no-live", "--max-wait", "600"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    peak = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, vm_hwm_mb(proc.pid) or 0.0)
        polls.read(time.perf_counter() - started, proc.pid)
        progress.tick([proc.pid])
        time.sleep(0.2)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall_s": time.perf_counter() - started,
        "exit": proc.returncode,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": peak,
        "polls": polls.spans(),
    }


class Workers:
    """``count`` Celery workers (``--pool solo``: one process each, so each one's RSS is one
    process's), consuming every queue; started and stopped by their own pids."""

    def __init__(self, count: int, env: dict[str, str], log: Path) -> None:
        self.procs = []
        for index in range(count):
            with log.with_name(f"worker{index}.log").open("ab") as out:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "celery", "-A", "sync.celery_app", "worker",
                         "--pool", "solo", "-n", f"huge{index}@%h", "--without-gossip",
                         "--without-mingle", "--loglevel", "WARNING"],
                        env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                    )
                )  # fmt: skip
        self.peaks = [0.0] * count

    def cpu_s(self) -> float:
        return sum(cpu_seconds(proc.pid) for proc in self.procs)

    def sample(self) -> None:
        for index, proc in enumerate(self.procs):
            self.peaks[index] = max(self.peaks[index], vm_hwm_mb(proc.pid) or 0.0)

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def free_redis(base: str) -> str:
    """A Redis database no test or other bench uses now (the tests' marker keys on db 0)."""
    import redis

    admin = redis.Redis.from_url(f"{base}/0")
    for number in range(15, 0, -1):
        if admin.set(f"crmsync-test-db:{number}", "huge", nx=True, ex=6 * 3600):
            redis.Redis.from_url(f"{base}/{number}").flushdb()
            return f"{base}/{number}"
    raise RuntimeError("no free Redis database (1..15)")


def release_redis(url: str) -> None:
    import redis

    base, number = url.rsplit("/", 1)
    redis.Redis.from_url(url).flushdb()
    redis.Redis.from_url(f"{base}/0").delete(f"crmsync-test-db:{number}")


def through_workers(
    workers: Workers, env: dict[str, str], url: str, timeout: float, progress: Progress
) -> dict[str, Any]:
    """Queue a poll of each system; wait until both polls that started after now have
    finished and nothing is owed. Same figures as :func:`run_once`, over every worker."""
    from celery import Celery

    from sync.celery_app import route_task

    app = Celery("crmsync-huge", broker=env["CRMSYNC_BROKER_URL"])
    app.conf.task_routes = (route_task,)
    cpu = workers.cpu_s()
    started, began = time.perf_counter(), dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for system in SYSTEMS:
        app.send_task("crmsync.poll_system", args=[system])
    app.close()
    store = sa.create_engine(url)
    done = False
    while not done and time.perf_counter() - started < timeout:
        time.sleep(1.0)
        workers.sample()
        progress.tick([proc.pid for proc in workers.procs])
        with store.connect() as conn:
            polled = conn.execute(
                sa.text("SELECT count(*) FROM cursors WHERE last_poll_at >= :t"), {"t": began}
            ).scalar_one()
            owed = conn.execute(
                sa.text("SELECT count(*) FROM outbox WHERE status IN ('pending', 'retry', "
                        "'in_flight')")
            ).scalar_one()  # fmt: skip
        done = polled == len(SYSTEMS) and owed == 0
    store.dispose()
    return {
        "wall_s": time.perf_counter() - started,
        "exit": 0 if done else 1,
        "cpu_s": workers.cpu_s() - cpu,
        "peak_rss_mb": max(workers.peaks),
        "peak_rss_per_worker_mb": list(workers.peaks),
        "polls": poll_runs(url, began),
    }


# -- the store -------------------------------------------------------------------------------


def store_facts(url: str) -> dict[str, Any]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:

        def one(sql: str) -> int:
            return int(conn.execute(sa.text(sql)).scalar_one())

        facts = {
            "deals": one("SELECT count(*) FROM records"),
            "links": one("SELECT count(*) FROM links"),
            "owed": one("SELECT count(*) FROM outbox WHERE status <> 'done'"),
            "dead_letters": one("SELECT count(*) FROM dead_letters"),
            "db_mb": one("SELECT pg_database_size(current_database())") / 2**20,
        }
    engine.dispose()
    return facts


def linked_pairs(url: str, count: int, rng: random.Random) -> list[tuple[str, str]]:
    """``count`` random deals to edit: (system, its id there), half in each system."""
    engine = sa.create_engine(url)
    picked: list[tuple[str, str]] = []
    with engine.connect() as conn:
        for index, system in enumerate(SYSTEMS):
            share = count // 2 if index == 0 else count - count // 2
            rows = conn.execute(
                sa.text(
                    "SELECT external_id FROM links WHERE system = :s ORDER BY random() LIMIT :n"
                ),
                {"s": system, "n": share},
            ).all()
            picked += [(system, str(row[0])) for row in rows]
    engine.dispose()
    rng.shuffle(picked)
    return picked


def edit(urls: dict[str, str], picks: list[tuple[str, str]], rng: random.Random) -> None:
    """The users' edits, through each vendor's API (their requests are not counted)."""
    clients = {}
    for name, url in urls.items():
        auth = httpx.BasicAuth("close-test-key", "") if name == "close" else None
        clients[name] = USERS[name](
            httpx.Client(base_url=url, headers=AUTH[name], auth=auth, timeout=60)
        )
    for system, external_id in picks:
        clients[system].edit(external_id, **AMOUNT_EDIT[system](rng.randint(1, 10**6)))


# -- the phases ------------------------------------------------------------------------------


def phase(
    name: str, emulators: Emulators, runner: Callable[[], dict[str, Any]], deals: int, ideal: int
) -> dict[str, Any]:
    emulators.ask("reset")
    emulator_cpu = emulators.cpu_s()
    ran = runner()
    counts = emulators.ask("counts")
    requests = sum(c.get("total", 0) for c in counts.values())
    return {
        "phase": name,
        **ran,
        "deals_per_s": deals / ran["wall_s"] if name == "initial load" else None,
        "cpu_us_per_deal": ran["cpu_s"] / deals * 1e6,
        "requests": requests,
        "ideal": ideal,
        "ratio": requests / ideal if ideal else None,
        "writes": sum(c.get("write", 0) for c in counts.values()),
        "errors": sum(c.get("errors", 0) for c in counts.values()),
        "emulator_cpu_s": emulators.cpu_s() - emulator_cpu,
        "per_system": counts,
    }


def measure(
    deals: int, seed: int = 7, keep: bool = False, workers: int = 0, every: float = 60.0
) -> dict[str, Any]:
    half = deals // 2
    pages = math.ceil(half / PAGE) + math.ceil((deals - half) / PAGE)
    rng = random.Random(seed)
    seeding = time.perf_counter()
    emulators = Emulators(deals, seed)
    seeded_s = time.perf_counter() - seeding
    databases = contextlib.ExitStack()  # the store, dropped at the end unless `keep`
    url = databases.enter_context(fresh_database(PG, "crmsync_huge", keep=keep))
    progress = Progress(url, every)
    broker = free_redis(REDIS) if workers else ""
    pool: Workers | None = None
    phases = []
    try:
        with tempfile.TemporaryDirectory(prefix="crmsync-huge-") as tmp:
            config = write_config(Path(tmp))
            env = crmsync_env(config, url, emulators.urls)
            lookback = load_config(config, env=env).sync.lookback.total_seconds()
            log = Path(tmp) / "crmsync.log"
            refs = 0
            if workers:
                upgrade(url)  # workers wait for the schema; `run --once` migrates itself
                env |= {"CRMSYNC_BROKER_URL": broker, "CRMSYNC_REDIS_PREFIX": "crmsync-huge"}
                pool = Workers(workers, env, log)
            workers_ = pool

            def runner() -> dict[str, Any]:
                if workers_ is None:
                    return run_once(env, log, progress)
                return through_workers(workers_, env, url, 6 * 3600, progress)

            def run(name: str, ideal: int) -> dict[str, Any]:
                nonlocal refs
                progress.start(name)
                result = phase(name, emulators, runner, deals, ideal + refs)
                if result["exit"] != 0:
                    result["log_tail"] = log.read_text(errors="replace")[-3000:]
                phases.append(result)
                if result["exit"] != 0:  # the log goes with the temporary directory: say it now
                    print(result["log_tail"], file=sys.stderr, flush=True)
                    raise RuntimeError(f"{name}: crmsync exited {result['exit']}: see log_tail")
                print(
                    json.dumps({k: v for k, v in result.items() if k != "per_system"}),
                    file=sys.stderr,
                    flush=True,
                )
                return result

            # ideal: each reference endpoint read once a run (a fresh process each time)
            load = run("initial load", pages + deals)
            refs = sum(c.get("distinct_references", 0) for c in load["per_system"].values())
            load["ideal"] += refs
            load["ratio"] = load["requests"] / load["ideal"]
            # Close re-reads `lookback` before its watermark: once that long has passed since
            # the load's last write, the second quiet cycle's window holds none of them
            time.sleep(lookback)
            # Ruddr, a scan system, lists every deal it now holds; Close, incremental, what
            # changed since its watermark less the lookback: one request when nothing did
            quiet_ideal = math.ceil(store_facts(url)["deals"] / PAGE) + 1
            # ... but the first cycle after a load reads the load's writes to Close back once
            readback = math.ceil(half / PAGE)
            run("quiet cycle", quiet_ideal - 1 + readback)
            # the steady state: Close's changes since the last cycle, none (issue 25's "quiet
            # cycle under 10 s per incremental system" is this cycle's Close poll)
            run("quiet again", quiet_ideal)
            changed = max(2, round(deals * CHURN_SHARE))
            edit(emulators.urls, linked_pairs(url, changed, rng), rng)
            run("churn 0.1 %", quiet_ideal + changed)
        facts = store_facts(url)
    finally:
        if pool is not None:
            pool.stop()
        if broker:
            release_redis(broker)
        emulators_peak = emulators.peak_mb()
        emulators.close()
        databases.close()
    return {
        "scenario": "huge",
        "deals": deals,
        "runtime": (
            f"{workers} Celery workers (--pool solo), PostgreSQL, Redis"
            if workers
            else "embedded (crmsync run --once, one process), PostgreSQL"
        ),
        "emulators_seed_s": seeded_s,
        "emulators_peak_rss_mb": emulators_peak,
        "phases": phases,
        "store": facts,
        # the emulators' fixtures add a few deals to the seeded ones
        "fully_linked": facts["links"] == 2 * facts["deals"] and facts["deals"] >= deals,
        "database": url if keep else None,
        "at": dt.datetime.now(dt.UTC).isoformat(),
    }


def table(result: dict[str, Any]) -> str:
    rows = [
        "phase          wall s   deals/s  cpu µs/deal  requests    ideal  ratio  writes"
        "  peak RSS MB  emulators cpu s"
    ]
    for p in result["phases"]:
        rate = f"{p['deals_per_s']:.0f}" if p["deals_per_s"] else "-"
        rows.append(
            f"{p['phase']:<13} {p['wall_s']:>7.1f} {rate:>9} {p['cpu_us_per_deal']:>12.0f}"
            f" {p['requests']:>9} {p['ideal']:>8} {p['ratio']:>6.3f} {p['writes']:>7}"
            f" {p['peak_rss_mb']:>12.0f} {p['emulator_cpu_s']:>16.1f}"
        )
        polls = p.get("polls") or {}
        if polls:
            rows.append(
                "  polls: "
                + ", ".join(
                    f"{system} {span['wall_s']:.1f} s"
                    + (f" ({span['cpu_s']:.1f} s cpu)" if "cpu_s" in span else "")
                    for system, span in polls.items()
                )
            )
    store = result["store"]
    rows.append(
        f"store: {store['deals']:,} deals, {store['links']:,} links, {store['owed']} owed, "
        f"{store['dead_letters']} dead letters, {store['db_mb']:.0f} MB on disk; "
        f"emulators peak RSS {result['emulators_peak_rss_mb']:.0f} MB, "
        f"seeded in {result['emulators_seed_s']:.0f} s"
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.huge", description=__doc__)
    parser.add_argument("mode", nargs="?", choices=("run", "serve"), default="run")
    parser.add_argument("--deals", type=int, default=DEFAULT_DEALS)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    parser.add_argument(
        "--workers", type=int, default=0, help="Celery workers (0: the embedded loop)"
    )
    parser.add_argument("--json", type=Path, default=Path("bench/huge.json"))
    parser.add_argument(
        "--progress", type=float, default=60.0, help="seconds between progress lines (0: none)"
    )
    args = parser.parse_args(argv)
    if args.mode == "serve":
        serve(args.deals, args.seed)
        return 0
    result = measure(args.deals, args.seed, args.keep, args.workers, args.progress)
    print(table(result))
    args.json.write_text(json.dumps(result, indent=2))
    print(f"JSON written to {args.json}")
    return 0 if result["fully_linked"] and not result["store"]["owed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
