"""Scenario harness: the emulators in-process, the shipped config.yaml, a fresh store.

``world.cycle()`` runs one ``crmsync run --once`` cycle; ``world.users[system]`` edits deals
through the vendor's own API; ``world.calls()`` counts vendor requests since the last reset.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from sync.config import Config, load_config
from sync.connectors.http import RetryPolicy
from sync.connectors.ratelimit import TokenBucket
from sync.emulators.base import Emulator
from sync.emulators.reference import TRUTO_ACCOUNTS
from sync.emulators.server import Served, build_all
from sync.engine.context import Engine
from sync.engine.cycle import CycleReport, run_cycle
from sync.engine.push import claim, prepare, send
from sync.engine.verify import verify
from sync.engine.verify_report import VerifyReport
from sync.store.db import make_engine, upgrade
from sync.store.models import Outbox
from tests.e2e.users import (
    CloseUser,
    HubSpotUser,
    ParsaLinkUser,
    RuddrUser,
    SalesforceUser,
    TrutoUser,
    VendorUser,
)

ROOT = Path(__file__).resolve().parents[2]
FAST_RETRY = RetryPolicy(
    attempts=4,
    timeout=5.0,
    wait_initial=0.001,
    wait_max=0.01,
    wait_jitter=0.0,
    max_vendor_wait=0.05,
)
AUTH = {
    "ruddr": {"Authorization": "Bearer ruddr-test-token"},
    "close": None,
    "parsalink": {"Authorization": "Bearer pk_test_parsalink"},
    "truto": {"Authorization": "Bearer truto-test-token"},
    "salesforce": {"Authorization": "Bearer sf-test-token"},
    "hubspot": {"Authorization": "Bearer hubspot-test-token"},
}


#: POSTs that change nothing: HubSpot's search and batch reads, Salesforce's sign-in (the
#: OAuth token endpoint, which every new process calls once)
READ_POSTS = ("/search", "/batch/read", "/oauth2/token")


def is_write(request: dict[str, Any]) -> bool:
    """A logged vendor request that changes something."""
    if request["method"] == "POST":
        return not str(request["path"]).endswith(READ_POSTS)
    return request["method"] in ("PUT", "PATCH", "DELETE")


def cli_env(
    served: Mapping[str, Served],
    store: Path,
    *,
    config: Path = ROOT / "config.yaml",
    first_run: str = "guided",
) -> dict[str, str]:
    """The environment of a `crmsync` command as an operator sets it up: ``config``, a SQLite
    store at ``store``, each served emulator's ``<NAME>_BASE_URL`` (what config.yaml reads),
    logs as JSON at warning level. ``first_run``: the guided first run a user starts with
    (config.yaml's default, named so that no value left in this process's environment
    decides), unless a test says why it waives it."""
    return {
        "CRMSYNC_CONFIG": str(config),
        "CRMSYNC_DATABASE_URL": f"sqlite:///{store}",
        "CRMSYNC_LOG_FORMAT": "json",
        "CRMSYNC_LOG_LEVEL": "warning",
        "CRMSYNC_FIRST_RUN": first_run,
        **{f"{name.upper()}_BASE_URL": s.base_url for name, s in served.items()},
    }


@dataclass
class World:
    config: Config
    engine: Engine
    emulators: dict[str, Emulator]  # by system name
    users: dict[str, Any] = field(default_factory=dict)

    def cycle(self, **kw: Any) -> CycleReport:
        return run_cycle(self.engine, **kw)

    def converge(self, cycles: int = 3) -> VerifyReport:
        for _ in range(cycles):
            self.cycle()
        return verify(self.engine)

    def calls(self, system: str, *, writes_only: bool = False) -> int:
        log = self.emulators[system].requests
        if writes_only:
            return sum(1 for r in log if is_write(r))
        return len(log)

    def reset_calls(self) -> None:
        for emulator in self.emulators.values():
            emulator.requests.clear()

    def restart(self) -> Engine:
        """A fresh engine on the same store and emulators, as after the process was killed:
        nothing of the old one (its worker id, its claims' holder) survives in memory."""
        old = self.engine
        self.engine = Engine.from_config(
            self.config,
            make_engine(old.db.url.render_as_string(hide_password=False)),
            transports={name: emu.transport() for name, emu in self.emulators.items()},
            retry=FAST_RETRY,
            limiter=TokenBucket(),
        )
        self.engine.backoff_base = old.backoff_base
        old.close()
        return self.engine

    def close(self) -> None:
        """The engine (and the transports its connectors use), then the users' clients: each
        in-process transport's event loop thread ends here, not whenever the GC finds it."""
        self.engine.close()
        for user in self.users.values():
            user.client.close()

    def time_passes(self) -> None:
        """Every waiting retry and every claim falls due — what minutes of waiting would do —
        and retries from now on are due at once."""
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        with self.engine.session() as session:
            session.execute(sa.update(Outbox).values(next_attempt_at=past))
            session.execute(
                sa.update(Outbox).where(Outbox.status == "in_flight").values(claimed_until=past)
            )
            session.commit()
        self.engine.backoff_base = 0.0

    def crash_mid_push(self, system: str, rows: int = 50, *, sent: bool = True) -> None:
        """A process killed between the vendors' commits and its bookkeeping: it claims up to
        ``rows`` of the system's outbox, journals the creates' intents, sends every request —
        and dies before recording a single answer. Then a fresh process starts.
        ``sent=False``: it dies after journaling the intents, before any request leaves."""
        ids = claim(self.engine, system, rows)
        for job in prepare(self.engine, system, ids, None):
            if sent:
                send(self.engine, job, None)
        self.restart()

    def faults(self, system: str, **faults: Any) -> None:
        emulator = self.emulators[system]
        with httpx.Client(transport=emulator.transport(), base_url="http://emu") as client:
            response = client.post("/_emulator/faults", json=faults)
        assert response.status_code == 200


def _user(kind: str, client: httpx.Client, options: dict[str, Any] | None = None) -> VendorUser:
    if kind == "truto":  # the integration behind the system's integrated account
        account = (options or {}).get("integrated_account_id")
        # an account Truto does not know (a test of doctor's finding) reads as Salesforce's
        integration = next((i for i, a in TRUTO_ACCOUNTS.items() if a == account), "salesforce")
        return TrutoUser(client, integration)
    users: dict[str, type[VendorUser]] = {
        "ruddr": RuddrUser,
        "close": CloseUser,
        "parsalink": ParsaLinkUser,
        "truto": TrutoUser,
        "salesforce": SalesforceUser,
        "hubspot": HubSpotUser,
    }
    return users[kind](client)


def make_world(
    tmp_path: Path,
    *,
    seed: int = 7,
    seed_opportunities: int = 0,
    overrides: dict[str, Any] | None = None,
    first_run: str = "waive",
    config_file: str = "config.yaml",
) -> World:
    """``first_run``: the scenarios here predate the guided first run and start from worlds
    whose systems already hold deals; they waive it unless a test is about it ("guided").
    ``config_file``: the shipped config, or one of ``examples/`` (relative to the repo)."""
    config = load_config(ROOT / config_file, env={})
    if overrides:
        config = config.model_copy(update=overrides)
    config = config.model_copy(
        update={"sync": config.sync.model_copy(update={"first_run": first_run})}
    )
    url = f"sqlite:///{tmp_path / 'crmsync.db'}"
    upgrade(url)
    by_vendor = build_all(seed=seed, seed_opportunities=seed_opportunities)
    if "hubspot" in by_vendor:  # in-process cycles take milliseconds: no search index lag
        by_vendor["hubspot"].index_lag = 0  # type: ignore[attr-defined]
    emulators = {name: by_vendor[cfg.type] for name, cfg in config.systems.items()}
    engine = Engine.from_config(
        config,
        make_engine(url),
        transports={name: emu.transport() for name, emu in emulators.items()},
        retry=FAST_RETRY,
        limiter=TokenBucket(),  # unconfigured: the emulators enforce no limits here either
    )
    engine.backoff_base = 0.0
    world = World(config, engine, emulators)
    for name, cfg in config.systems.items():
        auth = httpx.BasicAuth("close-test-key", "") if cfg.type == "close" else None
        client = httpx.Client(
            transport=emulators[name].transport(),
            base_url=cfg.base_url,
            headers=AUTH[cfg.type],
            auth=auth,
        )
        world.users[name] = _user(cfg.type, client, cfg.options)
    return world


def single_system(tmp_path: Path, system: str, seed_opportunities: int = 0) -> World:
    """A world whose config syncs ``system`` alone (no pushes to anywhere else)."""
    config = make_world(tmp_path / "probe").config
    overrides = {
        "systems": {system: config.systems[system]},
        "mapping": {system: config.mapping[system]},
    }
    return make_world(tmp_path, overrides=overrides, seed_opportunities=seed_opportunities)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = make_world(tmp_path)
    yield built
    built.close()
