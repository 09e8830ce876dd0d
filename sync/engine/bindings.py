"""What a system's links are bound to, and config changes to a running installation (issue 17).

Before each capture of a system (``before_capture``, called by ``cycle.poll`` and ``plan``):

- **Binding.** A system's links are vendor ids of one account. The store keeps, per system,
  its *binding* — type, base URL, account (Truto's ``integrated_account_id``; room for a
  HubSpot portal or Salesforce org id) — and a config that points the system elsewhere holds
  it with a message, instead of reading every deal as deleted. Putting the old value back
  releases it. ``crmsync rebind SYSTEM`` says it is the same account moved (links kept);
  ``--new-account`` sets the old account's links aside (kept under a shelf name, restored if
  the system is bound to that account again) and starts the system like a newly added one.
- **Mapping.** A fingerprint of each mapped field (and the filter) is kept per system. When one
  changes — added, removed, re-added, transform changed — the changed fields are dropped from
  that system's shadows and every deal of it is read again (its stored stamps forgotten), so
  the normal three-way merge decides each of them: a vendor edit made while the field was
  unmapped is a change on that side, not something to overwrite. Then every deal the system
  is owed a write for is queued (``catch_up``).
- **Out and back.** A cycle that runs without a system in the config marks it removed. When it
  is configured again it is read completely before anything is pushed to it (``push_blocked``),
  then caught up: every change it missed, every deal created meanwhile.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlmodel import Session

from sync.config import Config, mask_url
from sync.engine import guard
from sync.engine.context import Counts, Engine
from sync.engine.journal import enqueue_into
from sync.engine.outbound import push_op
from sync.store import cursors, links, outbox, records, refs, systems
from sync.store.models import SystemState
from sync.timefmt import utcnow

log = structlog.get_logger("crmsync.bindings")

#: the connector option naming the account a system type is bound to
ACCOUNT_OPTION = {"truto": "integrated_account_id", "hubspot": "portal_id", "salesforce": "org_id"}
#: types whose account id names the account wherever it is served (a Salesforce org keeps its
#: id when My Domain or an org migration changes its instance URL)
URL_MAY_MOVE = frozenset({"salesforce"})
#: a shelved system's links and references live under ``system + SHELF + fingerprint``
SHELF = "@"
#: pseudo-fields of the mapping fingerprint: a change re-reads, but drops no shadow field
_WHOLE = ("filter", "record_id")


def binding_of(config: Config, system: str) -> dict[str, Any]:
    """What the system's links are bound to, from the config (no secrets)."""
    cfg = config.systems[system]
    binding: dict[str, Any] = {"type": cfg.type, "base_url": mask_url(cfg.base_url)}
    option = ACCOUNT_OPTION.get(cfg.type)
    if option is not None:
        binding["account"] = str(cfg.options.get(option) or "")
    if cfg.type in URL_MAY_MOVE and binding.get("account"):
        del binding["base_url"]  # the org id is the identity: its instance URL can change
    return binding


def fingerprint(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def describe(binding: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in binding.items() if value)


def mapping_of(engine: Engine, system: str) -> dict[str, str]:
    """A fingerprint per mapped canonical field (``custom.x`` per key), the filter and the
    record-id slot of one system."""
    mapping = engine.config.mapping.get(system)
    if mapping is None:
        return {}
    prints = {
        label: fingerprint(spec.model_dump(mode="json", by_alias=True))
        for label, spec in mapping.entries()
    }
    prints["filter"] = fingerprint([r.model_dump(mode="json") for r in mapping.filter])
    if mapping.record_id is not None:
        prints["record_id"] = fingerprint(mapping.record_id.model_dump(mode="json"))
    return prints


def changed_fields(old: dict[str, Any], new: dict[str, str]) -> list[str]:
    """Labels added, removed or changed between two mapping fingerprints."""
    return sorted(label for label in set(old) | set(new) if old.get(label) != new.get(label))


@dataclass
class Prepared:
    """What ``before_capture`` decided for one capture."""

    held: str | None = None  # the hold's message: capture nothing
    full: bool = False  # read every deal again (mapping changed, re-added, new account)
    fields: list[str] = field(default_factory=list)  # mapping labels that changed
    returning: bool = False  # back in the config after a cycle without it
    mapping: dict[str, str] = field(default_factory=dict)

    @property
    def catch_up(self) -> bool:
        return self.full


def before_capture(engine: Engine, system: str) -> Prepared:
    """Check the system's binding, hold and mapping before it is captured (see the module)."""
    current = binding_of(engine.config, system)
    mapping = mapping_of(engine, system)
    with engine.session() as session:
        mark_removed(engine, session)
        state = systems.get(session, system)
        if state is None:  # first sight (a new system, or a store from before this table)
            session.add(SystemState(system=system, binding=current, mapping=mapping))
            session.commit()
            return Prepared(mapping=mapping)
        prepared = _check_binding(session, state, current)
        if prepared is None and state.held:
            prepared = Prepared(held=state.held_message or f"{system} is held")
        if prepared is None:
            prepared = _check_mapping(session, state, mapping)
        session.commit()
    return prepared


def _check_binding(
    session: Session, state: SystemState, current: dict[str, Any]
) -> Prepared | None:
    system = state.system
    if state.binding == current:
        if state.held == guard.HOLD_BINDING:
            state.pending_binding = None
            guard.release(session, state, "the config points at the bound account again")
        return None
    if guard.live_links(session, system) == 0 and not state.shelved:
        state.binding, state.updated_at = current, utcnow()  # nothing is bound yet
        session.add(state)
        return None
    if state.held != guard.HOLD_BINDING or state.pending_binding != current:
        state.pending_binding = current
        guard.hold(session, state, guard.HOLD_BINDING, _binding_message(session, state, current))
    return Prepared(held=state.held_message)


def _binding_message(session: Session, state: SystemState, current: dict[str, Any]) -> str:
    system = state.system
    shelved = fingerprint(current) in state.shelved
    then = (
        "its links from when it was bound there are restored"
        if shelved
        else "it starts like a newly added system, its current links set aside (not deleted)"
    )
    return (
        f"{system} is now configured for {describe(current)}, but its "
        f"{guard.live_links(session, system)} links belong to {describe(state.binding)}. "
        f"Nothing is read from or written to it until you decide: the same account moved -> "
        f"`crmsync rebind {system}` (links kept); another account -> `crmsync rebind {system} "
        f"--new-account` ({then}); a mistake -> put the old value back in the config."
    )


def _check_mapping(session: Session, state: SystemState, mapping: dict[str, str]) -> Prepared:
    old = state.mapping
    # a field only removed needs nothing read; one added or changed is backfilled
    fields = [label for label in changed_fields(old, mapping) if label in mapping] if old else []
    returning = state.removed_at is not None
    if not fields and not returning:
        if old != mapping:
            state.mapping = mapping
            session.add(state)
        return Prepared(mapping=mapping)
    # A transform changed: the shadow holds the old reading, no base for the new one. A field
    # (re-)added keeps what its shadow still has: a deal not read while the field was unmapped
    # still holds the value last seen there, the base of an honest three-way merge.
    changed = [label for label in fields if label in old and label not in _WHOLE]
    _forget_reads(session, state.system, sorted({label.partition(".")[0] for label in changed}))
    log.info(
        "system_backfill",
        system=state.system,
        fields=fields,
        returning=returning,
        why="mapping changed" if fields else "back in the config",
    )
    return Prepared(full=True, fields=fields, returning=returning, mapping=mapping)


def _forget_reads(session: Session, system: str, fields: list[str]) -> None:
    """Make the next capture read every deal of ``system`` again and merge ``fields`` as if
    never seen: their shadow values are dropped (no base: the three-way rules compare the
    vendor's value with ours) and the stored stamps forgotten (no deal is skipped)."""
    links.forget_stamps(session, system)
    if fields:
        links.drop_shadow_fields(session, system, {name.partition(".")[0] for name in fields})


def after_capture(engine: Engine, system: str, prepared: Prepared) -> Counts:
    """After a successful capture: queue what the system is owed (when it was read in full for
    a change), remember the mapping, and clear the removed mark."""
    counts = Counts()
    if prepared.held:
        return counts
    if prepared.catch_up:
        counts.add("backfill_queued", catch_up(engine, system))
    with engine.session() as session:
        state = systems.get(session, system)
        if state is not None:
            state.mapping, state.removed_at, state.updated_at = prepared.mapping, None, utcnow()
            session.add(state)
            session.commit()
    return counts


def catch_up(engine: Engine, system: str, batch: int = 500) -> int:
    """Queue a push to ``system`` for every live deal its copy differs from (or lacks, where
    crmsync may create). Returns how many were queued."""
    queued = 0
    with engine.session() as session:
        after = ""  # keyset paging: a million ids held at once are some 80 MB
        while ids := records.live_ids_after(session, after, batch):
            queued += _catch_up_batch(engine, session, system, ids)
            after = ids[-1]
        session.commit()
    log.info("system_caught_up", system=system, queued=queued)
    return queued


def _catch_up_batch(engine: Engine, session: Session, system: str, ids: list[str]) -> int:
    found = records.many(session, ids)
    copies = {link.record_id: link for link in links.of_records_in(session, system, ids)}
    rows = {row.record_id: row for row in outbox.open_rows_of_records(session, system, ids)}
    queued = 0
    for record in found:
        op = push_op(engine, system, record, copies.get(record.id))
        if op:
            enqueue_into(session, rows.get(record.id), record.id, system, op, "catch-up")
            queued += 1
    return queued


def mark_removed(engine: Engine, session: Session) -> None:
    """Systems known to the store but not in this config: mark when they left (the caller
    commits). Changes made while a system is out are not queued for it."""
    configured = set(engine.config.systems)
    for state in systems.not_removed(session):
        if state.system not in configured and SHELF not in state.system:
            state.removed_at = utcnow()
            session.add(state)
            log.info("system_removed", system=state.system)


def push_blocked(engine: Engine, system: str) -> str | None:
    """Why nothing may be pushed to ``system`` now (None: it may): held, bound elsewhere
    than the config says, or back in the config and not yet read completely."""
    with engine.read_session() as session:
        state = systems.get(session, system)
    if state is None:
        return None
    if state.held:
        return state.held_message or f"{system} is held"
    if state.binding and state.binding != binding_of(engine.config, system):
        return f"{system}'s binding changed; its next capture decides"
    if state.removed_at is not None:
        return f"{system} is back in the config; it is read completely before any push"
    return None


# --------------------------------------------------------------------------- the operator


def rebind(engine: Engine, system: str, *, new_account: bool = False) -> str:
    """``crmsync rebind``: adopt the configured binding. Same account moved (default): links
    kept. ``new_account``: the current links (and references, cursor) are shelved under the
    old binding and the configured one's shelf, if any, is restored; the system is then read
    completely and caught up like a system added back. Returns what was done, in words."""
    current = binding_of(engine.config, system)
    with engine.session() as session:
        state = systems.get(session, system) or SystemState(system=system, binding=current)
        if state.binding == current and state.held != guard.HOLD_BINDING:
            return f"{system} is already bound to {describe(current)}"
        old = state.binding
        if new_account:
            done = _switch_account(session, state, old, current)
        else:
            done = f"{system} rebound to {describe(current)}; links kept"
        state.binding, state.pending_binding = current, None
        guard.release(session, state, done)
        session.add(state)
        session.commit()
    log.info("system_rebound", system=system, new_account=new_account, done=done)
    return done


def _switch_account(
    session: Session, state: SystemState, old: dict[str, Any], current: dict[str, Any]
) -> str:
    system = state.system
    away, back = system + SHELF + fingerprint(old), system + SHELF + fingerprint(current)
    moved = _move(session, system, away)
    restored = _move(session, back, system) if fingerprint(current) in state.shelved else 0
    shelved = dict(state.shelved)
    shelved.pop(fingerprint(current), None)
    shelved[fingerprint(old)] = {"binding": old, "links": moved, "at": utcnow().isoformat()}
    state.shelved = shelved
    cursors.drop(session, system)
    systems.drop_pending_deletes(session, system)
    outbox.drop_unsent(session, system)
    state.removed_at = utcnow()  # read completely, then caught up, before any push
    return (
        f"{system} bound to the new account {describe(current)}: {moved} links of "
        f"{describe(old)} set aside, {restored} restored"
    )


def _move(session: Session, source: str, target: str) -> int:
    """Move every link and reference-map row of ``source`` to ``target``; returns the links."""
    moved = links.move_system(session, source, target)
    refs.move_system(session, source, target)
    return moved


def held_systems(engine: Engine, systems: Iterable[str] | None = None) -> dict[str, str]:
    """Held systems with their messages."""
    wanted = set(systems or engine.systems)
    return {
        name: state.held_message or "held"
        for name, state in guard.holds(engine).items()
        if name in wanted
    }
