"""Test helpers for the mapping layer: a dict-based RefResolver fake, the shipped config."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from sync.config import Config, load_config
from sync.emulators import reference
from sync.mapping.mapper import Mapper

ROOT = Path(__file__).resolve().parents[2]
CANONICAL_STAGES = ("prospecting", "qualification", "proposal", "negotiation", "won", "lost")


class FakeRefs:
    """An in-memory reference map: (system, kind) -> {vendor id: canonical key}."""

    def __init__(self, table: dict[tuple[str, str], dict[str, str]] | None = None) -> None:
        self.table: dict[tuple[str, str], dict[str, str]] = {
            k: dict(v) for k, v in (table or {}).items()
        }

    def add(self, system: str, kind: str, vendor_id: str, key: str) -> None:
        """Record ``vendor_id`` as THE id of ``key`` (replacing any id it had)."""
        ids = self.table.setdefault((system, kind), {})
        for old in [old for old, known in ids.items() if known == key]:
            del ids[old]
        ids[vendor_id] = key

    def key_for(self, system: str, kind: str, vendor_id: str) -> str | None:
        return self.table.get((system, kind), {}).get(vendor_id)

    def id_for(self, system: str, kind: str, key: str) -> str | None:
        for vendor_id, known in self.table.get((system, kind), {}).items():
            if known == key:
                return vendor_id
        return None


def shipped_config() -> Config:
    """The repository's config.yaml, loaded with an empty environment (all defaults)."""
    return load_config(ROOT / "config.yaml", env={})


def shipped_mapper() -> Mapper:
    return Mapper(shipped_config())


def config_with_mapping(systems: dict[str, str], mapping_yaml: str) -> Config:
    """A minimal Config with the given system types and a ``mapping:`` section in YAML."""
    return Config.model_validate(
        {
            "systems": {
                name: {"type": kind, "base_url": "http://127.0.0.1:1/x"}
                for name, kind in systems.items()
            },
            "mapping": yaml.safe_load(mapping_yaml),
        }
    )


def reference_refs(system: str, prefix: str) -> FakeRefs:
    """Companies and owners of the emulators' reference data with ids ``<prefix>company-N``."""
    refs = FakeRefs()
    for i, company in enumerate(reference.COMPANIES):
        refs.add(system, "company", f"{prefix}company-{i}", company)
    for i, (_, email) in enumerate(reference.USERS):
        refs.add(system, "owner", f"{prefix}user-{i}", email)
    return refs


# -- hypothesis strategies of canonical values ---------------------------------------------------
def texts(max_size: int = 60) -> st.SearchStrategy[str | None]:
    """Canonical text: a non-empty string or None."""
    return st.none() | st.text(min_size=1, max_size=max_size)


def amounts() -> st.SearchStrategy[str | None]:
    """Canonical money: a 2-place decimal string in a range every vendor can hold."""
    return st.none() | st.decimals(
        min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False
    ).map(lambda d: str(d.quantize(Decimal("0.01"))))


def probabilities(places: int = 4) -> st.SearchStrategy[str | None]:
    """Canonical probability with ``places`` decimals (2 for integer-percent vendors)."""
    scale = 10**places
    return st.none() | st.integers(0, scale).map(
        lambda n: str((Decimal(n) / scale).quantize(Decimal("0.0001")))
    )


def dates() -> st.SearchStrategy[str | None]:
    return st.none() | st.dates(dt.date(1990, 1, 1), dt.date(2100, 12, 31)).map(
        lambda d: d.isoformat()
    )


def tag_lists() -> st.SearchStrategy[list[str]]:
    tag = st.text(
        alphabet=st.characters(blacklist_characters=",", blacklist_categories=("Cs", "Z", "Cc")),
        min_size=1,
        max_size=12,
    )
    return st.lists(tag, max_size=5, unique=True).map(sorted)


def pick(values: Any) -> st.SearchStrategy[Any]:
    return st.none() | st.sampled_from(list(values))


# -- round trips -----------------------------------------------------------------------------------
Apply = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]
STATUS_OF_STAGE = {"won": "won", "lost": "lost", None: None}


def seed_round_trip(
    mapper: Mapper,
    system: str,
    seed: dict[str, Any],
    blank: dict[str, Any],
    apply: Apply,
    refs: FakeRefs,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Seed → canonical → payload → applied to ``blank`` as the vendor would → canonical again.

    Returns (first canonical record, payload); asserts the second read equals the first.
    """
    first = mapper.to_canonical(system, seed, refs)
    writable = mapper.fields_for(system, "outbound")
    fields = {name: value for name, value in first.items() if name in writable}
    payload = mapper.to_vendor(system, fields, refs, for_create=True)
    again = mapper.to_canonical(system, apply(copy.deepcopy(blank), payload), refs)
    assert again == first
    return first, payload


def assert_canonical_round_trip(
    mapper: Mapper,
    system: str,
    record: dict[str, Any],
    blank: dict[str, Any],
    apply: Apply,
    refs: FakeRefs,
) -> None:
    """Canonical → payload → applied by the vendor → canonical gives every written field back,
    and status follows the stage's type."""
    payload = mapper.to_vendor(system, record, refs, for_create=True)
    again = mapper.to_canonical(system, apply(copy.deepcopy(blank), payload), refs)
    # a create fills an empty field that has a `default` (Salesforce's CloseDate)
    defaulted = {
        name
        for name, value in record.items()
        if value is None and getattr(mapper.spec_of(system, name), "default", None) is not None
    }
    assert {name: again[name] for name in record if name not in defaulted} == {
        name: value for name, value in record.items() if name not in defaulted
    }
    if "status" in again:
        stage = record.get("stage")
        assert again["status"] == STATUS_OF_STAGE.get(stage, "open")


def canonical_records(**strategies: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Partial canonical records: any subset of the given fields."""
    return st.fixed_dictionaries({}, optional=strategies)


def assert_units_settle(
    mapper: Mapper,
    system: str,
    vendor: dict[str, Any],
    blank: dict[str, Any],
    apply: Apply,
    refs: FakeRefs,
    expected: dict[str, Any],
) -> None:
    """Vendor values finer than canonical (more decimals, another scale, a date-time in some
    zone) read as ``expected``; written back and read again they are still ``expected``: one
    lossy step at most, then stable (nothing drifts on a round trip)."""
    stored = {**copy.deepcopy(blank), **copy.deepcopy(vendor)}
    first = mapper.to_canonical(system, stored, refs)
    assert {name: first.get(name) for name in expected} == expected
    writable = mapper.fields_for(system, "outbound")
    fields = {name: first[name] for name in expected if name in writable}
    payload = mapper.to_vendor(system, fields, refs, for_create=False)
    again = mapper.to_canonical(system, apply(stored, payload), refs)
    assert {name: again.get(name) for name in expected} == expected


def assert_lossy_write_settles(
    mapper: Mapper,
    system: str,
    canonical: dict[str, Any],
    blank: dict[str, Any],
    apply: Apply,
    refs: FakeRefs,
    settled: dict[str, Any],
) -> None:
    """Canonical values finer than the vendor keeps are written once as ``settled`` (e.g. a
    probability to a whole percent), and ``settled`` then writes and reads as itself."""
    for values in (canonical, settled):
        payload = mapper.to_vendor(system, values, refs, for_create=False)
        again = mapper.to_canonical(system, apply(copy.deepcopy(blank), payload), refs)
        assert {name: again.get(name) for name in settled} == settled
