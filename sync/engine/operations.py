"""The operations an operator runs on the store, one code path for the CLI (``sync.cli``), the
admin HTTP API (``sync.admin``) and the embedded live view: system health, last runs, conflicts
and their resolution, dead letters and their replay, a record's history. Neither front end
queries the store itself, so a listing or an action cannot differ between them.

Resolving a manual conflict (DESIGN §2.3): the admin picks a side — ``"ours"`` (the canonical
value) or a system name (that system's value) — the field takes it, stops being held, the
resolution is journaled, and pushes are enqueued to every system whose copy now differs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from sync.engine import pace
from sync.engine.claims import is_dead_incarnation
from sync.engine.context import Engine
from sync.engine.journal import enqueue, note
from sync.engine.outbound import enqueue_pushes
from sync.store import claims as stored_claims
from sync.store import (
    conflicts,
    cursors,
    journal,
    letters,
    links,
    outbox,
    probe,
    records,
    runs,
    systems,
)
from sync.store.models import Conflict, Journal, Link, Record, Run
from sync.timefmt import format_iso, format_optional_iso, utcnow


class AdminError(Exception):
    """An admin request that cannot be done; ``status`` is the HTTP status that fits."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- health


def ping_store(engine: Engine) -> None:
    """Ask the database one trivial question; a ``SQLAlchemyError`` means it does not answer."""
    probe.ping(engine.db)


def system_health(engine: Engine, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Per system: health, cursor, last poll, lag, pending outbox, open conflicts, dead letters.

    ``health`` is ``held`` (the guard holds it: ``held_message`` says why), ``error`` (the last
    poll failed: ``last_error``), ``never`` (not polled yet), ``stale`` (no poll for three
    intervals: a scan system's as stretched, ``pace``) or ``ok``. ``pace``: the poll interval
    as configured and as the system's listings allow, why, and the expected lag
    (:class:`sync.engine.pace.Stretch`).
    """
    now = now or utcnow()
    configured = engine.config.systems
    with engine.session() as session:
        polled = {c.system: c for c in cursors.every(session)}
        pending = outbox.open_per_system(session)
        disputed = conflicts.open_per_system(session)
        dead = letters.open_per_system(session)
        healed = _last_healed(session, list(engine.config.systems))
        states = {row.system: row for row in systems.every(session)}
        held_deletes = systems.pending_deletes_per_system(session)
        paces = {name: pace.of_system(session, cfg, name) for name, cfg in configured.items()}
    rows = []
    for system in configured:
        cursor = polled.get(system)
        last = cursor.last_poll_at if cursor else None
        lag = (now - last).total_seconds() if last else None
        state = states.get(system)
        if state is not None and state.held:
            health = "held"  # waits for an operator: held_message says why
        elif cursor is not None and cursor.last_error:
            health = "error"  # even before a first poll: an unreachable vendor is an error
        elif last is None:
            health = "never"
        elif lag is not None and lag > 3 * paces[system].interval:  # a stretched one's
            health = "stale"
        else:
            health = "ok"
        rows.append(
            {
                "system": system,
                "health": health,
                "cursor": format_optional_iso(cursor.stamp if cursor else None),
                "cursor_id": cursor.external_id if cursor else None,
                "last_poll_at": format_optional_iso(last),
                "last_full_scan_at": format_optional_iso(
                    cursor.last_full_scan_at if cursor else None
                ),
                "lag_seconds": round(lag, 3) if lag is not None else None,
                "last_error": cursor.last_error if cursor else None,
                "pending": pending.get(system, 0),
                "conflicts": disputed.get(system, 0),
                "dead_letters": dead.get(system, 0),
                "last_reconcile_at": healed[system][0] if system in healed else None,
                "healed": healed[system][1] if system in healed else None,
                "held": states[system].held if system in states else None,
                "held_message": states[system].held_message if system in states else None,
                "held_deletes": held_deletes.get(system, 0),
                "budget": cursor.budget if cursor else None,
                "pace": paces[system].as_json(),
            }
        )
    return rows


def _last_healed(session: Session, names: list[str]) -> dict[str, tuple[str | None, int]]:
    """Per system, the finish time and ``healed`` count of its latest completed reconcile
    (one of that system alone, or of all systems, which records ``healed.<system>``)."""
    found: dict[str, tuple[str | None, int]] = {}
    for run in runs.latest_reconciles(session, 200):
        for system in names:
            key = f"healed.{system}"
            if system not in found and (run.system in (None, system)) and key in run.counts:
                found[system] = (format_optional_iso(run.finished_at), int(run.counts[key]))
    return found


def due_systems(engine: Engine) -> list[str]:
    """Systems with outbox rows a drain could claim now (due, or abandoned by a dead worker)."""
    now = utcnow()
    with engine.session() as session:
        return stored_claims.due_systems(session, now)


def open_outbox(engine: Engine) -> int:
    """Outbox rows not yet settled (pending, retry, parked or in flight)."""
    with engine.session() as session:
        return outbox.count_open(session)


def last_runs(engine: Engine, limit: int = 10) -> list[dict[str, Any]]:
    with engine.session() as session:
        latest = runs.latest(session, limit)
    return [run_dict(run) for run in latest]


def get_run(engine: Engine, run_id: str) -> dict[str, Any] | None:
    with engine.session() as session:
        run = runs.get(session, run_id)
    return run_dict(run) if run is not None else None


def run_dict(run: Run) -> dict[str, Any]:
    """A run as the CLI and the admin API show it; one still ``running`` whose process is
    provably dead (killed; its holder id says so) is ``died``: it will never finish."""
    status = run.status
    if status == "running" and run.holder and is_dead_incarnation(run.holder):
        status = "died"
    return {
        "id": run.id,
        "kind": run.kind,
        "system": run.system,
        "status": status,
        "holder": run.holder,
        "started_at": format_iso(run.started_at),
        "finished_at": format_optional_iso(run.finished_at),
        "counts": dict(run.counts),
        "error": run.error,
    }


# --------------------------------------------------------------------------- conflicts


def list_conflicts(
    engine: Engine, status: str | None = "open", limit: int = 100, *, newest_first: bool = False
) -> list[dict[str, Any]]:
    """Conflicts in ``status`` (``None``: any), oldest first unless ``newest_first``."""
    with engine.session() as session:
        rows = conflicts.in_status(session, status, limit, newest_first=newest_first)
    return [
        _row(
            c,
            "record_id field policy base ours ours_system theirs theirs_system winner status "
            "reason created_at resolved_at",
        )
        for c in rows
    ]


def resolve_conflict(engine: Engine, conflict_id: int, take: str) -> dict[str, Any]:
    """Resolve an open conflict with ``take`` = ``"ours"`` or a system name; returns the
    conflict and the systems a push was enqueued to."""
    with engine.session() as session:
        conflict = conflicts.get(session, conflict_id)
        if conflict is None:
            raise AdminError(f"no conflict {conflict_id}", 404)
        if conflict.status != "open":
            raise AdminError(f"conflict {conflict_id} is already {conflict.status}", 409)
        record = records.get(session, conflict.record_id)
        if record is None:
            raise AdminError(f"record {conflict.record_id} is gone", 409)
        value = _chosen_value(engine, session, conflict, record, take)
        fields = dict(record.fields)
        old = fields.get(conflict.field)
        fields[conflict.field] = value
        provenance = dict(record.provenance)
        provenance[conflict.field] = {
            "system": take if take != "ours" else conflict.ours_system,
            "at": utcnow().isoformat(),
            "by": "admin",
        }
        record.fields, record.provenance = fields, provenance
        record.held = [name for name in record.held if name != conflict.field]
        record.updated_at = utcnow()
        conflict.status, conflict.winner, conflict.resolved_at = "resolved", take, utcnow()
        conflict.reason = f"{conflict.reason}; resolved by an admin taking {take}"[:500]
        session.add(record)
        session.add(conflict)
        note(
            session,
            record.id,
            "conflict_resolved",
            f"an admin took {take} for {conflict.field}",
            field=conflict.field,
            old=old,
            new=value,
        )
        queued = enqueue_pushes(engine, session, record, reason=f"conflict {conflict_id} resolved")
        session.commit()
        return {
            "conflict": _row(conflict, "record_id field winner status"),
            "value": value,
            "queued": queued,
        }


def _chosen_value(
    engine: Engine, session: Session, conflict: Conflict, record: Record, take: str
) -> Any:
    if take == "ours":
        return conflict.ours
    if take == conflict.theirs_system:
        return conflict.theirs
    if take == conflict.ours_system:
        return conflict.ours
    if take not in engine.config.systems:
        choices = ", ".join(["ours", *engine.config.systems])
        raise AdminError(f"take must be one of {choices}; got {take!r}")
    link = links.of_record_in(session, record.id, take)
    if link is None:
        raise AdminError(f"record {record.id} has no copy in {take}", 409)
    return link.shadow.get(conflict.field)


# --------------------------------------------------------------------------- dead letters


def list_dead_letters(
    engine: Engine, status: str = "open", limit: int | None = 100
) -> list[dict[str, Any]]:
    """Dead letters in ``status``, oldest first (``limit`` ``None``: all of them)."""
    with engine.session() as session:
        rows = letters.in_status(session, status, limit)
    return [
        _row(
            d,
            "record_id system direction op external_id error status attempts payload "
            "created_at updated_at",
        )
        for d in rows
    ]


def replay_dead_letter(engine: Engine, letter_id: int) -> dict[str, Any]:
    """Retry a dead letter: an outbound one re-enqueues the record's push; an inbound one asks
    for a re-read of its system (the caller enqueues / runs a full poll: ``reread`` is set)."""
    with engine.session() as session:
        letter = letters.get(session, letter_id)
        if letter is None:
            raise AdminError(f"no dead letter {letter_id}", 404)
        if letter.status != "open":
            raise AdminError(f"dead letter {letter_id} is already {letter.status}", 409)
        reread: str | None = None
        if letter.direction == "outbound" and letter.record_id is not None:
            enqueue(
                session,
                letter.record_id,
                letter.system,
                letter.op,
                f"replay of dead letter {letter_id}",
            )
            note(
                session,
                letter.record_id,
                "replayed",
                f"dead letter {letter_id} replayed by an admin",
                system=letter.system,
            )
        else:
            reread = letter.system
        letter.status, letter.updated_at = "replayed", utcnow()
        session.add(letter)
        session.commit()
        return {
            "id": letter_id,
            "system": letter.system,
            "direction": letter.direction,
            "reread": reread,
        }


@dataclass
class Replayed:
    """What a replay did: one result per letter (as :func:`replay_dead_letter` returns it),
    and the systems whose inbound letters ask for a re-read, each once, in order."""

    results: list[dict[str, Any]]
    rereads: list[str]


def replay_dead_letters(engine: Engine, letter_ids: Sequence[int] | None = None) -> Replayed:
    """Replay these dead letters (``None``: every open one), stopping at the first that cannot
    be (:class:`AdminError`). The caller starts the re-reads — a full poll of each system in
    ``rereads`` — its own way: the admin API through its backend, the CLI in the foreground."""
    if letter_ids is None:
        with engine.session() as session:
            letter_ids = letters.open_ids(session)
    replayed = Replayed(results=[], rereads=[])
    for letter_id in letter_ids:
        result = replay_dead_letter(engine, letter_id)
        replayed.results.append(result)
        if result["reread"] and result["reread"] not in replayed.rereads:
            replayed.rereads.append(result["reread"])
    return replayed


# --------------------------------------------------------------------------- history


@dataclass
class RecordStory:
    """One record with its copies (links) and its whole journal, oldest entry first."""

    record: Record
    links: list[Link]
    journal: list[Journal]


def record_story(engine: Engine, record_or_vendor_id: str) -> RecordStory | None:
    """The story of the record with this id, or with a copy of this vendor id (``None``: no
    such record)."""
    with engine.session() as session:
        found = records.get(session, record_or_vendor_id)
        if found is None:
            link = links.with_external_id(session, record_or_vendor_id)
            found = records.get(session, link.record_id) if link else None
        if found is None:
            return None
        entries = journal.of_record(session, found.id)
        copies = links.of_record(session, found.id)
    return RecordStory(record=found, links=list(copies), journal=list(entries))


def record_history(engine: Engine, record_id: str, limit: int = 500) -> list[dict[str, Any]]:
    with engine.session() as session:
        if records.get(session, record_id) is None:
            raise AdminError(f"no record {record_id}", 404)
        rows = journal.of_record(session, record_id, limit)
    return [_row(j, "run_id at system action field old new reason") for j in rows]


# --------------------------------------------------------------------------- helpers


def _row(obj: Any, names: str | Sequence[str]) -> dict[str, Any]:
    keys = names.split() if isinstance(names, str) else list(names)
    out: dict[str, Any] = {"id": obj.id}
    for key in keys:
        value = getattr(obj, key)
        out[key] = format_iso(value) if isinstance(value, dt.datetime) else value
    return out
