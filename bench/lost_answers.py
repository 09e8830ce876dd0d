"""Vendor requests per lost create (issue 25): what a lost answer costs, per vendor.

``python -m bench.lost_answers [--records N] [--lost 0.2] [--failed 0.1] [--json PATH]``

Two loads of the same world (``bench.scenarios.make_world``: Ruddr seeded with N deals, and a
quarter of N made in Close by a user first, so every vendor is a create target): one with no
fault, one where every vendor loses ``--lost`` of its write answers *after* committing (the
emulators' ``fail_after_commit_rate``: a 502 or a dropped connection, the deal made) and
answers ``--failed`` of all its requests with a 5xx before doing anything (``error_rate``: a
create refused so is as much in doubt to us, but no deal was made — the recovery must prove
that). Both run cycles until the outbox is empty (``bench.scenarios.converge``). Per system:

- *lost creates*: create requests (``POST`` on the deals' collection; HubSpot: a batch
  create, one request for many deals) whose answer was a 5xx or nothing — each may have made
  a deal we must find, not make twice;
- *extra requests*: the lossy load's requests minus the clean load's, minus one per read (a
  GET, or HubSpot's search and batch read POSTs) that answered a 5xx (its retry is the price
  of that fault, not of a lost create): what the recoveries cost (look-ups, full reads of
  candidates, creates sent again);
- *per lost create*: extra ÷ lost creates (target ≤ 3 on every vendor);
- *duplicates*: deals the vendor holds beyond the records the store links there (must be 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlmodel import select

from bench.scenarios import World, classify, converge, make_world
from sync.logging import configure_logging
from sync.store.models import Link

#: the kinds of request (``bench.scenarios.classify``) that only read: HubSpot reads by POST
READS = frozenset({"list", "get", "reference"})
#: a share of Ruddr's seeded count made in Close first: Ruddr is a create target too
CLOSE_SHARE = 4


@dataclass
class Load:
    """One load's figures for one system."""

    requests: int
    lost_creates: int
    lost_writes: int  # every write whose answer was lost (creates among them)
    failed_reads: int  # reads answered with a 5xx (each retried once more)
    deals: int  # deals the vendor holds after the load
    linked: int  # links the store holds to that system


@dataclass
class Row:
    system: str
    clean: int  # requests of the load without faults
    lossy: int  # requests of the load with lost answers
    lost_creates: int
    lost_writes: int
    failed_reads: int
    duplicates: int

    @property
    def extra(self) -> int:
        return self.lossy - self.clean - self.failed_reads

    @property
    def per_lost_create(self) -> float:
        return self.extra / self.lost_creates if self.lost_creates else 0.0


def _lost(status: int) -> bool:
    """A write whose answer never came back whole: a 5xx after commit, or a dropped connection
    (0 over HTTP, 599 in-process)."""
    return status == 0 or status >= 500


def _create(request: dict[str, Any]) -> bool:
    """A create request: a POST on the deals' collection, or HubSpot's batch create (one
    request for up to 100 deals; its updates are POSTs too, on ``batch/update``)."""
    if request["method"] != "POST":
        return False
    path = request["path"].rstrip("/")
    return not path.endswith(("/batch/update", "/batch/archive", "/batch/upsert"))


def _seed_close(world: World, count: int) -> None:
    for n in range(count):
        world.users["close"].create(f"Close-born deal {n:05d}")


def load(records: int, lost: float, failed: float, seed: int) -> dict[str, Load]:
    """Build the world, run the load with ``lost`` of write answers lost after commit and
    ``failed`` of all requests refused with a 5xx, count per system."""
    world = make_world(records, seed=seed)
    try:
        _seed_close(world, max(5, records // CLOSE_SHARE))
        world.reset_logs()  # the users' requests are not ours
        for emulator in world.emulators.values():
            emulator.faults.fail_after_commit_rate = lost
            emulator.faults.error_rate = failed
        converge(world)
        for emulator in world.emulators.values():
            emulator.faults.fail_after_commit_rate = emulator.faults.error_rate = 0.0
        out: dict[str, Load] = {}
        with world.engine.session() as session:
            links = session.exec(select(Link.system)).all()
        for name, emulator in world.emulators.items():
            log = list(emulator.requests)
            failed = [r for r in log if _lost(r["status"])]
            kinds = [classify(emulator, r) for r in failed]
            writes = [r for r, kind in zip(failed, kinds, strict=True) if kind == "write"]
            out[name] = Load(
                requests=len(log),
                lost_creates=sum(1 for r in writes if _create(r)),
                lost_writes=len(writes),
                failed_reads=sum(1 for kind in kinds if kind in READS),
                deals=len(world.users[name].all()),
                linked=sum(1 for system in links if system == name),
            )
        return out
    finally:
        world.close()


def run(records: int, lost: float, failed: float, seed: int = 7) -> dict[str, Any]:
    clean = load(records, 0.0, 0.0, seed)
    lossy = load(records, lost, failed, seed)
    rows = [
        Row(
            system=name,
            clean=clean[name].requests,
            lossy=lossy[name].requests,
            lost_creates=lossy[name].lost_creates,
            lost_writes=lossy[name].lost_writes,
            failed_reads=lossy[name].failed_reads,
            duplicates=lossy[name].deals - lossy[name].linked,
        )
        for name in sorted(clean)
    ]
    return {
        "records": records,
        "lost": lost,
        "failed": failed,
        "seed": seed,
        "systems": [
            {**asdict(r), "extra": r.extra, "per_lost_create": r.per_lost_create} for r in rows
        ],
    }


def table(result: dict[str, Any]) -> Table:
    out = Table(
        title=f"requests per lost create (N = {result['records']}, "
        f"{result['lost']:.0%} of write answers lost after commit, "
        f"{result['failed']:.0%} of requests refused with a 5xx)"
    )
    for column in ("system", "clean", "lossy", "extra", "lost creates", "per lost create", "dup"):
        out.add_column(column, justify="left" if column == "system" else "right")
    for r in result["systems"]:
        out.add_row(
            r["system"],
            str(r["clean"]),
            str(r["lossy"]),
            str(r["extra"]),
            str(r["lost_creates"]),
            f"{r['per_lost_create']:.2f}",
            str(r["duplicates"]),
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lost_answers", description=__doc__)
    parser.add_argument("--records", type=int, default=400, help="Ruddr deals (400)")
    parser.add_argument("--lost", type=float, default=0.2, help="share of write answers lost")
    parser.add_argument("--failed", type=float, default=0.1, help="share of requests 5xx'd")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    configure_logging(level=args.log_level)
    result = run(args.records, args.lost, args.failed, args.seed)
    Console().print(table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
