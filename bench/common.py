"""What the process-level benches share: the shipped config's vendors, and the closing check
that the store agrees with every system."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlmodel import col, func, select

from sync.config import Config, load_config
from sync.engine.verify import verify
from sync.runtime.context import build_engine
from sync.store.models import Link, Record

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
