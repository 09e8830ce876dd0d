"""Salesforce direct: what an initial load of N Ruddr deals costs the org, and a no-op cycle.

    python -m bench.salesforce_load [--records 10000]

The world is examples/salesforce.yaml's Ruddr + Salesforce pair (tests/e2e/test_salesforce.py),
in-process. Counts come from the Salesforce emulator's request log (what the org's daily
allocation counts: every request under /services/data; the OAuth token endpoint is free).
The ideal write count is one collection request per 200 deals.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.e2e.test_salesforce import sf_world

COLLECTION = 200


def kind(method: str, path: str) -> str:
    if path.endswith("/oauth2/token"):
        return "token (free)"
    if "/composite/sobjects" in path:
        if method == "GET":
            return "collection read-back"
        return "collection create (upsert)" if "Crmsync_Id__c" in path else "collection update"
    if "/query" in path:
        return "SOQL page"
    if path.endswith("/deleted/") or path.endswith("/deleted"):
        return "Get Deleted"
    return f"{method} other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        world = sf_world(Path(tmp))
        world.emulators["ruddr"].add_opportunities(args.records, seed=5)
        emulator = world.emulators["salesforce"]
        started = time.perf_counter()
        cycles = 0
        while cycles < 6:
            cycles += 1
            report = world.cycle()
            if not report.left.total and cycles > 1:
                break
        elapsed = time.perf_counter() - started
        load = Counter(kind(r["method"], r["path"]) for r in emulator.requests)
        emulator.requests.clear()
        world.cycle()  # reads the load's own writes back once (they are within the lookback)
        after = Counter(kind(r["method"], r["path"]) for r in emulator.requests)
        for name in ("ruddr", "salesforce"):  # a quiet period longer than the lookback
            world.emulators[name].clock.advance(300)
        world.cycle()
        emulator.requests.clear()
        world.cycle()
        noop = Counter(kind(r["method"], r["path"]) for r in emulator.requests)
        world.engine.close()
    writes = load["collection create (upsert)"]
    ideal = math.ceil(args.records / COLLECTION)
    spent = sum(n for k, n in load.items() if k != "token (free)")
    print(f"initial load of {args.records} Ruddr deals into Salesforce: {cycles} cycles")
    print(f"  wall time {elapsed:.1f} s (in-process emulators, a shared machine)")
    for name, count in sorted(load.items()):
        print(f"  {name}: {count}")
    print(f"  creates: {writes} collection requests / ideal {ideal} = {writes / ideal:.2f}")
    print(f"  daily allocation spent: {spent} requests")
    print("first cycle after: " + ", ".join(f"{k} {n}" for k, n in sorted(after.items())))
    print(
        "no-op cycle after a quiet period: "
        + ", ".join(f"{k} {n}" for k, n in sorted(noop.items()))
    )


if __name__ == "__main__":
    main()
