"""Benchmark scenarios against the four emulators in-process (issue 7, first cut).

The world is built the way ``tests/e2e/conftest.py`` builds it (shipped ``config.yaml``, a fresh
SQLite store, in-process transports), except that Ruddr starts with ``N`` opportunities.
Every figure comes from the emulators' own request logs, so it counts what a vendor would see.
"""

from __future__ import annotations

import math
import random
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import select

from sync.config import Config, load_config
from sync.connectors.http import RetryPolicy
from sync.connectors.ratelimit import TokenBucket
from sync.emulators.base import Emulator
from sync.emulators.ruddr import RuddrEmulator
from sync.emulators.server import build_all
from sync.engine.capture import capture_mode
from sync.engine.cycle import pending, run_cycle
from sync.engine.state import Engine
from sync.store.db import make_engine, upgrade
from sync.store.models import Link
from tests.e2e.users import CloseUser, ParsaLinkUser, RuddrUser, TrutoUser, VendorUser

ROOT = Path(__file__).resolve().parents[1]
PAGE = 100  # largest page every vendor serves; the ideal list count is ceil(records / PAGE)
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_CYCLES = 10
FAST_RETRY = RetryPolicy(
    attempts=4,
    timeout=5.0,
    wait_initial=0.001,
    wait_max=0.01,
    wait_jitter=0.0,
    max_vendor_wait=0.05,
)
AUTH: dict[str, dict[str, str] | None] = {
    "ruddr": {"Authorization": "Bearer ruddr-test-token"},
    "close": None,
    "parsalink": {"Authorization": "Bearer pk_test_parsalink"},
    "truto": {"Authorization": "Bearer truto-test-token"},
}
USERS: dict[str, Callable[[httpx.Client], VendorUser]] = {
    "ruddr": RuddrUser,
    "close": CloseUser,
    "parsalink": ParsaLinkUser,
    "truto": TrutoUser,
}
#: the field a churn edit changes, per vendor type, and a value for it (canonical ``amount``)
AMOUNT_EDIT: dict[str, Callable[[int], dict[str, Any]]] = {
    "ruddr": lambda v: {"amount": float(v)},
    "close": lambda v: {"value": v * 100},  # Close keeps money in cents
    "parsalink": lambda v: {"value": float(v)},
    "truto": lambda v: {"amount": float(v)},
}


# -- the world -----------------------------------------------------------------------------
@dataclass
class World:
    config: Config
    engine: Engine
    emulators: dict[str, Emulator]
    users: dict[str, Any]  # tests.e2e.users.*User: create, edit, get, all
    tmp: tempfile.TemporaryDirectory[str]

    def reset_logs(self) -> None:
        for emulator in self.emulators.values():
            emulator.requests.clear()

    def close(self) -> None:
        self.engine.close()
        for user in self.users.values():
            user.client.close()
        self.tmp.cleanup()


def make_world(records: int, seed: int = 7) -> World:
    """The e2e world with ``records`` opportunities seeded in Ruddr and none elsewhere."""
    config = load_config(ROOT / "config.yaml", env={})
    tmp = tempfile.TemporaryDirectory(prefix="crmsync-bench-")
    url = f"sqlite:///{Path(tmp.name) / 'crmsync.db'}"
    upgrade(url)
    by_vendor = build_all(seed=seed, seed_opportunities=0)
    by_vendor["ruddr"] = RuddrEmulator(seed=seed, seed_opportunities=records)
    emulators = {name: by_vendor[cfg.type] for name, cfg in config.systems.items()}
    engine = Engine.from_config(
        config,
        make_engine(url),
        transports={name: emu.transport() for name, emu in emulators.items()},
        retry=FAST_RETRY,
        limiter=TokenBucket(),  # unconfigured: the emulators enforce no limits either
    )
    engine.backoff_base = 0.0
    users: dict[str, Any] = {}
    for name, cfg in config.systems.items():
        auth = httpx.BasicAuth("close-test-key", "") if cfg.type == "close" else None
        client = httpx.Client(
            transport=emulators[name].transport(),
            base_url=cfg.base_url,
            headers=AUTH[cfg.type],
            auth=auth,
        )
        users[name] = USERS[cfg.type](client)
    return World(config, engine, emulators, users, tmp)


# -- request accounting --------------------------------------------------------------------
def classify(emulator: Emulator, request: dict[str, Any]) -> str:
    """``list`` / ``get`` / ``write`` on opportunities, ``reference`` reads, or ``other``."""
    path = request["path"].removeprefix(emulator.prefix).strip("/")
    parts = path.split("/") if path else []
    if not parts or parts[0] == "_emulator":
        return "other"
    if parts[0] in ("opportunities", "opportunity"):
        if request["method"] in WRITES:
            return "write"
        return "list" if len(parts) == 1 else "get"
    return "reference" if request["method"] == "GET" else "other"


@dataclass
class SystemCalls:
    """One system's requests in a measured window, and the ideal for that window."""

    mode: str
    by_method: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    total: int = 0
    errors: int = 0  # 4xx/5xx answers
    ideal: int = 0

    @property
    def writes(self) -> int:
        return self.by_kind.get("write", 0)


def tally(
    world: World, ideal_lists: dict[str, int], ideal_writes: dict[str, int]
) -> dict[str, SystemCalls]:
    """Count each emulator's logged requests; the ideal adds one look-up per distinct reference."""
    out: dict[str, SystemCalls] = {}
    for name, emulator in world.emulators.items():
        log = emulator.requests
        kinds = Counter(classify(emulator, r) for r in log)
        distinct_refs = {
            r["path"] for r in log if classify(emulator, r) == "reference"
        }  # each reference endpoint read once is the ideal
        calls = SystemCalls(
            mode=capture_mode(world.engine, name),
            by_method=dict(Counter(r["method"] for r in log)),
            by_kind=dict(kinds),
            total=len(log),
            errors=sum(1 for r in log if int(r["status"]) >= 400),
        )
        calls.ideal = ideal_lists[name] + ideal_writes[name] + len(distinct_refs)
        out[name] = calls
    return out


def pages(records: int) -> int:
    """List requests to read ``records`` (an empty listing still costs one request)."""
    return max(1, math.ceil(records / PAGE))


def emulator_seconds(world: World) -> float:
    """Time spent inside the emulators' handlers, to subtract from wall time."""
    return sum(float(r["duration_ms"]) for e in world.emulators.values() for r in e.requests) / 1000


# -- results -------------------------------------------------------------------------------
@dataclass
class Result:
    scenario: str
    records: int
    changed: int  # ideal writes: record copies the scenario had to create or update
    cycles: int
    wall_s: float
    engine_s: float  # wall time minus time inside emulator handlers
    peak_rss_mb: float
    outbox_left: int
    systems: dict[str, SystemCalls]

    @property
    def requests(self) -> int:
        return sum(s.total for s in self.systems.values())

    @property
    def ideal(self) -> int:
        return sum(s.ideal for s in self.systems.values())

    @property
    def ratio(self) -> float:
        return self.requests / self.ideal if self.ideal else float("nan")

    @property
    def writes(self) -> int:
        return sum(s.writes for s in self.systems.values())

    @property
    def records_per_s(self) -> float:
        return self.records / self.wall_s if self.wall_s else 0.0

    @property
    def engine_us_per_record(self) -> float:
        return self.engine_s / self.records * 1e6 if self.records else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in (
            "requests",
            "ideal",
            "ratio",
            "writes",
            "records_per_s",
            "engine_us_per_record",
        ):
            data[key] = getattr(self, key)
        for name, calls in self.systems.items():
            data["systems"][name]["writes"] = calls.writes
        return data


def peak_rss_mb() -> float:
    """Process peak RSS so far (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def measured() -> Iterator[dict[str, float]]:
    box: dict[str, float] = {}
    started = time.perf_counter()
    try:
        yield box
    finally:
        box["wall"] = time.perf_counter() - started


def converge(world: World) -> int:
    """Run cycles until the outbox is empty (or ``MAX_CYCLES``); return how many ran."""
    for cycle in range(1, MAX_CYCLES + 1):
        run_cycle(world.engine)
        if pending(world.engine) == 0:
            return cycle
    return MAX_CYCLES


def result(
    world: World,
    scenario: str,
    records: int,
    changed: int,
    cycles: int,
    wall: float,
    ideal_lists: dict[str, int],
    ideal_writes: dict[str, int],
) -> Result:
    return Result(
        scenario=scenario,
        records=records,
        changed=changed,
        cycles=cycles,
        wall_s=wall,
        engine_s=max(0.0, wall - emulator_seconds(world)),
        peak_rss_mb=peak_rss_mb(),
        outbox_left=pending(world.engine),
        systems=tally(world, ideal_lists, ideal_writes),
    )


# -- scenarios -----------------------------------------------------------------------------
def initial_load(world: World) -> Result:
    """Ruddr's opportunities to Close, ParsaLink and Truto until the outbox is empty.

    Ideal: every system read once (``ceil(held / 100)`` list requests, one for an empty
    system), one create per record a target lacks, each reference endpoint read once. The
    emulators' fixture deals (Ruddr and Truto each carry a few) count as records too.
    """
    held = {name: len(user.all()) for name, user in world.users.items()}
    world.reset_logs()
    with measured() as t:
        cycles = converge(world)
    total = len(links_by_record(world))
    lists = {name: pages(count) for name, count in held.items()}
    writes = {name: total - count for name, count in held.items()}
    changed = sum(writes.values())
    return result(world, "initial_load", total, changed, cycles, t["wall"], lists, writes)


def scan_or_one(world: World, name: str, records: int) -> int:
    """A cycle's ideal list requests: one for an incremental system, a full scan otherwise."""
    return 1 if capture_mode(world.engine, name) == "incremental" else pages(records)


def noop_cycle(world: World, records: int) -> Result:
    """One more cycle once everything is linked: only the cost of finding nothing changed."""
    world.reset_logs()
    with measured() as t:
        run_cycle(world.engine)
    lists = {name: scan_or_one(world, name, records) for name in world.emulators}
    writes = dict.fromkeys(world.emulators, 0)
    return result(world, "noop_cycle", records, 0, 1, t["wall"], lists, writes)


def links_by_record(world: World) -> dict[str, dict[str, str]]:
    """Records linked in every system: record id -> system -> the vendor's id (store only)."""
    with world.engine.session() as session:
        rows = session.exec(select(Link)).all()
    out: dict[str, dict[str, str]] = {}
    for link in rows:
        out.setdefault(link.record_id, {})[link.system] = link.external_id
    return {rid: by for rid, by in out.items() if len(by) == len(world.emulators)}


def churn(world: World, records: int, share: float = 0.01, seed: int = 11) -> Result:
    """Edit ``share`` of the records (amount), each in a random system, then one cycle.

    Ideal: the normal read of every system, plus one write per edited record to each of the
    other systems.
    """
    rng = random.Random(seed)
    linked = links_by_record(world)
    count = max(1, round(records * share))
    systems = sorted(world.emulators)
    edits_in: Counter[str] = Counter()
    for record_id in rng.sample(sorted(linked), min(count, len(linked))):
        name = rng.choice(systems)
        kind = world.config.systems[name].type
        external = linked[record_id][name]
        world.users[name].edit(external, **AMOUNT_EDIT[kind](rng.randint(1, 10**6)))
        edits_in[name] += 1
    world.reset_logs()  # the edits are the users' requests, not ours
    with measured() as t:
        run_cycle(world.engine)
    lists = {name: scan_or_one(world, name, records) for name in world.emulators}
    writes = {name: count - edits_in[name] for name in world.emulators}
    return result(world, "churn", records, count * (len(systems) - 1), 1, t["wall"], lists, writes)


SCENARIOS = ("initial_load", "noop_cycle", "churn")


def run(scenarios: tuple[str, ...], records: int, seed: int = 7) -> list[Result]:
    """Run the chosen scenarios on one world; later ones build on the initial load."""
    world = make_world(records, seed=seed)
    out: list[Result] = []
    try:
        load = initial_load(world)
        records = load.records
        if "initial_load" in scenarios:
            out.append(load)
        if "noop_cycle" in scenarios:
            out.append(noop_cycle(world, records))
        if "churn" in scenarios:
            out.append(churn(world, records))
    finally:
        world.close()
    return out
