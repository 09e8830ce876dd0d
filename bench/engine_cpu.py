"""Engine CPU per record, without I/O: mapping in, the three-way merge, push planning.

The vendor pages are fetched once from in-process emulators (each seeded with ``records``
deals) and held in memory; then each pure stage is timed over every record, several rounds,
and the median round is reported in µs per record:

- ``map in``: ``Mapper.to_canonical`` (vendor JSON → canonical, references resolved);
- ``merge``: ``merge_field`` for every field, against a shadow in which one field moved;
- ``plan push``: ``push_diff`` + ``Mapper.to_vendor`` of that diff, per target system.

The issue's bar: one core must handle far more records per second than every vendor's limit
together (Ruddr 20/s, ParsaLink 1.5/s, Close and Truto ~20/s: under 100 writes/s).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sync.config import load_config
from sync.connectors.base import VendorRecord
from sync.connectors.ratelimit import TokenBucket
from sync.emulators.server import build_all
from sync.engine.context import Engine
from sync.engine.merge import Side, merge_field
from sync.engine.outbound import push_diff
from sync.store.db import make_engine, upgrade
from sync.store.models import Link, Record

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 5


@dataclass
class StageCost:
    system: str
    stage: str
    records: int
    us_per_record: float  # median of ROUNDS rounds

    @property
    def records_per_s(self) -> float:
        return 1e6 / self.us_per_record if self.us_per_record else float("inf")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "records_per_s": self.records_per_s}


def _median_us(work: Callable[[], int]) -> float:
    """Run ``work`` (returns how many records it did) ROUNDS times; median µs per record."""
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        done = work()
        rounds.append((time.perf_counter() - started) / max(done, 1) * 1e6)
    return statistics.median(rounds)


def _fetch(engine: Engine, system: str) -> list[VendorRecord]:
    connector = engine.connector(system)
    records = [r for page in connector.scan() for r in page]
    return [connector.get(r.external_id) if r.partial else r for r in records]


def engine_cpu(records: int = 1000, seed: int = 7) -> list[StageCost]:
    """Time the pure stages over ``records`` deals per system."""
    config = load_config(ROOT / "config.yaml", env={})
    with tempfile.TemporaryDirectory(prefix="crmsync-cpu-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'crmsync.db'}"
        upgrade(url)
        by_vendor = build_all(seed=seed, seed_opportunities=records)
        emulators = {name: by_vendor[cfg.type] for name, cfg in config.systems.items()}
        engine = Engine.from_config(
            config,
            make_engine(url),
            transports={name: emu.transport() for name, emu in emulators.items()},
            limiter=TokenBucket(),
        )
        try:
            return _measure(engine)
        finally:
            engine.close()


def _measure(engine: Engine) -> list[StageCost]:
    engine.refs.prime()
    fetched = {system: _fetch(engine, system) for system in engine.systems}
    canonical = {
        system: [engine.mapper.to_canonical(system, r.data, engine.refs) for r in recs]
        for system, recs in fetched.items()
    }
    out: list[StageCost] = []
    for system, recs in fetched.items():

        def map_in(system: str = system, recs: list[VendorRecord] = recs) -> int:
            for r in recs:
                engine.mapper.to_canonical(system, r.data, engine.refs)
            return len(recs)

        out.append(StageCost(system, "map in", len(recs), _median_us(map_in)))
    out.append(_merge_cost(engine, canonical))
    for system in engine.systems:
        out.append(_plan_cost(engine, system, canonical))
    return out


def _moved(fields: dict[str, Any]) -> dict[str, Any]:
    """The shadow as it was before the vendor's latest edit: the amount differed."""
    return {**fields, "amount": "1.00"}


def _merge_cost(engine: Engine, canonical: dict[str, list[dict[str, Any]]]) -> StageCost:
    rows = [(system, fields) for system, many in canonical.items() for fields in many]

    def merge_all() -> int:
        for system, theirs in rows:
            base = _moved(theirs)
            for name, value in theirs.items():
                merge_field(
                    name,
                    base.get(name),
                    Side(base.get(name), "ruddr", None),
                    Side(value, system, None),
                    engine.policy_for(name),
                )
        return len(rows)

    return StageCost("all", "merge", len(rows), _median_us(merge_all))


def _plan_cost(
    engine: Engine, target: str, canonical: dict[str, list[dict[str, Any]]]
) -> StageCost:
    """Plan a push to ``target`` of each deal of the other systems (an amount edit)."""
    pairs = []
    for system, many in canonical.items():
        if system == target:
            continue
        for i, fields in enumerate(many):
            record = Record(id=f"rec_{system}_{i}", fields=fields)
            link = Link(record_id=record.id, system=target, external_id=str(i))
            link.shadow, link.sent = _moved(fields), {}
            pairs.append((record, link))

    def plan_all() -> int:
        for record, link in pairs:
            diff = push_diff(engine, target, record, link)
            if diff:
                engine.mapper.to_vendor(target, diff, engine.refs, for_create=False)
        return len(pairs)

    return StageCost(target, "plan push", len(pairs), _median_us(plan_all))
