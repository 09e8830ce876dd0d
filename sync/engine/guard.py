"""Held systems and the mass-delete guard (issue 17).

A system is *held* when something about it needs an operator's word before crmsync may act on
it again: its binding changed (``sync.engine.bindings``), or one capture would delete or unlink
too many of its deals at once. A held system is neither captured nor pushed to; the other
systems go on syncing among themselves, and what the held one is owed waits in its outbox.
The hold lives in ``system_states`` so every process (scheduler, workers, CLI) sees it, and
``crmsync status``, the logs and the ``crmsync_system_held`` gauge say why.

The guard: a batch of vanished deals (a complete scan's set difference, or a delete feed's
page) larger than ``delete_guard.max_count``, or than ``max_share`` of the system's linked
deals (and at least ``min_count``), is not applied. It is kept as ``pending_deletes`` and the
system is held until ``crmsync deletes --confirm SYSTEM`` applies it or ``--discard`` drops it.
A vendor that suddenly lists nothing (a wrong account, an expired permission, an outage that
answers 200 with an empty page) must not unlink — or with ``deletes: propagate``, delete — every
deal everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from sqlmodel import Session

from sync.config import DeleteGuardConfig
from sync.engine.context import Engine
from sync.store import links, systems
from sync.store.models import PendingDelete, SystemState
from sync.timefmt import utcnow

log = structlog.get_logger("crmsync.guard")

HOLD_BINDING = "binding"
HOLD_DELETES = "deletes"


@dataclass(frozen=True)
class Vanished:
    """A live link whose deal the vendor no longer has, and how we learnt it."""

    link_id: int
    record_id: str
    external_id: str
    how: str


def guard_config(engine: Engine, system: str) -> DeleteGuardConfig:
    return engine.config.systems[system].delete_guard or engine.config.sync.delete_guard


def state_of(session: Session, system: str) -> SystemState | None:
    return systems.get(session, system)


def hold(session: Session, state: SystemState, kind: str, message: str) -> None:
    """Hold the system (the caller commits); the message says what the operator can do."""
    state.held, state.held_message, state.held_at = kind, message[:2000], utcnow()
    state.updated_at = utcnow()
    session.add(state)
    log.warning("system_held", system=state.system, reason=kind, message=message)


def release(session: Session, state: SystemState, why: str) -> None:
    if state.held is None:
        return
    log.info("system_released", system=state.system, reason=state.held, why=why)
    state.held = state.held_message = state.held_at = None
    state.updated_at = utcnow()
    session.add(state)


def held(engine: Engine, system: str) -> SystemState | None:
    """The system's state when it is held, else None (one primary-key read)."""
    with engine.read_session() as session:
        state = systems.get(session, system)
    return state if state is not None and state.held else None


def live_links(session: Session, system: str) -> int:
    return links.count_live(session, system)


def trips(guard: DeleteGuardConfig, vanished: int, live: int) -> bool:
    """Whether ``vanished`` of ``live`` linked deals in one go is too many to apply unasked."""
    if not guard.enabled or vanished < guard.min_count:
        return False
    return vanished > guard.max_count or vanished > guard.max_share * max(live, 1)


def allow_deletes(
    engine: Engine, session: Session, system: str, vanished: Sequence[Vanished]
) -> bool:
    """True when the batch may be applied; else it is stored as pending deletes and the
    system is held (the caller commits the session and applies nothing)."""
    if not vanished:
        return True
    live = live_links(session, system)
    guard = guard_config(engine, system)
    if not trips(guard, len(vanished), live):
        return True
    state = systems.get(session, system) or SystemState(system=system)
    systems.drop_pending_deletes(session, system)
    session.add_all(
        PendingDelete(
            system=system,
            link_id=v.link_id,
            record_id=v.record_id,
            external_id=v.external_id,
            how=v.how[:200],
        )
        for v in vanished
    )
    share = len(vanished) / max(live, 1)
    policy = engine.config.systems[system].deletes
    hold(
        session,
        state,
        HOLD_DELETES,
        f"{len(vanished)} of {live} linked deals ({share:.0%}) vanished from {system} in one "
        f"go ({vanished[0].how}); the delete guard (max {guard.max_share:.0%} or "
        f"{guard.max_count}) stopped before applying policy {policy!r}. If they really were "
        f"deleted: `crmsync deletes --confirm {system}`; if not (wrong account, permissions, "
        f"an outage): fix that, then `crmsync deletes --discard {system}`",
    )
    return False


def pending_deletes(engine: Engine, system: str | None = None) -> list[PendingDelete]:
    with engine.read_session() as session:
        return systems.pending_deletes(session, system)


def holds(engine: Engine) -> dict[str, SystemState]:
    """Every held system's state, by system (for status and metrics)."""
    with engine.read_session() as session:
        rows = systems.held(session)
    return {row.system: row for row in rows}
