"""Fields a vendor derives from another (DESIGN.md §2.11), as the engine applies them.

A connector declares them (``BaseConnector.derived``, in vendor paths); the mapper turns them
into canonical fields (``Mapper.derived``). Three rules follow, one per place they matter:

- **Push** (:func:`ride_along`): a write that changes the source carries the derived field's
  canonical value with it where the vendor accepts one — Salesforce keeps the deal's
  probability instead of resetting it to the new stage's default.
- **Answer** (:func:`follows`): where the vendor does not accept one, what it shows after our
  own write is that write's consequence: it goes into the shadow, never into the record.
- **Capture** (:func:`consequences`): a derived value that moved together with its source in
  an incoming record (or, where the vendor takes no value, that moved at all) is the vendor's
  consequence of the source change, not a person's edit:
  it is neither merged nor spread (a vendor that accepts a value gets ours back by the push).
  Where the vendor says which value the new stage sets (Salesforce's ``DefaultProbability``),
  only that value is the consequence: another one was set by a person, and is merged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sync.connectors import connector_class
from sync.connectors.errors import ConnectorError
from sync.engine.context import Engine
from sync.mapping.derived import Derived
from sync.mapping.errors import MappingError
from sync.mapping.paths import get_path


def of(engine: Engine, system: str) -> tuple[Derived, ...]:
    """The derived fields of ``system`` that its mapping reads."""
    declared = connector_class(engine.config.systems[system].type).derived
    return engine.mapper.derived(system, declared) if declared else ()


def unwritable(engine: Engine, system: str) -> set[str]:
    """Fields only the vendor decides (it accepts no value for them): never pushed there."""
    return {d.field for d in of(engine, system) if not d.accepts_value}


def ride_along(
    engine: Engine, system: str, diff: dict[str, Any], wanted: Mapping[str, Any]
) -> dict[str, Derived]:
    """Add to ``diff`` the derived fields whose source it changes, with their canonical value
    (``wanted``: what the system should hold), where the vendor accepts one; returns them."""
    added: dict[str, Derived] = {}
    for derived in of(engine, system):
        if not derived.accepts_value or derived.field in diff or derived.field not in wanted:
            continue
        if derived.sources & diff.keys():
            diff[derived.field] = wanted[derived.field]
            added[derived.field] = derived
    return added


def follows(engine: Engine, system: str, sent: Iterable[str]) -> dict[str, Derived]:
    """The fields a write of ``sent`` makes the vendor recompute, where it accepts no value."""
    names = set(sent)
    return {
        d.field: d
        for d in of(engine, system)
        if not d.accepts_value and d.field not in names and d.sources & names
    }


def consequences(
    engine: Engine,
    system: str,
    base: Mapping[str, Any],
    theirs: Mapping[str, Any],
    data: Mapping[str, Any] | None = None,
    *,
    first_match: bool = False,
) -> dict[str, Derived]:
    """The derived fields of an incoming record that moved because their source moved. Where
    the vendor says the value its source sets (``Derived.default``, read from the source's
    reference), a value other than that one was set by a person with the stage: an edit.

    A field the vendor alone decides (it takes no value: HubSpot's stage probability) is never
    a person's edit, whatever moved with it: its source may have moved before we saw the field
    at all (a write's answer that leaves it out, a deal matched on the first run)."""
    found: dict[str, Derived] = {}
    for derived in of(engine, system):
        name = derived.field
        if name not in theirs or theirs.get(name) == base.get(name):
            continue
        if not derived.accepts_value:
            found[name] = derived
            continue
        if first_match:
            continue
        if not any(s in theirs and theirs.get(s) != base.get(s) for s in derived.sources):
            continue
        default = _default(engine, system, derived, data)
        if default is _UNKNOWN or default == theirs.get(name):
            found[name] = derived
    return found


_UNKNOWN = object()


def _default(engine: Engine, system: str, derived: Derived, data: Mapping[str, Any] | None) -> Any:
    """The value the vendor gives ``derived.field`` for the source value in ``data``, in
    canonical form; ``_UNKNOWN`` when it does not say."""
    if derived.default is None or data is None or "stage" not in derived.sources:
        return _UNKNOWN
    raw = get_path(data, derived.source_path)
    names = {str(v) for v in (raw.values() if isinstance(raw, dict) else [raw]) if v is not None}
    try:
        stages = engine.connector(system).references("stage")
    except (NotImplementedError, ConnectorError):
        return _UNKNOWN
    for stage in stages:
        if stage.id in names or stage.key in names:
            value = get_path(stage.extra, derived.default)
            if value is None:
                return _UNKNOWN
            try:
                return engine.mapper.read_value(system, derived.field, value, engine.refs)
            except (MappingError, KeyError):
                return _UNKNOWN
    return _UNKNOWN


def sent_with(added: Mapping[str, Derived], diff: Mapping[str, Any]) -> str:
    """The journal's words for fields sent along with their source."""
    parts = []
    for name, derived in sorted(added.items()):
        source = ", ".join(sorted(derived.sources & diff.keys()))
        parts.append(f"{name} sent with {source} ({derived.why})")
    return "; ".join(parts)
