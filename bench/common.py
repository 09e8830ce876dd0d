"""What the benches share: the shipped config's vendors, that config without client-side
rate limits, a fresh PostgreSQL database, and the closing check that the store agrees with
every system."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url
from sqlmodel import col, func, select

from sync.config import Config, load_config
from sync.engine.verify import verify
from sync.runtime.context import build_engine
from sync.store.models import Link, Record

ROOT = Path(__file__).resolve().parents[1]

#: The shipped config.yaml's vendors, each with the prefix of the ``<PREFIX>_BASE_URL``
#: variable it reads (the emulators serve only these: one it does not use has no URL there).
ENV_OF = {
    "ruddr": "RUDDR",
    "close": "CLOSE",
    "parsalink": "PARSALINK",
    "truto": "TRUTO",
    "salesforce": "SALESFORCE",
    "hubspot": "HUBSPOT",
}


def unlimited_config(tmp: Path, only: Iterable[str] | None = None) -> Path:
    """Write ``tmp/config.yaml``: the shipped config.yaml without client-side rate limits
    (the emulators enforce none in the benches: with limits on, ParsaLink's 100 requests a
    minute would make every figure ParsaLink's budget, not the code's). ``only``: keep just
    these systems, and drop the others from the mapping and the conflict priorities too, so
    the config still names no system it does not hold."""
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    if only is not None:
        kept = list(only)
        data["systems"] = {name: data["systems"][name] for name in kept}
        data["mapping"] = {k: v for k, v in data.get("mapping", {}).items() if k in kept}
        conflicts = data.get("conflicts", {})
        conflicts["priority"] = [s for s in conflicts.get("priority", []) if s in kept]
        for policy in conflicts.get("fields", {}).values():
            if isinstance(policy, dict) and "prefer" in policy:
                policy["prefer"] = [s for s in policy["prefer"] if s in kept]
    for system in data["systems"].values():
        system.pop("rate_limit", None)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@contextlib.contextmanager
def fresh_database(admin_url: str, prefix: str, *, keep: bool = False) -> Iterator[str]:
    """A new, empty PostgreSQL database ``PREFIX_<random>`` on ``admin_url``'s server (any
    database there will do to create it: the benches pass ``test`` or ``postgres``); yields
    its URL, ``admin_url``'s with the database swapped. Dropped afterwards, even on failure and
    with sessions still open (``WITH (FORCE)``), unless ``keep``."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            if not keep:
                with admin.connect() as connection:
                    connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@dataclass(frozen=True)
class Verified:
    """``verify``'s verdict on a store, its deals and its links per system."""

    config: Config
    clean: bool
    deals: int
    links: dict[str, int]


def verified(env: Mapping[str, str], roots: Iterable[str]) -> Verified:
    """Turn every emulator's faults off (``verify`` reads every deal, it must not wait on
    the latency a bench injected), verify the store ``env``'s config names against every
    system, and count its deals and links."""
    for root in roots:
        httpx.post(f"{root}/_emulator/faults", json={}).raise_for_status()
    config = load_config(Path(env["CRMSYNC_CONFIG"]), env=env)
    engine = build_engine(config, distributed=False)
    try:
        report = verify(engine)
        with engine.session() as session:
            deals = int(session.exec(select(func.count()).select_from(Record)).one())
            links = dict(
                session.exec(select(Link.system, func.count()).group_by(col(Link.system))).all()
            )
    finally:
        engine.close()
        engine.db.dispose()
    return Verified(config, report.clean, deals, links)
