"""Initial load with the emulators in another process: crmsync's own peak RSS and throughput.

In the in-process worlds the emulators' data (every deal of every vendor) lives in the
measured process, so its peak RSS says little about crmsync. Here a child process serves the
emulators over HTTP (``bench.emulator_child``, Ruddr seeded with N deals), and this process
runs nothing but crmsync — the shipped config.yaml, a fresh SQLite store, real HTTP — until
the outbox is empty.

``python -m bench.large_load run --records N`` prints one JSON object; ``python -m bench``
runs it in a fresh process as the ``initial_load_oop`` scenario (``--large``: 100,000).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import col, func, select

from bench.emulator_child import SHIPPED, EmulatorChild, origin
from bench.memory import peak_rss_mb
from bench.scenarios import (
    FAST_RETRY,
    PAGE,
    WRITES,
    load_latencies,
    percentile,
    union_seconds,
)
from sync.config import load_config
from sync.connectors.http.stats import REQUEST_STATS
from sync.connectors.ratelimit import TokenBucket
from sync.engine.context import Engine
from sync.engine.cycle import pending, run_cycle
from sync.store.db import make_engine, upgrade
from sync.store.models import Journal, Link, Record
from sync.timefmt import utcnow

ROOT = Path(__file__).resolve().parents[1]
MAX_CYCLES = 10
CHILD = (sys.executable, "-m", "bench.large_load")


def _requests(base_url: str, prefix: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{origin(base_url)}/_emulator/requests", timeout=120)
    answer.raise_for_status()
    return [r for r in answer.json()["requests"] if r["path"].startswith(prefix)]


def _kind(path: str, prefix: str, method: str) -> str:
    parts = path.removeprefix(prefix).strip("/").split("/")
    if parts[0] in ("opportunities", "opportunity"):
        if method in WRITES:
            return "write"
        return "list" if len(parts) == 1 else "get"
    return "reference"


def measure(records: int, seed: int = 7) -> dict[str, Any]:
    with EmulatorChild([*SHIPPED, "--records", str(records), "--seed", str(seed)]) as child:
        return _load(child.env(), records)


def _load(env: dict[str, str], records: int) -> dict[str, Any]:
    env["CRMSYNC_FIRST_RUN"] = "waive"  # a load, not a first-run match (sync.first_run)
    config = load_config(ROOT / "config.yaml", env=env)
    prefixes = {name: httpx.URL(cfg.base_url).path for name, cfg in config.systems.items()}
    with tempfile.TemporaryDirectory(prefix="crmsync-large-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'crmsync.db'}"
        upgrade(url)
        engine = Engine.from_config(
            config, make_engine(url), retry=FAST_RETRY, limiter=TokenBucket(), backoff_base=0.0
        )
        rss_before = peak_rss_mb()
        started_at = utcnow()
        spans: list[tuple[float, float]] = []  # every request's round trip, as it ended

        def timed(_key: object, seconds: float, _budget: object) -> None:
            now = time.perf_counter()
            spans.append((now - seconds, now))  # list.append: thread-safe

        REQUEST_STATS.observers.append(timed)
        started = time.perf_counter()
        cycles = 0
        try:
            for cycles in range(1, MAX_CYCLES + 1):  # noqa: B007 (reported)
                run_cycle(engine)
                if pending(engine) == 0:
                    break
        finally:
            REQUEST_STATS.observers.remove(timed)
        wall = time.perf_counter() - started
        engine_s = max(0.0, wall - union_seconds(spans))
        # the peak only grows: read it before the bench's own accounting below (the journal's
        # write times, the emulators' request logs — 300,000 parsed entries at N = 100,000)
        peak = peak_rss_mb()
        latencies = load_latencies(engine, started_at)
        left = pending(engine)
        store = _store_counts(engine)
        engine.close()
    systems = {}
    for name, cfg in config.systems.items():
        log = _requests(cfg.base_url, prefixes[name])
        kinds = Counter(_kind(r["path"], prefixes[name], r["method"]) for r in log)
        distinct = {
            r["path"] for r in log if _kind(r["path"], prefixes[name], r["method"]) == "reference"
        }
        systems[name] = {"total": len(log), **kinds, "distinct_references": len(distinct)}
    # Ideal: each system read once (Ruddr holds the N deals; the others a page of fixtures),
    # one create per deal a system lacked (= the creates that landed, when every deal is
    # linked everywhere, which ``fully_linked`` checks), each reference endpoint read once.
    lists = sum(math.ceil(records / PAGE) if n == "ruddr" else 1 for n in config.systems)
    refs = sum(s["distinct_references"] for s in systems.values())
    ideal = lists + store["create_requests"] + refs
    requests = sum(s["total"] for s in systems.values())
    return {
        "scenario": "initial_load_oop",
        "records": records,
        "cycles": cycles,
        "wall_s": wall,
        "records_per_s": records / wall if wall else 0.0,
        # wall time with no request of ours in flight, as in the in-process scenarios, but the
        # emulators run in another process: they do not share crmsync's GIL here
        "engine_s": engine_s,
        "engine_us_per_record": engine_s / records * 1e6 if records else 0.0,
        "peak_rss_mb": peak,
        "peak_rss_with_accounting_mb": peak_rss_mb(),
        "rss_before_mb": rss_before,
        "latency_p50_s": percentile(latencies, 0.5),
        "latency_p95_s": percentile(latencies, 0.95),
        "requests": requests,
        "ideal": ideal,
        "ratio": requests / ideal,
        "outbox_left": left,
        "deals": store["records"],
        "fully_linked": store["links"] == store["records"] * len(config.systems),
        "systems": systems,
        "at": dt.datetime.now(dt.UTC).isoformat(),
    }


def _store_counts(engine: Engine) -> dict[str, int]:
    with engine.session() as session:
        records = session.exec(select(func.count()).select_from(Record)).one()
        links = session.exec(select(func.count()).select_from(Link)).one()
        per_system = session.exec(
            select(Journal.system, func.count())
            .where(Journal.action == "created", col(Journal.reason).startswith("created in "))
            .group_by(Journal.system)
        ).all()
    creates = {str(system): int(count) for system, count in per_system}
    batched = sum(
        math.ceil(count / engine.connector(system).batch_limit) for system, count in creates.items()
    )
    return {
        "records": int(records),
        "links": int(links),
        "creates": sum(creates.values()),
        "create_requests": batched,  # a batch of batch_limit creates is one request
    }


def run_in_subprocess(records: int, seed: int = 7) -> dict[str, Any]:
    """``measure`` in a fresh interpreter, so its peak RSS is the load's alone."""
    done = subprocess.run(  # stderr passes through: a failed load shows why
        [*CHILD, "run", "--records", str(records), "--seed", str(seed)],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.large_load", description=__doc__)
    parser.add_argument("mode", choices=("run",))
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    from sync.logging import configure_logging

    configure_logging(level="WARNING")
    print(json.dumps(measure(args.records, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
