"""What a system should receive: the projection of a canonical record, diffed against the
system's shadow (DESIGN §2.4). Only changed fields are ever sent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Set as AbstractSet
from typing import Any, Protocol

from sqlmodel import Session

from sync.connectors.errors import ConnectorError
from sync.engine import derived, money
from sync.engine.context import Engine
from sync.engine.journal import enqueue_into, open_rows
from sync.store import links
from sync.store.models import Record

#: in ``Record.held``: part of an ambiguous first-run match (sync.engine.matching)
MATCH_HOLD = "@match"


class Canonical(Protocol):
    """What deciding a push reads of a record: a stored ``Record``, or one capture is creating."""

    fields: dict[str, Any]
    held: list[str]
    deleted_at: dt.datetime | None


class Copy(Protocol):
    """What deciding a push reads of a system's copy: a stored ``Link``, or a new one."""

    shadow: dict[str, Any]
    sent: dict[str, Any]
    deleted_at: dt.datetime | None


def pushable(engine: Engine, system: str) -> set[str]:
    """The canonical fields ever pushed to ``system``: those its mapping writes, but a field
    only the vendor decides (it takes no value for it), which is never sent."""
    return engine.mapper.fields_for(system, "outbound") - derived.unwritable(engine, system)


def desired(
    engine: Engine, system: str, record: Canonical, names: AbstractSet[str] | None = None
) -> dict[str, Any]:
    """The canonical fields this system should hold (held fields excluded), the amount in the
    currency it holds. Raises ``money.CurrencyMismatch`` when it cannot hold the deal's.
    ``names``: ``pushable`` of the system, when the caller asks for many records."""
    names = pushable(engine, system) if names is None else names
    wanted = {name: record.fields.get(name) for name in names if name not in record.held}
    return money.project(engine, system, record.fields, wanted)


def push_diff(
    engine: Engine,
    system: str,
    record: Canonical,
    link: Copy,
    names: AbstractSet[str] | None = None,
) -> dict[str, Any]:
    """Fields whose desired value differs from the shadow — unless the shadow is the vendor's
    lossy copy of exactly that value (``link.sent``), which would otherwise ping-pong.
    Nothing is owed to a copy the system's filter leaves out (``Link.filtered_at``)."""
    if getattr(link, "filtered_at", None) is not None:
        return {}
    diff: dict[str, Any] = {}
    for name, value in desired(engine, system, record, names).items():
        held = link.shadow.get(name)
        if value == held or link.sent.get(name) == [value, held]:
            continue
        if name == "amount" and money.holds_ours(engine, system, record.fields, held):
            continue  # a converted copy, in sync with the rate that made it
        diff[name] = value
    return diff


def creatable(engine: Engine, system: str) -> bool:
    return engine.config.systems[system].create


def push_op(
    engine: Engine,
    system: str,
    record: Canonical,
    link: Copy | None,
    names: AbstractSet[str] | None = None,
) -> str | None:
    """What ``system`` is owed for ``record``: ``create`` (it lacks the deal and may get it),
    ``update`` (its copy differs), or nothing. The one place this decision is made.
    ``names``: ``pushable`` of the system, when the caller asks for many records."""
    if link is None:
        if MATCH_HOLD in record.held:  # an ambiguous first-run match waits for a person
            return None
        return "create" if record.deleted_at is None and creatable(engine, system) else None
    if link.deleted_at is not None or record.deleted_at is not None:
        return None
    try:
        return "update" if push_diff(engine, system, record, link, names) else None
    except (money.CurrencyMismatch, ConnectorError):
        return "update"  # the push decides, and says why if it cannot write


def enqueue_pushes(engine: Engine, session: Session, record: Record, *, reason: str) -> list[str]:
    """Enqueue a push to every system whose copy differs (or that lacks the deal).

    Two queries per record whatever the number of systems: its links, its open rows."""
    copies = {link.system: link for link in links.of_record(session, record.id)}
    ops: dict[str, str] = {}
    for system in engine.systems:
        op = push_op(engine, system, record, copies.get(system))
        if op:
            ops[system] = op
    if ops:
        rows = open_rows(session, record.id)
        for system, op in ops.items():
            enqueue_into(session, rows.get(system), record.id, system, op, reason)
    return list(ops)
