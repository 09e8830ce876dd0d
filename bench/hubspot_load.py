"""Initial load of N Ruddr deals into HubSpot, through HubSpot's batch endpoints (issue 22),
and how close to HubSpot's limits the connector runs.

``python -m bench.hubspot_load --rate [--duration 40] [--workers 8] [--latency-ms 200]``: the
HubSpot emulator with its documented Professional limits on (190 requests per 10 s, 650,000 a
day), every answer ``--latency-ms`` late; ``--workers`` threads read deals through the
connector built as the runtime builds it, sharing one limiter sized by the shipped config and
then by the ``X-HubSpot-RateLimit-*`` headers. Prints the allowed rate, the achieved rate of
answered requests once the first window is spent (what the limit allows in steady state), the
ratio, and the 429s. Targets: >= 90 %, a handful of 429s at most.

``python -m bench.hubspot_load [--records 10000] [--latency-ms 0]``: the shipped config
narrowed to Ruddr and HubSpot, both emulators in-process, a fresh SQLite store. Counts
HubSpot's requests from its own log against the ideal: one read of the (almost empty) portal
(a search page, its companies, the archived listing),
each reference endpoint once, and one write request per batch of 100 deals.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sync.config import load_config
from sync.connectors import build_connector
from sync.connectors.http import RetryPolicy
from sync.connectors.ratelimit import TokenBucket
from sync.emulators.hubspot import HubSpotEmulator
from sync.emulators.ruddr import RuddrEmulator
from sync.engine.context import Engine
from sync.engine.cycle import run_cycle
from sync.logging import configure_logging
from sync.store.db import make_engine, upgrade

ROOT = Path(__file__).resolve().parents[1]
READS = ("/search", "/batch/read")


def kind(request: dict[str, Any]) -> str:
    path = str(request["path"])
    if "/objects/deals" in path or "/associations/" in path:
        reading = request["method"] == "GET" or path.endswith(READS)
        return "read" if reading else "write"
    return "reference"


def run(records: int, latency_ms: float = 0.0, seed: int = 7) -> dict[str, Any]:
    config = load_config(ROOT / "config.yaml", env={"CRMSYNC_FIRST_RUN": "waive"})
    keep = ("ruddr", "hubspot")
    config = config.model_copy(
        update={
            "systems": {k: v for k, v in config.systems.items() if k in keep},
            "mapping": {k: v for k, v in config.mapping.items() if k in keep},
        }
    )
    hubspot = HubSpotEmulator(seed=seed)
    hubspot.index_lag = 0
    emulators = {"ruddr": RuddrEmulator(seed=seed, seed_opportunities=records), "hubspot": hubspot}
    with tempfile.TemporaryDirectory(prefix="crmsync-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'crmsync.db'}"
        upgrade(url)
        engine = Engine.from_config(
            config,
            make_engine(url),
            transports={name: emu.transport() for name, emu in emulators.items()},
            limiter=TokenBucket(),
            backoff_base=0.0,
        )
        held = len(hubspot.collections["deals"])
        for emulator in emulators.values():
            emulator.faults.latency_ms = latency_ms
        started = time.perf_counter()
        cycles = 0
        while cycles < 10:
            cycles += 1
            run_cycle(engine)
            if len(hubspot.collections["deals"]) >= records + held:
                break
        wall = time.perf_counter() - started
        log = list(hubspot.requests)
        load = Counter(kind(r) for r in log)
        hubspot.requests.clear()
        run_cycle(engine)  # the no-op cycle after the load
        noop = Counter(kind(r) for r in hubspot.requests if r["method"] != "GET")
        engine.close()
    created = len(hubspot.collections["deals"]) - held
    references = len({r["path"] for r in log if kind(r) == "reference"})
    # an empty portal is read with one search page, its companies and the archived listing
    ideal = 3 + math.ceil(created / 100) + references
    total = sum(load.values())
    return {
        "records": records,
        "created": created,
        "cycles": cycles,
        "wall_s": round(wall, 1),
        "requests": total,
        "by_kind": dict(load),
        "by_route": dict(Counter(f"{r['method']} {r['path']}" for r in log)),
        "ideal": ideal,
        "ratio": round(total / ideal, 3),
        "noop_writes": noop.get("write", 0),
    }


def rate(duration: float, workers: int, latency_ms: float) -> dict[str, Any]:
    """Reads through the connector under HubSpot's limits for ``duration`` seconds."""
    cfg = load_config(ROOT / "config.yaml").systems["hubspot"]
    assert cfg.rate_limit is not None
    hubspot = HubSpotEmulator(seed=7, seed_opportunities=200, rate_limited=True)
    hubspot.faults.latency_ms = latency_ms
    window = float(hubspot.rate_limit.burst)  # requests per 10 s (Professional: 190)
    allowed = window / 10
    limiter = TokenBucket()  # one process's workers share it (Redis: every process's)
    limiter.configure("hubspot", cfg.rate_limit.rate, cfg.rate_limit.burst)
    deals = sorted(hubspot.collections["deals"])
    deadline = time.monotonic() + duration

    def work(offset: int) -> None:
        connector = build_connector(
            "hubspot",
            cfg,
            transport=hubspot.transport(),
            limiter=limiter,
            retry=RetryPolicy(timeout=60.0),
        )
        position = offset
        while time.monotonic() < deadline:
            connector.get(deals[position % len(deals)])
            position += workers

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    log = list(hubspot.requests)
    answered = [r["started"] - started for r in log if 200 <= r["status"] < 300]
    steady = [at for at in answered if at >= 10.0]  # after the first window's allowance
    achieved = len(steady) / max(1e-9, elapsed - 10.0)
    return {
        "duration_s": round(elapsed, 1),
        "workers": workers,
        "latency_ms": latency_ms,
        "allowed_per_s": allowed,
        "achieved_per_s": round(achieved, 2),
        "ratio": round(achieved / allowed, 3),
        "answered": len(answered),
        "answered_of_allowed_total": round(len(answered) / (window + allowed * elapsed), 3),
        "429s": sum(1 for r in log if r["status"] == 429),
        "limiter_rate_per_s": limiter.rate("hubspot"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=None)
    parser.add_argument("--rate", action="store_true", help="the rate-limit benchmark")
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    if args.rate:
        configure_logging(level="WARNING")
        latency = 200.0 if args.latency_ms is None else args.latency_ms
        print(json.dumps(rate(args.duration, args.workers, latency), indent=2))
        return
    print(json.dumps(run(args.records, args.latency_ms or 0.0), indent=2))


if __name__ == "__main__":
    main()
