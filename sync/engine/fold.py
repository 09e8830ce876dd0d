"""Folding one record's fields into another's when two records turn out to be one deal: at
the first run's match (``matching.linking``) and when a captured deal bridges two records
(``capture.bridge``). Field by field, as at a first match: each field's conflict policy decides,
ids and custom keys merge key by key, a field the policy holds is held."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sync.engine.context import Engine
from sync.engine.journal import Notes
from sync.engine.merge import Side, merge_field
from sync.store.models import Record
from sync.timefmt import parse_timestamp, utcnow


def fold_fields(engine: Engine, keep: Record, other: Record, notes: Notes, label: str) -> None:
    """Merge ``other``'s fields, provenance and holds into ``keep`` (in place), journaling
    each field it changes and each conflict on ``keep``, the reasons prefixed with
    ``label``. Moving ``other``'s rows is the caller's (``records.absorb``)."""
    ours, provenance = dict(keep.fields), dict(keep.provenance)
    held = list(dict.fromkeys([*keep.held, *other.held]))
    for name, value in other.fields.items():
        mine = provenance.get(name) or {}
        theirs = other.provenance.get(name) or {}
        decision = merge_field(
            name,
            None,
            Side(ours.get(name), mine.get("system"), _at(mine.get("at"))),
            Side(value, theirs.get("system"), _at(theirs.get("at"))),
            engine.policy_for(name),
            first_match=True,
        )
        if decision.outcome == "held" and name not in held:
            held.append(name)
        if decision.value != ours.get(name) and decision.outcome != "held":
            old, ours[name] = ours.get(name), decision.value
            if decision.outcome == "take_theirs" and theirs:
                provenance[name] = theirs
            reason = f"{label}: {decision.reason}"
            notes.add(keep.id, "field_changed", reason, field=name, old=old, new=decision.value)
        elif decision.conflict:
            reason = f"{label}: {decision.reason}"
            notes.add(keep.id, "conflict", reason, field=name, old=value, new=ours.get(name))
    keep.fields, keep.provenance, keep.held = ours, provenance, held
    keep.updated_at = utcnow()


def _at(value: Any) -> dt.datetime | None:
    if not value:
        return None
    return parse_timestamp(str(value))
