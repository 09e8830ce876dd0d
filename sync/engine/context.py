"""The engine's working context: config, mapper, store, connectors, references, policies.

Built once per process (:func:`sync.runtime.context.build_engine`, over ``Engine.from_config``)
and handed to the engine functions; tasks and the CLI only build it and call those functions.
Everything it is tuned by is passed in, never read from module globals. Connector transports
can be injected (tests and the demo use the emulators in-process; production uses real HTTP).
"""

from __future__ import annotations

import threading
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
from sync.engine.refs import StoreRefs
from sync.mapping.mapper import Mapper

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
