"""Vendor requests per lost create (issue 25): what a lost answer costs, per vendor.

``python -m bench.lost_answers [--records N] [--lost 0.2] [--batch-lost 0.5] [--failed 0.1]
[--json PATH]``

Two loads of the same world (``bench.scenarios.make_world``: Ruddr seeded with N deals, and a
quarter of N made in Close by a user first, so every vendor is a create target): one with no
fault, one where every vendor loses ``--lost`` of its write answers *after* committing (the
emulators' ``fail_after_commit_rate``: a 502 or a dropped connection, the deal made; a vendor
that creates in batches loses ``--batch-lost``: HubSpot's 100 deals a request make a handful
of creates, of which 20 % would lose one or none) and
answers ``--failed`` of all its requests with a 5xx before doing anything (``error_rate``: a
create refused so is as much in doubt to us, but no deal was made — the recovery must prove
that). Both run cycles until the outbox is empty (``bench.scenarios.converge``).

Each request is put in one of three classes by when it arrived (the emulators log its time):
during a cycle's push (``sync.engine.cycle._push_until_settled``, timed from outside: the
bench wraps it, nothing changes) it is a *write*, or else a *look-up* (the reads a drain
makes: its recoveries' listings, searches and full reads); during the captures it is a
*poll*. The lossy load runs more cycles than the clean one, so polls more — not recovery, so
its poll difference is a column of its own. Per system:

- *lost creates*: create requests (``POST`` on the deals' collection; HubSpot: a batch
  create, one request for up to 100 deals; Salesforce: an upsert on ``Crmsync_Id__c``, one
  deal or a collection of 200) whose answer was a 5xx or nothing — each may have made a deal
  we must find, not make twice;
- *extra writes* / *extra look-ups* / *extra polls*: the lossy load's minus the clean
  load's, the look-ups and polls less one per read that answered a 5xx (its retry is the
  price of that fault, not of a lost create);
- *per lost create*: (extra writes + extra look-ups) ÷ lost creates (target ≤ 3);
- *found*: records with a create intent there, linked there, and no create answered for
  them: deals a lost answer made, found since (by a recovery's look-up, or by a capture that
  knew our id). HubSpot creates 100 deals a request, so its few lost batches say little;
  *per found* (recovery ÷ found) says what one deal of a lost batch cost;
- *duplicates*: deals the vendor holds beyond the records the store links there (must be 0;
  a deal made by a lost answer and not linked yet counts too, so read it beside *left*);
- *left*: outbox rows still open when the load stopped (``MAX_CYCLES`` cycles: not converged).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from rich.console import Console
from rich.table import Table
from sqlmodel import col, select

from bench.scenarios import World, classify, converge, make_world
from sync.connectors.salesforce import EXTERNAL_ID as SALESFORCE_KEY
from sync.engine import cycle
from sync.engine.journal import OPEN_STATES
from sync.logging import configure_logging
from sync.store.models import Journal, Link, Outbox

#: the kinds of request (``bench.scenarios.classify``) that only read: HubSpot reads by POST
READS = frozenset({"list", "get", "reference"})
#: a share of Ruddr's seeded count made in Close first: Ruddr is a create target too
CLOSE_SHARE = 4


@dataclass
class Load:
    """One load's figures for one system: requests by class, read retries excluded."""

    writes: int
    lookups: int  # reads made while pushing, less those answered 5xx
    polls: int  # requests made while capturing, less reads answered 5xx
    failed_reads: int  # reads answered with a 5xx (each retried once more)
    lost_creates: int
    lost_writes: int  # every write whose answer was lost (creates among them)
    found: int  # deals made by a create whose answer was lost, found and linked since
    deals: int  # deals the vendor holds after the load
    linked: int  # links the store holds to that system
    left: int  # outbox rows still open when the load stopped (``MAX_CYCLES``: not converged)


@dataclass
class Row:
    system: str
    clean: Load
    lossy: Load

    @property
    def extra_writes(self) -> int:
        return self.lossy.writes - self.clean.writes

    @property
    def extra_lookups(self) -> int:
        return self.lossy.lookups - self.clean.lookups

    @property
    def extra_polls(self) -> int:
        return self.lossy.polls - self.clean.polls

    @property
    def recovery(self) -> int:
        """What the recoveries cost: creates sent again, look-ups, full reads."""
        return self.extra_writes + self.extra_lookups

    @property
    def per_lost_create(self) -> float:
        return self.recovery / self.lossy.lost_creates if self.lossy.lost_creates else 0.0

    @property
    def per_found(self) -> float:
        return self.recovery / self.lossy.found if self.lossy.found else 0.0

    def figures(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "clean": asdict(self.clean),
            "lossy": asdict(self.lossy),
            "lost_creates": self.lossy.lost_creates,
            "found": self.lossy.found,
            "extra_writes": self.extra_writes,
            "extra_lookups": self.extra_lookups,
            "extra_polls": self.extra_polls,
            "per_lost_create": self.per_lost_create,
            "per_found": self.per_found,
            "duplicates": self.lossy.deals - self.lossy.linked,
            "left": self.lossy.left,
        }


@contextlib.contextmanager
def push_phases() -> Iterator[list[tuple[float, float]]]:
    """The ``perf_counter`` spans of every cycle's push while inside (the emulators log each
    request's arrival on the same clock): what arrived then was sent by a drain."""
    spans: list[tuple[float, float]] = []
    original: Callable[..., Any] = cycle._push_until_settled

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spans.append((started, time.perf_counter()))

    with mock.patch.object(cycle, "_push_until_settled", timed):
        yield spans


def _pushing(request: dict[str, Any], spans: list[tuple[float, float]]) -> bool:
    return any(start <= request["started"] <= end for start, end in spans)


def _lost(status: int) -> bool:
    """A write whose answer never came back whole: a 5xx after commit, or a dropped connection
    (0 over HTTP, 599 in-process)."""
    return status == 0 or status >= 500


def _create(request: dict[str, Any]) -> bool:
    """A create request: a POST on the deals' collection, HubSpot's batch create (one request
    for up to 100 deals; its updates are POSTs too, on ``batch/update``), or Salesforce's
    upsert on our External ID field (a ``PATCH`` naming ``Crmsync_Id__c``: one deal, or a
    collection of up to 200)."""
    path = request["path"].rstrip("/")
    if request["method"] == "PATCH":
        return f"/{SALESFORCE_KEY}" in path
    if request["method"] != "POST":
        return False
    return not path.endswith(("/batch/update", "/batch/archive", "/batch/upsert"))


def _seed_close(world: World, count: int) -> None:
    for n in range(count):
        world.users["close"].create(f"Close-born deal {n:05d}")


def load(
    records: int, lost: float, failed: float, seed: int, batch_lost: float | None = None
) -> dict[str, Load]:
    """Build the world, run the load with ``lost`` of write answers lost after commit and
    ``failed`` of all requests refused with a 5xx, count per system."""
    world = make_world(records, seed=seed)
    try:
        _seed_close(world, max(5, records // CLOSE_SHARE))
        world.reset_logs()  # the users' requests are not ours
        for name, emulator in world.emulators.items():
            batches = world.engine.connector(name).batch_limit > 1
            emulator.faults.fail_after_commit_rate = lost
            if batches and batch_lost is not None:
                emulator.faults.fail_after_commit_rate = batch_lost
            emulator.faults.error_rate = failed
        with push_phases() as spans:
            converge(world)
        for emulator in world.emulators.values():
            emulator.faults.fail_after_commit_rate = emulator.faults.error_rate = 0.0
        with world.engine.session() as session:
            links = [(str(r), s) for r, s in session.exec(select(Link.record_id, Link.system))]
            notes = session.exec(
                select(Journal.record_id, Journal.system, Journal.action).where(
                    col(Journal.action).in_(("create_intent", "created"))
                )
            ).all()
            open_ = session.exec(
                select(Outbox.system).where(col(Outbox.status).in_(OPEN_STATES))
            ).all()
        return {
            name: _count(world, name, spans, links, _found(name, links, notes), open_.count(name))
            for name in world.emulators
        }
    finally:
        world.close()


def _found(
    name: str, links: list[tuple[str, str]], notes: Sequence[tuple[str, str | None, str]]
) -> int:
    """Records we meant to create in ``name`` that are linked there though no create's answer
    said so: their deal was made by a create whose answer was lost, and found since (by a
    recovery's look-up, or by a capture that knew it by our id)."""
    meant = {record for record, system, action in notes if system == name and action != "created"}
    created = {record for record, system, action in notes if system == name and action == "created"}
    linked = {record for record, system in links if system == name}
    return len((meant & linked) - created)


def _count(
    world: World,
    name: str,
    spans: list[tuple[float, float]],
    links: list[tuple[str, str]],
    found: int,
    left: int,
) -> Load:
    emulator = world.emulators[name]
    tally = {"write": 0, "lookup": 0, "poll": 0, "lookup_failed": 0, "poll_failed": 0}
    lost_creates = lost_writes = 0
    for request in emulator.requests:
        kind = classify(emulator, request)
        read = kind in READS
        klass = "poll" if not _pushing(request, spans) else "lookup" if read else "write"
        tally[klass] += 1
        if _lost(request["status"]) and read and klass != "write":
            tally[f"{klass}_failed"] += 1
        elif _lost(request["status"]) and kind == "write":
            lost_writes += 1
            lost_creates += _create(request)
    return Load(
        writes=tally["write"],
        lookups=tally["lookup"] - tally["lookup_failed"],
        polls=tally["poll"] - tally["poll_failed"],
        failed_reads=tally["lookup_failed"] + tally["poll_failed"],
        lost_creates=lost_creates,
        lost_writes=lost_writes,
        found=found,
        deals=len(world.users[name].all()),
        linked=sum(1 for _, system in links if system == name),
        left=left,
    )


def run(
    records: int, lost: float, failed: float, seed: int = 7, batch_lost: float | None = None
) -> dict[str, Any]:
    clean = load(records, 0.0, 0.0, seed)
    lossy = load(records, lost, failed, seed, batch_lost)
    rows = [Row(name, clean[name], lossy[name]) for name in sorted(clean)]
    return {
        "records": records,
        "lost": lost,
        "batch_lost": lost if batch_lost is None else batch_lost,
        "failed": failed,
        "seed": seed,
        "systems": [row.figures() for row in rows],
    }


def table(result: dict[str, Any]) -> Table:
    out = Table(
        title=f"requests per lost create (N = {result['records']}, "
        f"{result['lost']:.0%} of write answers lost after commit "
        f"({result['batch_lost']:.0%} in batches), "
        f"{result['failed']:.0%} of requests refused with a 5xx)"
    )
    columns = (
        "system", "+writes", "+look-ups", "+polls", "lost creates", "per lost create",
        "found", "per found", "dup", "left",
    )  # fmt: skip
    for column in columns:
        out.add_column(column, justify="left" if column == "system" else "right")
    for r in result["systems"]:
        out.add_row(
            r["system"],
            str(r["extra_writes"]),
            str(r["extra_lookups"]),
            str(r["extra_polls"]),
            str(r["lost_creates"]),
            f"{r['per_lost_create']:.2f}",
            str(r["found"]),
            f"{r['per_found']:.2f}",
            str(r["duplicates"]),
            str(r["left"]),
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lost_answers", description=__doc__)
    parser.add_argument("--records", type=int, default=400, help="Ruddr deals (400)")
    parser.add_argument("--lost", type=float, default=0.2, help="share of write answers lost")
    parser.add_argument(
        "--batch-lost", type=float, default=0.5, help="the same, batch-writing vendors"
    )
    parser.add_argument("--failed", type=float, default=0.1, help="share of requests 5xx'd")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    configure_logging(level=args.log_level)
    result = run(args.records, args.lost, args.failed, args.seed, args.batch_lost)
    Console(width=140).print(table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
