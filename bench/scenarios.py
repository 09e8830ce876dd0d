"""Benchmark scenarios against the four emulators in-process (issue 7).

The world is built the way ``tests/e2e/conftest.py`` builds it (shipped ``config.yaml``, a fresh
SQLite store, in-process transports), except that Ruddr starts with ``N`` opportunities; the
store may be a fresh PostgreSQL database instead (``bench.store``).
Request counts come from the emulators' own request logs, so they count what a vendor would
see. Per-record propagation latency comes from the store's journal: the engine notes
``created`` / ``adopted`` / ``pushed`` right after the vendor answered a write, with the time.
The emulators' request log carries no timestamp, so it cannot say *when* a write landed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlmodel import col, func, select

from bench.memory import peak_rss_mb
from bench.store import DEFAULT_PG_URL, BackendClock, world_store
from sync.config import Config, load_config
from sync.connectors.http import RetryPolicy
from sync.connectors.ratelimit import TokenBucket
from sync.emulators.base import Emulator, EmulatorTransport, RateLimitState
from sync.emulators.ruddr import RuddrEmulator
from sync.emulators.server import build_all
from sync.engine.budget import rechecks_per_scan
from sync.engine.capture import capture_mode
from sync.engine.context import Engine
from sync.engine.cycle import run_cycle
from sync.engine.journal import OPEN_STATES
from sync.runtime import collector
from sync.store.db import make_engine
from sync.store.models import Journal, Link, Outbox
from sync.timefmt import utcnow
from tests.e2e.users import (
    CloseUser,
    HubSpotUser,
    ParsaLinkUser,
    RuddrUser,
    SalesforceUser,
    TrutoUser,
    VendorUser,
)

ROOT = Path(__file__).resolve().parents[1]
PAGE = 100  # largest page every vendor serves; the ideal list count is ceil(records / PAGE)
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_CYCLES = 10
MAX_WAIT_S = 120.0  # longest we sleep for a retry row to come due before giving up
CHURN_SHARE = 0.01
CHURN_ROUNDS = 3
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
    "salesforce": {"Authorization": "Bearer sf-test-token"},
    "hubspot": {"Authorization": "Bearer hubspot-test-token"},
}
USERS: dict[str, Callable[[httpx.Client], VendorUser]] = {
    "ruddr": RuddrUser,
    "close": CloseUser,
    "parsalink": ParsaLinkUser,
    "truto": TrutoUser,
    "salesforce": SalesforceUser,
    "hubspot": HubSpotUser,
}
#: the field a churn edit changes, per vendor type, and a value for it (canonical ``amount``)
AMOUNT_EDIT: dict[str, Callable[[int], dict[str, Any]]] = {
    "ruddr": lambda v: {"amount": float(v)},
    "close": lambda v: {"value": v * 100},  # Close keeps money in cents
    "parsalink": lambda v: {"value": float(v)},
    "truto": lambda v: {"amount": float(v)},
    "salesforce": lambda v: {"Amount": float(v)},
    "hubspot": lambda v: {"amount": str(v)},  # every HubSpot property is a string
}


# -- the world -----------------------------------------------------------------------------
@dataclass
class World:
    config: Config
    engine: Engine
    emulators: dict[str, Emulator]
    users: dict[str, Any]  # tests.e2e.users.*User: create, edit, get, all
    tmp: tempfile.TemporaryDirectory[str]
    held: dict[str, int]  # opportunities each system held before the load
    transports: dict[str, EmulatorTransport]  # the engine's, which time their round trips
    latency_ms: float = 0.0
    rate_limited: bool = False
    store: str = "sqlite"  # bench.store.STORES
    clock: BackendClock | None = None  # the PostgreSQL backends' CPU (None on SQLite)
    #: what goes with the world: its PostgreSQL database, dropped; its temporary directory
    resources: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def reset_logs(self) -> None:
        for emulator in self.emulators.values():
            emulator.requests.clear()
        for transport in self.transports.values():
            transport.in_flight.clear()

    def close(self) -> None:
        with self.resources:  # even if a close below fails
            self.engine.close()
            self.engine.db.dispose()  # a PostgreSQL database is then dropped with no session
            for transport in self.transports.values():  # one a connector never used included
                transport.close()
            for user in self.users.values():
                user.client.close()


def make_world(
    records: int,
    seed: int = 7,
    *,
    latency_ms: float = 0.0,
    rate_limited: bool = False,
    store: str = "sqlite",
    pg_url: str = DEFAULT_PG_URL,
) -> World:
    """The e2e world with ``records`` opportunities seeded in Ruddr and none elsewhere.

    ``latency_ms`` delays every vendor answer (the emulators' latency fault). ``rate_limited``
    switches on each emulator's documented limit and lets the engine size its client-side
    limiter from config.yaml's ``rate_limit`` per system (``build_connector`` does that when no
    limiter is passed), with the production retry policy and backoff. ``store``: ``sqlite``
    (a file) or ``postgresql`` (a new database on ``pg_url``'s server), see ``bench.store``;
    :meth:`World.close` drops it, and so does a failure here.
    """
    tmp = tempfile.TemporaryDirectory(prefix="crmsync-bench-")
    with contextlib.ExitStack() as resources:
        resources.callback(tmp.cleanup)
        url = resources.enter_context(world_store(store, Path(tmp.name), pg_url))
        world = _world(url, records, seed, latency_ms, rate_limited, tmp)
        world.store = store
        world.resources = resources.pop_all()
    return world


def _world(
    url: str,
    records: int,
    seed: int,
    latency_ms: float,
    rate_limited: bool,
    tmp: tempfile.TemporaryDirectory[str],
) -> World:
    """:func:`make_world` on the store at ``url``, empty with the schema at head."""
    # Ruddr's load and Truto's seeded deals: a load, not a first-run match (sync.first_run)
    config = load_config(ROOT / "config.yaml", env={"CRMSYNC_FIRST_RUN": "waive"})
    db = make_engine(url)
    # before the engine opens any connection, so every backend of its pool is counted
    clock = BackendClock(db) if db.dialect.name == "postgresql" else None
    by_vendor = build_all(seed=seed, seed_opportunities=0)
    by_vendor["ruddr"] = RuddrEmulator(seed=seed, seed_opportunities=records)
    if "hubspot" in by_vendor:  # cycles follow each other at once: no search index lag
        by_vendor["hubspot"].index_lag = 0  # type: ignore[attr-defined]
    emulators = {name: by_vendor[cfg.type] for name, cfg in config.systems.items()}
    transports = {name: emu.transport() for name, emu in emulators.items()}
    if rate_limited:
        engine = Engine.from_config(config, db, transports=transports)
    else:
        engine = Engine.from_config(
            config,
            db,
            transports=transports,
            retry=FAST_RETRY,
            limiter=TokenBucket(),  # unconfigured: the emulators enforce no limits either
            backoff_base=0.0,
        )
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
    # counted before latency and limits are on: the users' reads are not part of any figure
    held = {name: len(user.all()) for name, user in users.items()}
    for emulator in emulators.values():
        emulator.faults.latency_ms = latency_ms
        if rate_limited:  # a fresh, full bucket at the vendor's documented rate
            emulator.rate_limit = RateLimitState(
                True, emulator.default_rate, emulator.default_burst
            )
    collector.tune()  # as crmsync's own processes do once their engine is built
    world = World(config, engine, emulators, users, tmp, held, transports, latency_ms, rate_limited)
    world.clock = clock
    return world


# -- request accounting --------------------------------------------------------------------
def classify(emulator: Emulator, request: dict[str, Any]) -> str:
    """``list`` / ``get`` / ``write`` on opportunities, ``reference`` reads, or ``other``."""
    path = request["path"].removeprefix(emulator.prefix).strip("/")
    parts = path.split("/") if path else []
    if not parts or parts[0] == "_emulator":
        return "other"
    if parts[:4] == ["crm", "v3", "objects", "deals"]:  # HubSpot: reads may be POSTs
        if parts[-1] == "search" or parts[-2:] == ["batch", "read"]:
            return "list" if parts[-1] == "search" else "get"
        if request["method"] in WRITES:
            return "write"
        return "list" if len(parts) == 4 else "get"
    if parts[:2] == ["crm", "v4"] and parts[-1] == "read":  # a page's companies
        return "list"
    if parts[:2] == ["services", "data"] and len(parts) > 3:  # Salesforce's REST API
        return _salesforce_kind(parts[3:], request)
    if parts[0] in ("opportunities", "opportunity"):
        if request["method"] in WRITES:
            return "write"
        return "list" if len(parts) == 1 else "get"
    return "reference" if request["method"] == "GET" else "other"


def _salesforce_kind(rest: list[str], request: dict[str, Any]) -> str:
    """Salesforce: SOQL on Opportunity and its delete feed list, writes on Opportunity (one, or
    a collection: ``composite/sobjects``) write, one read gets; other queries are references."""
    if rest[0] == "query":
        return "list" if "FROM+Opportunity" in str(request.get("query")) else "reference"
    deals = rest[:2] == ["sobjects", "Opportunity"] or rest[:2] == ["composite", "sobjects"]
    if not deals:
        return "reference" if request["method"] == "GET" else "other"
    if request["method"] in WRITES:
        return "write"
    return "list" if rest[-1] == "deleted" else "get"


@dataclass
class SystemCalls:
    """One system's requests in a measured window, and the ideal for that window."""

    mode: str
    by_method: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    total: int = 0
    errors: int = 0  # 4xx/5xx answers
    throttled: int = 0  # 429 answers
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
            throttled=sum(1 for r in log if int(r["status"]) == 429),
        )
        # a vendor that writes in batches: a batch is one request
        batch = world.engine.connector(name).batch_limit
        writes = math.ceil(ideal_writes[name] / batch)
        calls.ideal = ideal_lists[name] + writes + len(distinct_refs)
        out[name] = calls
    return out


def pages(records: int) -> int:
    """List requests to read ``records`` (an empty listing still costs one request)."""
    return max(1, math.ceil(records / PAGE))


def waiting_seconds(world: World) -> float:
    """Time during which at least one engine request was in flight (the union of the
    in-process round trips: what a network and a vendor would take), to subtract from wall
    time. A union, not a sum: eight pushes in flight at once wait once, not eight times."""
    return union_seconds(span for t in world.transports.values() for span in t.in_flight)


def union_seconds(spans: Iterable[tuple[float, float]]) -> float:
    """The time covered by at least one of the ``(start, stop)`` spans."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(spans):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


# -- propagation latency (from the journal) ------------------------------------------------
def landed_writes(engine: Engine, since: dt.datetime) -> list[tuple[str, str, dt.datetime]]:
    """(record id, system, when) of every write that landed at or after ``since``.

    The push notes ``pushed`` after an update and ``created in X as ID`` / ``adopted in X as
    ID`` after a create, once the vendor answered. Capture notes ``created`` too (``new deal
    captured from X``): that is no write, hence the reason test."""
    landed = sa.or_(
        col(Journal.action) == "pushed",
        sa.and_(col(Journal.action) == "created", col(Journal.reason).startswith("created in ")),
        sa.and_(col(Journal.action) == "adopted", col(Journal.reason).startswith("adopted in ")),
    )
    with engine.session() as session:
        rows = session.exec(
            select(Journal.record_id, Journal.system, Journal.at).where(landed, Journal.at >= since)
        ).all()
    return [(rid, system or "", _aware(at)) for rid, system, at in rows]


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def load_latencies(engine: Engine, started: dt.datetime) -> list[float]:
    """Per record: seconds from the start of the load until its last target write landed."""
    last: dict[str, dt.datetime] = {}
    for rid, _system, at in landed_writes(engine, started):
        last[rid] = max(at, last.get(rid, at))
    return [(at - started).total_seconds() for at in last.values()]


def edit_latencies(
    world: World, edits: dict[str, tuple[str, dt.datetime]]
) -> tuple[list[float], int]:
    """Per edited record: seconds from the user's edit until the last write of it landed in
    another system. Also how many edits reached no other system at all."""
    since = min((at for _, at in edits.values()), default=utcnow())
    last: dict[str, dt.datetime] = {}
    for rid, system, at in landed_writes(world.engine, since):
        edited = edits.get(rid)
        if edited is None or system == edited[0] or at < edited[1]:
            continue
        last[rid] = max(at, last.get(rid, at))
    seconds = [(at - edits[rid][1]).total_seconds() for rid, at in last.items()]
    return seconds, len(edits) - len(last)


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile (``share`` in 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


# -- results -------------------------------------------------------------------------------
@dataclass
class Saturation:
    """How close to a vendor's limit one system's writes ran (rate-limit scenario)."""

    system: str
    allowed_rate: float  # the emulator's documented limit, requests/s (per key)
    allowed_burst: float  # the emulator's bucket capacity
    client_rate: float | None  # config.yaml's rate_limit.rate for the system (None: none)
    writes: int  # writes that landed (journal)
    window_s: float  # first to last landed write
    throttled: int  # 429 answers from this system, all requests

    @property
    def write_rate(self) -> float:
        return (self.writes - 1) / self.window_s if self.writes > 1 and self.window_s else 0.0

    @property
    def share(self) -> float:
        """Write rate ÷ allowed rate. Over a window short next to burst ÷ rate the burst
        lifts it past 100 %; :attr:`allowance_share` cannot pass 100 %."""
        return self.write_rate / self.allowed_rate if self.allowed_rate else 0.0

    @property
    def allowance_share(self) -> float:
        """Writes ÷ the requests the limit allowed over the window (rate × window + burst)."""
        allowed = self.allowed_rate * self.window_s + self.allowed_burst
        return self.writes / allowed if allowed else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "write_rate": self.write_rate,
            "share": self.share,
            "allowance_share": self.allowance_share,
        }


@dataclass
class Result:
    scenario: str
    records: int
    changed: int  # ideal writes: record copies the scenario had to create or update
    cycles: int
    wall_s: float
    engine_s: float  # wall time with no vendor request in flight
    peak_rss_mb: float
    outbox_left: int  # outbox rows not done (pending, retry, parked, in flight)
    systems: dict[str, SystemCalls]
    latency_ms: float = 0.0  # injected per vendor answer
    latencies: list[float] = field(default_factory=list, repr=False)
    unpropagated: int = 0  # edited records that reached no other system
    saturation: list[Saturation] = field(default_factory=list)
    #: CPU seconds of the process minus the emulators' event loop threads: the client's own
    #: work even where it overlapped a request in flight on another thread (which ``engine_s``
    #: does not count: with pushes in flight on 8 threads, most of it hides there)
    engine_cpu_s: float = 0.0
    store: str = "sqlite"  # bench.store.STORES
    #: CPU seconds of the PostgreSQL backends meanwhile (bench.store.BackendClock): the
    #: store's work, which runs in the process on SQLite (so in ``engine_cpu_s``) but in other
    #: processes on PostgreSQL. None on SQLite, or when ``/proc`` does not show the backends
    store_cpu_s: float | None = None

    @property
    def engine_cpu_us_per_record(self) -> float:
        return self.engine_cpu_s / self.records * 1e6 if self.records else 0.0

    @property
    def store_cpu_us_per_record(self) -> float | None:
        if self.store_cpu_s is None or not self.records:
            return None
        return self.store_cpu_s / self.records * 1e6

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
    def throttled(self) -> int:
        return sum(s.throttled for s in self.systems.values())

    @property
    def records_per_s(self) -> float:
        return self.records / self.wall_s if self.wall_s else 0.0

    @property
    def engine_us_per_record(self) -> float:
        return self.engine_s / self.records * 1e6 if self.records else 0.0

    @property
    def latency_p50_s(self) -> float | None:
        return percentile(self.latencies, 0.50)

    @property
    def latency_p95_s(self) -> float | None:
        return percentile(self.latencies, 0.95)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("latencies")
        data["saturation"] = [s.to_json() for s in self.saturation]
        data["latency_samples"] = len(self.latencies)
        for key in (
            "requests",
            "ideal",
            "ratio",
            "writes",
            "throttled",
            "records_per_s",
            "engine_us_per_record",
            "engine_cpu_us_per_record",
            "store_cpu_us_per_record",
            "latency_p50_s",
            "latency_p95_s",
        ):
            data[key] = getattr(self, key)
        for name, calls in self.systems.items():
            data["systems"][name]["writes"] = calls.writes
        return data


@contextmanager
def measured(world: World | None = None) -> Iterator[dict[str, float]]:
    """``wall`` seconds, and with a ``world`` its ``cpu``: the process's CPU seconds minus
    its emulators' (see ``Result.engine_cpu_s``); on PostgreSQL also ``store_cpu``, its
    backends' (see ``Result.store_cpu_s``), when ``/proc`` shows them."""
    box: dict[str, float] = {}
    store = store_cpu(world)
    started = time.perf_counter()
    cpu = time.process_time() - (emulator_cpu(world) if world else 0.0)
    try:
        yield box
    finally:
        box["wall"] = time.perf_counter() - started
        if world is not None:
            box["cpu"] = time.process_time() - emulator_cpu(world) - cpu
        now = store_cpu(world)
        if now is not None and store is not None:
            box["store_cpu"] = now - store


def store_cpu(world: World | None) -> float | None:
    """CPU seconds the world's PostgreSQL backends spent so far (None on SQLite)."""
    return world.clock.seconds() if world is not None and world.clock is not None else None


def emulator_cpu(world: World) -> float:
    """CPU seconds the engine's emulators spent answering, so far."""
    return sum(t.cpu_seconds() for t in world.transports.values())


def open_rows(world: World) -> int:
    """Outbox rows not finished: pending, waiting for a retry, parked or in flight."""
    with world.engine.session() as session:
        query = select(func.count()).select_from(Outbox).where(col(Outbox.status).in_(OPEN_STATES))
        return int(session.exec(query).one())


def next_due_in(world: World) -> float | None:
    """Seconds until the earliest row still to send comes due (None when there is none).

    Parked rows (waiting for a reference to appear) are left out: waiting cannot help them;
    they show in ``outbox_left``."""
    with world.engine.session() as session:
        due = session.exec(
            select(func.min(Outbox.next_attempt_at)).where(
                col(Outbox.status).in_(("pending", "retry", "in_flight"))
            )
        ).one()
    if due is None:
        return None
    return max(0.0, (_aware(due) - utcnow()).total_seconds())


def converge(world: World) -> int:
    """Run cycles until no outbox row is open (or ``MAX_CYCLES``); return how many ran.

    Rows waiting for a retry (a 429's reset) are waited for, up to ``MAX_WAIT_S`` each time:
    the daemon would pick them up on a later poll, and they belong to the load."""
    for cycle in range(1, MAX_CYCLES + 1):
        run_cycle(world.engine)
        wait = next_due_in(world)
        if wait is None:
            return cycle
        if wait > MAX_WAIT_S:
            break
        time.sleep(wait)
    return cycle


def result(
    world: World,
    scenario: str,
    records: int,
    changed: int,
    cycles: int,
    wall: float,
    ideal_lists: dict[str, int],
    ideal_writes: dict[str, int],
    cpu: float = 0.0,
    store_cpu: float | None = None,
) -> Result:
    return Result(
        scenario=scenario,
        records=records,
        changed=changed,
        cycles=cycles,
        wall_s=wall,
        engine_s=max(0.0, wall - waiting_seconds(world)),
        peak_rss_mb=peak_rss_mb(),
        outbox_left=open_rows(world),
        systems=tally(world, ideal_lists, ideal_writes),
        latency_ms=world.latency_ms,
        engine_cpu_s=cpu,
        store=world.store,
        store_cpu_s=store_cpu,
    )


# -- scenarios -----------------------------------------------------------------------------
def initial_load(world: World, scenario: str = "initial_load") -> Result:
    """Ruddr's opportunities to Close, ParsaLink and Truto until the outbox is empty.

    Ideal: every system read once (``ceil(held / 100)`` list requests, one for an empty
    system), one create per record a target lacks, each reference endpoint read once. The
    emulators' fixture deals (Ruddr and Truto each carry a few) count as records too.
    Latency per record: from the start of the load until its last target write landed.
    """
    world.reset_logs()
    started = utcnow()
    with measured(world) as t:
        cycles = converge(world)
    total = len(links_by_record(world))
    lists = {name: pages(count) for name, count in world.held.items()}
    writes = {name: total - count for name, count in world.held.items()}
    changed = sum(writes.values())
    out = result(
        world,
        scenario,
        total,
        changed,
        cycles,
        t["wall"],
        lists,
        writes,
        t["cpu"],
        t.get("store_cpu"),
    )
    out.latencies = load_latencies(world.engine, started)
    return out


def scan_or_one(world: World, name: str, records: int) -> int:
    """A cycle's ideal list requests: one for an incremental system, a full scan otherwise."""
    return 1 if capture_mode(world.engine, name) == "incremental" else pages(records)


def noop_cycle(world: World, records: int, scenario: str = "noop_cycle") -> Result:
    """One more cycle once everything is linked: only the cost of finding nothing changed."""
    world.reset_logs()
    with measured(world) as t:
        run_cycle(world.engine)
    lists = {name: scan_or_one(world, name, records) for name in world.emulators}
    writes = dict.fromkeys(world.emulators, 0)
    return result(
        world, scenario, records, 0, 1, t["wall"], lists, writes, t["cpu"], t.get("store_cpu")
    )


def noop_steady(world: World, records: int) -> Result:
    """The no-op after a quiet period: every vendor clock moves past the lookback, one warm
    cycle runs, then one cycle is measured. Incremental systems ask from the last complete
    poll's vendor server time (``Date``) minus the lookback, so this costs one list request
    each; scan systems read everything (``ceil(N / 100)``). The quiet period is long enough
    for the rechecks of the load's whole-second ParsaLink stamps to be done (25 deals a scan,
    README "Capture"): warm cycles run until one rechecks nothing."""
    quiet = world.config.sync.lookback.total_seconds() + 60
    for emulator in world.emulators.values():
        emulator.clock.advance(quiet)
    per_scan = max(1, rechecks_per_scan(world.config.systems["parsalink"], owed=0))
    for _ in range(math.ceil(records / per_scan) + 2):
        if not run_cycle(world.engine).counts["rechecked"]:
            break
    return noop_cycle(world, records, scenario="noop_steady")


def links_by_record(world: World) -> dict[str, dict[str, str]]:
    """Records linked in every system: record id -> system -> the vendor's id (store only)."""
    with world.engine.session() as session:
        rows = session.exec(select(Link)).all()
    out: dict[str, dict[str, str]] = {}
    for link in rows:
        out.setdefault(link.record_id, {})[link.system] = link.external_id
    return {rid: by for rid, by in out.items() if len(by) == len(world.emulators)}


def churn_round(
    world: World, rng: random.Random, records: int, share: float
) -> tuple[dict[str, tuple[str, dt.datetime]], Counter[str]]:
    """Edit ``share`` of the linked records (amount), each through a random system's API."""
    linked = links_by_record(world)
    count = max(1, round(records * share))
    systems = sorted(world.emulators)
    edits: dict[str, tuple[str, dt.datetime]] = {}
    edits_in: Counter[str] = Counter()
    for record_id in rng.sample(sorted(linked), min(count, len(linked))):
        name = rng.choice(systems)
        kind = world.config.systems[name].type
        world.users[name].edit(linked[record_id][name], **AMOUNT_EDIT[kind](rng.randint(1, 10**6)))
        edits[record_id] = (name, utcnow())  # the edit has landed: the clock starts
        edits_in[name] += 1
    return edits, edits_in


def churn(
    world: World,
    records: int,
    share: float = CHURN_SHARE,
    rounds: int = CHURN_ROUNDS,
    seed: int = 11,
) -> Result:
    """``rounds`` times: edit ``share`` of the records (amount), each in a random system, then
    one cycle. Figures add up over the rounds (the users' edits are not counted).

    Ideal per round: the normal read of every system, plus one write per edited record to
    each of the other systems. Latency: from each edit until its last write elsewhere landed.
    """
    rng = random.Random(seed)
    systems = sorted(world.emulators)
    logs: dict[str, list[dict[str, Any]]] = {name: [] for name in systems}
    lists: Counter[str] = Counter()
    writes: Counter[str] = Counter()
    latencies: list[float] = []
    unpropagated = wall = cpu = 0.0
    backends: float | None = None if world.clock is None else 0.0
    changed = 0
    for _ in range(rounds):
        edits, edits_in = churn_round(world, rng, records, share)
        world.reset_logs()  # the edits are the users' requests, not ours
        with measured(world) as t:
            run_cycle(world.engine)
        wall, cpu = wall + t["wall"], cpu + t["cpu"]
        if backends is not None:
            backends = backends + t["store_cpu"] if "store_cpu" in t else None
        for name in systems:
            logs[name] += world.emulators[name].requests
            lists[name] += scan_or_one(world, name, records)
            writes[name] += len(edits) - edits_in[name]
        changed += len(edits) * (len(systems) - 1)
        seconds, missing = edit_latencies(world, edits)
        latencies += seconds
        unpropagated += missing
    for name in systems:  # the accounting reads the request logs: hand it every round's
        world.emulators[name].requests[:] = logs[name]
    out = result(
        world, "churn", records, changed, rounds, wall, dict(lists), dict(writes), cpu, backends
    )
    out.latencies, out.unpropagated = latencies, int(unpropagated)
    return out


def saturation(world: World, out: Result, since: dt.datetime) -> list[Saturation]:
    """Per system that was written to: landed writes per second between its first and last
    landed write, against the emulator's documented limit, and the 429s it answered."""
    by_system: dict[str, list[dt.datetime]] = {}
    for _rid, system, at in landed_writes(world.engine, since):
        by_system.setdefault(system, []).append(at)
    rows = []
    for name, emulator in world.emulators.items():
        stamps = sorted(by_system.get(name, []))
        limit = world.config.systems[name].rate_limit
        rows.append(
            Saturation(
                system=name,
                allowed_rate=emulator.rate_limit.rate,
                allowed_burst=emulator.rate_limit.burst,
                client_rate=limit.rate if limit else None,
                writes=len(stamps),
                window_s=(stamps[-1] - stamps[0]).total_seconds() if stamps else 0.0,
                throttled=out.systems[name].throttled,
            )
        )
    return rows


def rate_limit(world: World) -> Result:
    """The initial load with every vendor's documented limit on (and the engine's limiter
    sized from config.yaml): how much of each allowed rate the writes use, how many 429s."""
    started = utcnow()
    out = initial_load(world, scenario="rate_limit")
    out.saturation = saturation(world, out, started)
    return out


#: every scenario name, in the order ``run`` runs them
SCENARIOS = (
    "initial_load",
    "noop_cycle",
    "churn",
    "noop_steady",
    "initial_load_latency",
    "rate_limit",
    "dlt_compare",
    "engine_cpu",
    "initial_load_oop",
    "recovery",
    "scaleout",
)
MAIN_WORLD = ("initial_load", "noop_cycle", "churn", "noop_steady")


@dataclass(frozen=True)
class Plan:
    """What to run, at which sizes. ``records`` and ``latency_ms`` are the main world's (its
    scenarios share one world, in order); the slow scenarios have their own sizes."""

    scenarios: tuple[str, ...] = SCENARIOS
    records: int = 1000
    latency_ms: float = 0.0
    injected_ms: float = 200.0  # initial_load_latency and rate_limit
    latency_records: int = 100
    ratelimit_records: int = 100
    dlt_records: int = 10_000
    recovery_records: int = 100
    scaleout_records: int = 1000
    scaleout_workers: tuple[int, ...] = (1, 2, 4)
    scaleout_rounds: int = 3
    seed: int = 7
    store: str = "sqlite"  # the in-process worlds' (bench.store)
    pg_url: str = DEFAULT_PG_URL  # the server of a postgresql store, and a database on it


def run_main_world(plan: Plan) -> list[Result]:
    """``initial_load``, ``noop_cycle``, ``noop_steady``, ``churn`` on one world, in order;
    each later one builds on the load (measured even when not printed). Churn comes after the
    quiet period of ``noop_steady``: steady churn, not edits inside the load's lookback. The
    quiet period runs only for those two: at 10,000 deals its warm cycles (a Ruddr scan each
    until the load's ParsaLink stamps are confirmed, ~450 of them) took longer than the load."""
    world = make_world(
        plan.records,
        seed=plan.seed,
        latency_ms=plan.latency_ms,
        store=plan.store,
        pg_url=plan.pg_url,
    )
    out: list[Result] = []
    try:
        load = initial_load(world)
        records = load.records
        if "initial_load" in plan.scenarios:
            out.append(load)
        if "noop_cycle" in plan.scenarios:
            out.append(noop_cycle(world, records))
        if {"noop_steady", "churn"} & set(plan.scenarios):
            steady = noop_steady(world, records)  # the quiet period churn starts from
            if "noop_steady" in plan.scenarios:
                out.append(steady)
        if "churn" in plan.scenarios:
            out.append(churn(world, records))
    finally:
        world.close()
    return out


def run_alone(plan: Plan, name: str) -> Result:
    """``initial_load_latency`` or ``rate_limit``, each on a world of its own."""
    limited = name == "rate_limit"
    records = plan.ratelimit_records if limited else plan.latency_records
    world = make_world(
        records,
        seed=plan.seed,
        latency_ms=plan.injected_ms,
        rate_limited=limited,
        store=plan.store,
        pg_url=plan.pg_url,
    )
    try:
        return rate_limit(world) if limited else initial_load(world, scenario=name)
    finally:
        world.close()


def run(plan: Plan) -> list[Result]:
    """Run the in-process scenarios of ``plan`` (``dlt_compare`` is :mod:`bench.dlt_compare`)."""
    out: list[Result] = []
    if set(MAIN_WORLD) & set(plan.scenarios):
        out += run_main_world(plan)
    for name in ("initial_load_latency", "rate_limit"):
        if name in plan.scenarios:
            out.append(run_alone(plan, name))
    return out
