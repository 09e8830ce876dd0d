"""Partial writes when a reference cannot be resolved (DESIGN.md §2.6).

A deal whose owner, company or stage has no counterpart in a system still gets every other
field written there. The unresolved field keeps that system's current value — or, where
``systems.NAME.fallback`` names one for its kind, the fallback's — and is never blanked. The
push's outbox row stays ``parked`` with the reference in ``Outbox.waiting``; the drain tries it
again every :data:`RETRY_SECONDS` (the reference listing is looked at again once a run), so
it heals by itself once the reference exists there. The reference is named with what to do
about it in the run's report, ``status``, the journal and ``verify``.

A create leaves out only what the vendor can do without: an owner (the vendor assigns its
default). A create whose company or stage is unknown waits whole unless a fallback is
configured for it: a deal at an invented company (Close makes an "Untitled" lead) or in a
wrong stage would be worse than a late one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from sync.engine.context import Engine
from sync.mapping.errors import UnresolvedReference
from sync.store import outbox

#: seconds between two looks at a reference still unresolved
RETRY_SECONDS = 60
#: fields a create may leave out while their reference is unknown (the vendor has a default)
OPTIONAL_ON_CREATE = frozenset({"owner"})


@dataclass(frozen=True, slots=True)
class Waiting:
    """One field of one deal a system could not be written: its reference is unknown there."""

    system: str
    field: str
    kind: str
    key: str
    #: the key written in its place meanwhile (``systems.NAME.fallback``), if any
    fallback: str | None = None

    def stored(self) -> dict[str, Any]:
        return {"field": self.field, "kind": self.kind, "key": self.key, "fallback": self.fallback}

    @classmethod
    def of_row(cls, system: str, stored: Sequence[Mapping[str, Any]] | None) -> list[Waiting]:
        return [
            cls(system, str(w["field"]), str(w["kind"]), str(w["key"]), w.get("fallback"))
            for w in stored or ()
        ]

    @property
    def todo(self) -> str:
        """What a person can do about it."""
        if self.kind == "owner":
            how = f"add a user with that e-mail in {self.system}"
        elif self.kind == "company":
            how = (
                f"create it in {self.system}, or set "
                f"systems.{self.system}.auto_create_companies: true"
            )
        else:
            how = f"add it in {self.system}, or map it in mapping.{self.system}.{self.field}"
        return f"{how}, or set systems.{self.system}.fallback.{self.kind}"

    def describe(self) -> str:
        """One line: value, system, what happens meanwhile, what to do."""
        meanwhile = (
            f"written as the fallback {self.fallback!r} meanwhile"
            if self.fallback
            else f"{self.system} keeps its current {self.field}"
        )
        return (
            f"{self.kind} {self.key!r} has no counterpart in {self.system}: {meanwhile}; "
            f"{self.todo}"
        )


def vendor_payload(
    engine: Engine,
    system: str,
    fields: dict[str, Any],
    *,
    for_create: bool,
    record_id: str | None = None,
    held: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[Waiting]]:
    """The vendor payload of ``fields`` with every unresolved reference left out (or replaced
    by its fallback). ``fields`` is changed in place to what the payload carries; ``held``:
    what the system holds now (a fallback already there is not sent again). Raises
    ``UnresolvedReference`` for one a create cannot leave out."""
    waiting: list[Waiting] = []
    fallbacks = engine.config.systems[system].fallback
    while True:
        try:
            payload = engine.mapper.to_vendor(
                system, fields, engine.refs, for_create=for_create, record_id=record_id
            )
            return dict(payload), waiting
        except UnresolvedReference as exc:
            name = exc.field.partition(".")[0]
            fallback = fallbacks.get(exc.kind)  # type: ignore[call-overload]
            if name not in fields or (
                for_create and name not in OPTIONAL_ON_CREATE and not fallback
            ):
                raise
            earlier = next((w for w in waiting if w.field == name), None)
            if earlier is not None:  # the fallback is unknown there too
                waiting[waiting.index(earlier)] = Waiting(system, name, exc.kind, earlier.key)
                del fields[name]
                continue
            waiting.append(Waiting(system, name, exc.kind, exc.key, fallback))
            if fallback and (held or {}).get(name) != fallback:
                fields[name] = fallback
            else:
                del fields[name]


def of_exception(exc: UnresolvedReference) -> Waiting:
    """The waiting reference of a push that could not be written at all."""
    return Waiting(exc.system, exc.field.partition(".")[0], exc.kind, exc.key)


@dataclass(frozen=True, slots=True)
class WaitingReference:
    """A reference deals wait for in one system, with how many deals and which."""

    system: str
    field: str
    kind: str
    key: str
    fallback: str | None
    records: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """``status --json``'s ``waiting`` entries."""
        return {
            "system": self.system,
            "field": self.field,
            "kind": self.kind,
            "key": self.key,
            "fallback": self.fallback,
            "records": list(self.records),
            "todo": Waiting(self.system, self.field, self.kind, self.key).todo,
        }

    def describe(self) -> str:
        deals = f"{len(self.records)} deal" + ("s" if len(self.records) != 1 else "")
        item = Waiting(self.system, self.field, self.kind, self.key, self.fallback)
        return f"{item.describe()} ({deals})"


def waiting_references(session: Session, system: str | None = None) -> list[WaitingReference]:
    """Every reference deals wait for, grouped per (system, field, key)."""
    groups: dict[tuple[str, str, str, str], list[str]] = {}
    fallbacks: dict[tuple[str, str, str, str], str | None] = {}
    for row_system, record_id, stored in outbox.waiting_references(session, system):
        for item in Waiting.of_row(row_system, stored):
            key = (item.system, item.field, item.kind, item.key)
            groups.setdefault(key, []).append(record_id)
            fallbacks[key] = item.fallback
    return [
        WaitingReference(*key, fallbacks[key], tuple(records))
        for key, records in sorted(groups.items())
    ]


def by_record(session: Session, system: str) -> dict[str, list[Waiting]]:
    """The references each deal waits for in ``system``."""
    found: dict[str, list[Waiting]] = {}
    for row_system, record_id, stored in outbox.waiting_references(session, system):
        found.setdefault(record_id, []).extend(Waiting.of_row(row_system, stored))
    return found


def named(engine: Engine) -> list[WaitingReference]:
    """Every reference deals wait for (``status``), read without blocking a running sync."""
    with engine.read_session() as session:
        return waiting_references(session)
