"""The engine's working context: config, mapper, store, connectors, references, policies.

Built once per process (:func:`sync.runtime.context.build_engine`, over ``Engine.from_config``)
and handed to the engine functions; tasks and the CLI only build it and call those functions.
Everything it is tuned by is passed in, never read from module globals. Connector transports
can be injected (tests and the demo use the emulators in-process; production uses real HTTP).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa
import structlog
from sqlmodel import Session

from sync.config import Config, PreferPolicy
from sync.connectors import build_connector
from sync.connectors.base import BaseConnector
from sync.engine.claims import CLAIM_SECONDS, ClaimKeeper, holder_id
from sync.engine.merge import Policy
from sync.engine.normalise import normalise_company, same_company_key
from sync.mapping.mapper import Mapper
from sync.store import refs as stored_refs
from sync.store.models import RefMap
from sync.timefmt import utcnow

log = structlog.get_logger("crmsync.engine")
#: first wait after a failed push, in seconds (doubled per attempt)
BACKOFF_BASE = 2.0


def new_id(prefix: str = "rec") -> str:
    """A unique id for records and runs: the prefix and 20 random hex digits (80 bits of a
    UUID4). Not time-ordered: order runs by ``started_at``, never by id."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


@dataclass
class Counts:
    """Per-run counters (stored in ``runs.counts``)."""

    values: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, n: int = 1) -> None:
        self.values[name] = self.values.get(name, 0) + n

    def merge(self, other: Counts) -> None:
        for name, n in other.values.items():
            self.add(name, n)

    def __getitem__(self, name: str) -> int:
        return self.values.get(name, 0)


class StoreRefs:
    """Resolves references (company, owner, stage) between canonical keys and vendor ids.

    Order: explicit entries in ``ref_maps`` (source ``config`` or ``created``), then the
    vendor's own listing (cached for the run), then auto-create where the system allows it.
    Keys match case-insensitively, ignoring surrounding spaces.

    Companies are linked across systems by identity (DESIGN §2.6): the first time a vendor
    company is seen — read on a deal, or found by name for a write — it is linked to a canonical
    company (a ``ref_maps`` row, source ``linked``): the one whose name is the same but for
    case, punctuation and a legal-form suffix, else a new one named as it is there. From then
    on its id alone decides, so a company renamed in one system keeps its deals everywhere
    (``sync.engine.companies`` lists the names that differ across a link).

    Shared by every thread of a process (one drain per system, several pushes per drain): each
    system's listings are guarded by that system's lock — held across the listing request, so
    concurrent pushes wait for one listing instead of each sending their own, and an
    auto-created company is created once — and the stored map and the pending rows by
    ``_lock``.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._by_id: dict[tuple[str, str], dict[str, str]] = {}
        self._by_key: dict[tuple[str, str], dict[str, str]] = {}
        self._refreshed: set[tuple[str, str]] = set()
        self._explicit: dict[tuple[str, str], list[RefMap]] | None = None
        self.pending: list[RefMap] = []
        self._lock = threading.RLock()
        self._system_locks: dict[str, threading.RLock] = {}
        self._listed_at = 0.0  # time.monotonic() of the last full forget

    def _lock_for(self, system: str) -> threading.RLock:
        with self._lock:
            return self._system_locks.setdefault(system, threading.RLock())

    def prime(self) -> None:
        """Load the stored reference map once per run, before any transaction is open (on
        SQLite a second connection inside a write transaction would wait for the first)."""
        with self._lock:
            if self._explicit is not None:
                return
            explicit: dict[tuple[str, str], list[RefMap]] = {}
            # a read: no write lock (a writer that waits for this lock meanwhile, inside
            # its transaction, would otherwise wait for us while we wait for it)
            with self._engine.read_session() as session:
                rows = [*stored_refs.every(session), *self.pending]  # learnt, not yet stored
            for row in rows:
                explicit.setdefault((row.system, row.kind), []).append(row)
            self._explicit = explicit

    def _load(self, system: str, kind: str) -> None:
        """Fill the cache of one (system, kind); the caller holds the system's lock."""
        slot = (system, kind)
        if slot in self._by_key:
            return
        by_id: dict[str, str] = {}
        by_key: dict[str, str] = {}
        try:
            refs = self._engine.connector(system).references(kind)
        except NotImplementedError:
            refs = []
        for ref in refs:
            by_id[ref.id] = ref.key
            by_key.setdefault(_fold(ref.key), ref.id)
        with self._lock:
            explicit = list((self._explicit or {}).get(slot, []))
        for row in explicit:
            by_id[row.vendor_id] = row.key
            by_key[_fold(row.key)] = row.vendor_id
        if kind == "company":  # a linked company is found by its link's name only (a rename
            linked = {row.vendor_id: _fold(row.key) for row in explicit}  # is not a move)
            by_key = {k: v for k, v in by_key.items() if linked.get(v, k) == k}
        self._by_id[slot], self._by_key[slot] = by_id, by_key

    def key_for(self, system: str, kind: str, vendor_id: str) -> str | None:
        with self._lock_for(system):
            self._load(system, kind)
            found = self._by_id[(system, kind)].get(vendor_id)
            if found is None and (system, kind) not in self._refreshed:
                # a reference created since the listing was cached (a new company): look again
                # once
                self._refreshed.add((system, kind))
                self._engine.connector(system).forget_references(kind)
                self._by_key.pop((system, kind), None)
                self._load(system, kind)
                found = self._by_id[(system, kind)].get(vendor_id)
            if found is not None and kind == "company":
                return self._link_company(system, vendor_id, found)
            return found

    def id_for(self, system: str, kind: str, key: str) -> str | None:
        with self._lock_for(system):
            self._load(system, kind)
            found = self._by_key[(system, kind)].get(_fold(key))
            if found is None and kind != "company" and (system, kind) not in self._refreshed:
                # a user (or stage) added there since the listing was cached: a deal waiting
                # for it heals without anyone's help (engine.unresolved); once per run
                self._refreshed.add((system, kind))
                self._engine.connector(system).forget_references(kind)
                self._by_key.pop((system, kind), None)
                self._load(system, kind)
                found = self._by_key[(system, kind)].get(_fold(key))
            if found is None and kind == "company":
                found = self._same_company(system, key)
            if found is not None and kind == "company" and not self._linked(system, found):
                self._remember(system, kind, key, found, "linked")
            if found is not None or kind != "company" or self._engine.dry_run:
                return found
            if not self._engine.config.systems[system].auto_create_companies:
                return None
            ref = self._engine.connector(system).create_reference(kind, key)
            self._remember(system, kind, key, ref.id, "created")
            return ref.id

    def _explicit_rows(self, system: str, kind: str) -> list[RefMap]:
        with self._lock:
            return list((self._explicit or {}).get((system, kind), []))

    def _linked(self, system: str, vendor_id: str) -> bool:
        return any(row.vendor_id == vendor_id for row in self._explicit_rows(system, "company"))

    def _link_company(self, system: str, vendor_id: str, name: str) -> str:
        """The canonical company of a vendor company seen for the first time (``name`` is its
        name there), linked to it from now on; a linked one's canonical key as it is."""
        if self._linked(system, vendor_id):
            return name  # the link's key (``_load`` put it over the listing's name)
        key = same_company_key(name, self.company_keys()) or name
        taken = any(_fold(row.key) == _fold(key) for row in self._explicit_rows(system, "company"))
        if not taken:  # else a second company of that name there: read as the linked one
            self._remember(system, "company", key, vendor_id, "linked")
        return key

    def company_keys(self) -> set[str]:
        """Every canonical company key linked in any system."""
        with self._lock:
            explicit = dict(self._explicit or {})
        companies = (rows for (_, kind), rows in explicit.items() if kind == "company")
        return {row.key for rows in companies for row in rows}

    def _same_company(self, system: str, key: str) -> str | None:
        """The one company of ``system`` whose name is ``key`` but for case, punctuation and a
        legal-form suffix ("Hooli" / "Hooli, Inc."), as the first-run match compares them;
        None when there is none or several (never a guess)."""

        wanted = normalise_company(key)
        found = {
            vendor_id
            for vendor_id, name in self._by_id[(system, "company")].items()
            if normalise_company(name) == wanted
        }
        return found.pop() if len(found) == 1 else None

    def _remember(self, system: str, kind: str, key: str, vendor_id: str, source: str) -> None:
        self._by_id[(system, kind)][vendor_id] = key
        self._by_key[(system, kind)][_fold(key)] = vendor_id
        row = RefMap(
            system=system,
            kind=kind,
            key=key,
            vendor_id=vendor_id,
            source=source,
            updated_at=utcnow(),
        )
        with self._lock:
            self.pending.append(row)
            # Known from now on without a re-read: another thread may be loading this slot.
            if self._explicit is not None:
                self._explicit.setdefault((system, kind), []).append(row)

    def take_pending(self) -> list[RefMap]:
        """Reference-map rows learnt during a transaction, for the caller to add to it."""
        with self._lock:
            rows, self.pending = self.pending, []
        return rows

    def give_back(self, rows: list[RefMap]) -> None:
        """Rows taken by a transaction that rolled back: the next transaction stores them."""
        if rows:
            with self._lock:
                self.pending[:0] = [_fresh(row) for row in rows]

    def forget(self, max_age: float | None = None) -> None:
        """Drop cached listings (a new run sees new companies and users). With ``max_age``
        (seconds), listings younger than that are kept — a cycle every 30 s need not re-read
        every owner and company list — but the once-per-run look-again on a miss is re-armed,
        so a company created since is still found; a renamed one shows within ``max_age``."""
        with self._lock:
            if max_age is not None and time.monotonic() - self._listed_at < max_age:
                self._refreshed.clear()
                self._explicit = None
                return
            self._listed_at = time.monotonic()
            self._by_id.clear()
            self._by_key.clear()
            self._refreshed.clear()
            self._explicit = None
            for connector in self._engine.connectors():
                connector.forget_references()


def _fresh(row: RefMap) -> RefMap:
    """A transient copy of a reference-map row (the original may be bound to a dead session)."""
    return RefMap(
        system=row.system,
        kind=row.kind,
        key=row.key,
        vendor_id=row.vendor_id,
        source=row.source,
        updated_at=row.updated_at,
    )


def _fold(key: str) -> str:
    return key.strip().casefold()


@dataclass
class Engine:
    """Everything the engine functions need. ``dry_run`` forbids vendor writes (``plan``)."""

    config: Config
    db: sa.Engine
    mapper: Mapper
    transports: Mapping[str, httpx.BaseTransport] = field(default_factory=dict)
    limiter: Any = None
    retry: Any = None
    dry_run: bool = False
    #: first wait after a failed push, doubled per attempt (tests make it tiny)
    backoff_base: float = BACKOFF_BASE
    #: who holds this engine's outbox claims (``host:pid:boot:n``, see sync.engine.claims)
    worker_id: str = field(default_factory=holder_id)
    #: how long a claim lasts unless renewed; the heartbeat renews it every quarter of that
    claim_seconds: float = CLAIM_SECONDS
    _connectors: dict[str, BaseConnector] = field(default_factory=dict)
    _session_bind: Any = None
    #: guards ``_connectors``: two threads must not build two connectors (two rate limiters)
    _connectors_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.refs = StoreRefs(self)
        self.claims = ClaimKeeper(self)

    @classmethod
    def from_config(
        cls,
        config: Config,
        db: sa.Engine,
        *,
        transports: Mapping[str, httpx.BaseTransport] | None = None,
        limiter: Any = None,
        retry: Any = None,
        claim_seconds: float = CLAIM_SECONDS,
        backoff_base: float = BACKOFF_BASE,
    ) -> Engine:
        """An Engine on ``db`` with everything it is tuned by passed in; a process builds it
        with :func:`sync.runtime.context.build_engine`, which picks these from its settings."""
        return cls(
            config=config,
            db=db,
            mapper=Mapper(config),
            transports=dict(transports or {}),
            limiter=limiter,
            retry=retry,
            claim_seconds=claim_seconds,
            backoff_base=backoff_base,
        )

    @property
    def systems(self) -> list[str]:
        return list(self.config.systems)

    def connector(self, system: str) -> BaseConnector:
        found = self._connectors.get(system)
        if found is not None:
            return found
        with self._connectors_lock:
            if system not in self._connectors:
                self._connectors[system] = build_connector(
                    system,
                    self.config.systems[system],
                    transport=self.transports.get(system),
                    limiter=self.limiter,
                    retry=self.retry,
                )
            return self._connectors[system]

    def connectors(self) -> list[BaseConnector]:
        """The connectors built so far."""
        with self._connectors_lock:
            return list(self._connectors.values())

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self._session_bind or self.db, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for reads only: on SQLite it begins DEFERRED, so it reads a WAL snapshot
        without waiting for (or blocking) the writers; it must not write."""
        with self.session() as session:
            if self._session_bind is None:
                session.connection(execution_options={"sqlite_begin": "DEFERRED"})
            yield session

    def policy_for(self, field_name: str) -> Policy:
        conflicts = self.config.conflicts
        raw = conflicts.fields.get(field_name, conflicts.default)
        order = tuple(conflicts.priority) or tuple(self.systems)
        if isinstance(raw, PreferPolicy):
            rest = tuple(s for s in order if s not in raw.prefer)
            return Policy("prefer", tuple(raw.prefer) + rest, conflicts.skew)
        if raw == "manual":
            return Policy("manual", order, conflicts.skew)
        return Policy("latest", order, conflicts.skew)

    def close(self) -> None:
        self.claims.stop()
        with self._connectors_lock:
            for connector in self._connectors.values():
                connector.close()
            self._connectors.clear()
