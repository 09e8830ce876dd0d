"""Initial load of N Ruddr deals into HubSpot, through HubSpot's batch endpoints (issue 22).

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
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sync.config import load_config
from sync.connectors.ratelimit import TokenBucket
from sync.emulators.hubspot import HubSpotEmulator
from sync.emulators.ruddr import RuddrEmulator
from sync.engine.context import Engine
from sync.engine.cycle import run_cycle
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    print(json.dumps(run(args.records, args.latency_ms), indent=2))


if __name__ == "__main__":
    main()
