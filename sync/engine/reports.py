"""The JSON shapes of what the read commands report — ``crmsync … --json`` prints them, and the
admin API can serve the same dictionaries — so a script reads one set of keys wherever it asks.
The README (section "Scripting: --json") documents every key; a key is added, never renamed.

Each function turns an engine report (or the rows of :mod:`sync.engine.operations`) into plain
JSON values: strings, numbers, booleans, lists and objects; stamps as ISO 8601 in UTC.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sync.store import records
from sync.timefmt import as_utc, format_iso, format_optional_iso, utcnow

if TYPE_CHECKING:
    from sync.engine.context import Engine
    from sync.engine.doctor import SystemDoctor
    from sync.engine.matching.proposal import Deal, Proposal
    from sync.engine.operations import RecordStory
    from sync.engine.plan import PlanReport
    from sync.engine.verify_report import SystemCheck, VerifyReport
    from sync.store.models import SystemState


def status(systems: list[dict[str, Any]], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """``status --json``: the rows of ``operations.system_health`` and ``last_runs``."""
    return {"systems": systems, "runs": runs}


def _summaries(check: SystemCheck) -> dict[str, Any] | None:
    """How a summary listing's deals were compared (None: the system lists them in full)."""
    if check.summaries is None:
        return None
    return {
        "how": check.summaries,
        "read_in_full": check.read_in_full,
        "trusted_confirmed": check.trusted_by["confirmed"],
        "trusted_written": check.trusted_by["written"],
    }


def verify(report: VerifyReport) -> dict[str, Any]:
    """``verify --json``: per system its counts and every deal they count, with why."""
    systems = {}
    for name, check in report.systems.items():
        systems[name] = {
            "held": check.held,
            "vendor_deals": check.vendor_records,
            "linked": check.linked,
            "clean": check.clean,
            "unlinked": _named(check, check.unlinked, "external_id"),
            "missing": _named(check, check.missing, "external_id"),
            "absent": _named(check, check.absent, "record_id"),
            "unreadable": _named(check, check.unreadable, "external_id"),
            "duplicates": list(check.duplicates),
            "filtered": list(check.filtered),
            "open_conflicts": check.conflicts,
            "summaries": _summaries(check),
            "drift": [
                {
                    "record_id": d.record_id,
                    "external_id": d.external_id,
                    "field": d.field,
                    "ours": d.ours,
                    "theirs": d.theirs,
                }
                for d in check.drift
            ],
            "known": [
                {
                    "record_id": k.record_id,
                    "external_id": k.external_id,
                    "field": k.field,
                    "reason": k.reason,
                }
                for k in check.known
            ],
        }
    return {
        "clean": report.clean,
        "agrees_but_known": report.agrees(accept_known=True),
        "systems": systems,
        "twins": report.twins,
    }


def _named(check: SystemCheck, ids: list[str], key: str) -> list[dict[str, Any]]:
    return [{key: i, "name": check.names.get(i), "why": check.why.get(i)} for i in ids]


def plan(report: PlanReport) -> dict[str, Any]:
    """``plan --json``: the writes the next cycle would make, and what it cannot plan."""
    return {
        "writes": [
            {
                "system": w.system,
                "record_id": w.record_id,
                "name": w.name,
                "op": w.op,
                "reason": w.reason,
                "changes": {
                    f: {"now": old, "would_be": new} for f, (old, new) in w.changes.items()
                },
            }
            for w in report.writes
        ],
        "not_planned": [vars(item) for item in report.not_planned],
        "errors": report.errors,
    }


def story(found: RecordStory) -> dict[str, Any]:
    """``history --json``: the record, its copies and its journal, oldest entry first."""
    record = found.record
    return {
        "record": {
            "id": record.id,
            "fields": record.fields,
            "deleted_at": format_optional_iso(record.deleted_at),
        },
        "links": [
            {
                "system": link.system,
                "external_id": link.external_id,
                "deleted_at": format_optional_iso(link.deleted_at),
            }
            for link in found.links
        ],
        "journal": [
            {
                "at": format_iso(entry.at),
                "run_id": entry.run_id,
                "system": entry.system,
                "action": entry.action,
                "field": entry.field,
                "old": entry.old,
                "new": entry.new,
                "reason": entry.reason,
            }
            for entry in found.journal
        ],
    }


def _deal(deal: Deal) -> dict[str, Any]:
    return {
        "record_id": deal.record_id,
        "copies": [{"system": s, "external_id": e} for s, e in deal.copies],
        "name": deal.fields.get("name"),
        "company": deal.fields.get("company"),
        "held": deal.held,
    }


def proposal(gate_state: str, found: Proposal) -> dict[str, Any]:
    """``match --json``: the first run's state, the rule, counts, every group and near-miss."""
    return {
        "first_run": gate_state,
        "rule": found.rule,
        "counts": found.counts,
        "groups": [
            {
                "match_id": g.match_id,
                "status": g.status,
                "why": g.why,
                "deals": [_deal(d) for d in g.deals],
            }
            for g in found.groups
        ],
        "near_misses": [
            {"first": _deal(m.first), "second": _deal(m.second), "why": m.why}
            for m in found.near_misses
        ],
        "near_misses_cut": found.near_misses_cut,
    }


def doctor(reports: dict[str, SystemDoctor]) -> dict[str, Any]:
    """``doctor --json``: per system its verdict and every finding with its fix."""
    return {
        name: {
            "vendor": r.vendor,
            "ready": not r.problems,
            "findings": [
                {"level": f.level, "check": f.check, "what": f.what, "fix": f.fix}
                for f in r.findings
            ],
        }
        for name, r in reports.items()
    }


# --------------------------------------------------------------------------- held deletes


@dataclass(frozen=True)
class HeldDelete:
    """A delete the mass-delete guard held, with the deal it would delete named."""

    system: str
    record_id: str
    external_id: str
    how: str
    detected_at: str
    name: str | None
    company: str | None
    amount: Any
    currency: str | None


def held_deletes(engine: Engine, limit: int | None = None) -> list[HeldDelete]:
    """The held deletes, each with its deal's name, company and amount (a person confirms a
    delete of deals they can recognise, not of ids)."""
    from sync.engine import guard

    rows = guard.pending_deletes(engine)[:limit]
    with engine.read_session() as session:
        found = {r.id: r.fields for r in records.many(session, {row.record_id for row in rows})}
    held = []
    for row in rows:
        fields = found.get(row.record_id, {})
        held.append(
            HeldDelete(
                row.system,
                row.record_id,
                row.external_id,
                row.how,
                format_iso(row.detected_at),
                fields.get("name"),
                fields.get("company"),
                fields.get("amount"),
                fields.get("currency"),
            )
        )
    return held


def deletes(held: list[HeldDelete], holds: dict[str, SystemState]) -> dict[str, Any]:
    """``deletes --json``: why each system is held, and every held delete with its deal."""
    return {
        "held_systems": {
            name: {"held": state.held, "message": state.held_message}
            for name, state in holds.items()
        },
        "deletes": [vars(item) for item in held],
    }


# --------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class SystemProgress:
    """How far a run is with one system: read yet, pushes settled of all it owes, and what
    it waits for (the vendor's rate limit, a retry) when it waits."""

    system: str
    read: bool
    error: str | None
    settled: int
    total: int
    waiting: str | None


def run_progress(engine: Engine, since: dt.datetime) -> list[SystemProgress]:
    """Every system's progress in a run started at ``since`` (read from the store, so another
    thread may ask while the run works)."""
    from sync.store import cursors, outbox

    now = utcnow()
    with engine.read_session() as session:
        counts = outbox.progress_since(session, since)
        retries = {system: (at, error) for system, at, error in outbox.retries_due(session)}
        polled = {c.system: c for c in cursors.every(session)}
    found = []
    for system in engine.systems:
        rows = {status: n for name, status, n in counts if name == system}
        cursor = polled.get(system)
        stamp = cursor.last_poll_at if cursor is not None else None
        read = stamp is not None and as_utc(stamp) >= since
        open_rows = sum(n for status, n in rows.items() if status in outbox.OPEN_STATES)
        settled = sum(rows.values()) - open_rows
        found.append(
            SystemProgress(
                system,
                read,
                cursor.last_error if cursor is not None else None,
                settled,
                settled + open_rows,
                _waiting(engine, system, retries.get(system), now) if open_rows else None,
            )
        )
    return found


def _waiting(
    engine: Engine,
    system: str,
    retry: tuple[dt.datetime, str | None] | None,
    now: dt.datetime,
) -> str | None:
    """What pushes to ``system`` wait for, in words, else None."""
    limiter = engine.limiter
    delay = getattr(limiter, "delay", None)
    if delay is not None and delay(system) > 0.05:
        rate = limiter.rate(system)
        return f"waiting for {system}'s rate limit ({rate:g} requests/s)"
    if retry is not None:
        at, error = retry
        seconds = max(0.0, (as_utc(at) - now).total_seconds())
        why = f": {' '.join(error.split())[:80]}" if error else ""
        return f"waiting for a retry in {seconds:.0f}s{why}"
    return None
