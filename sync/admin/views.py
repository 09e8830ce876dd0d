"""What the console and the admin API read beyond :mod:`sync.engine.operations`: runs filtered
by system and kind with what one run touched, a deal found by any vendor id or name with each
system's copy beside ours, and everything that waits for a person.

Plain dicts of JSON values, so the API answers them as they are and the console renders them.
"""

from __future__ import annotations

from typing import Any

from sync.engine import first_run, guard, matching, money, operations, outbound
from sync.engine.context import Engine
from sync.engine.operations import AdminError
from sync.store import journal, letters, links, outbox, records
from sync.timefmt import format_optional_iso

#: how many of the latest runs a filtered listing looks through
RUN_WINDOW = 500
#: a name search stops at this many deals
SEARCH_LIMIT = 50


# --------------------------------------------------------------------------- runs


def runs(engine: Engine, system: str | None, kind: str | None, limit: int) -> list[dict[str, Any]]:
    """The latest runs (of ``system`` / ``kind`` when given), newest first."""
    found = []
    for run in operations.last_runs(engine, RUN_WINDOW):
        if system and run["system"] != system:
            continue
        if kind and run["kind"] != kind:
            continue
        found.append(run)
        if len(found) >= limit:
            break
    return found


def run_detail(engine: Engine, run_id: str, limit: int = 200) -> dict[str, Any] | None:
    """One run with the journal entries it wrote (the records it touched)."""
    found = operations.get_run(engine, run_id)
    if found is None:
        return None
    with engine.read_session() as session:
        entries = journal.of_run(session, run_id, limit)
    found["touched"] = [_entry(entry) for entry in entries]
    return found


def _entry(entry: Any) -> dict[str, Any]:
    return {
        "id": entry.id,
        "record_id": entry.record_id,
        "run_id": entry.run_id,
        "at": format_optional_iso(entry.at),
        "system": entry.system,
        "action": entry.action,
        "field": entry.field,
        "old": entry.old,
        "new": entry.new,
        "reason": entry.reason,
    }


# --------------------------------------------------------------------------- deals


def search_deals(engine: Engine, text: str) -> list[dict[str, Any]]:
    """Deals whose record id or any vendor id is ``text``, else whose name contains it."""
    text = text.strip()
    if not text:
        return []
    story = operations.record_story(engine, text)
    if story is not None:
        return [_summary(story.record, story.links)]
    with engine.read_session() as session:
        found = list(records.named(session, text, SEARCH_LIMIT))
        copies = links.of_records(session, [r.id for r in found])
    by_record: dict[str, list[Any]] = {}
    for link in copies:
        by_record.setdefault(link.record_id, []).append(link)
    return [_summary(record, by_record.get(record.id, [])) for record in found]


def _summary(record: Any, copies: list[Any]) -> dict[str, Any]:
    return {
        "record_id": record.id,
        "name": record.fields.get("name"),
        "company": record.fields.get("company"),
        "copies": {link.system: link.external_id for link in copies},
    }


def deal(engine: Engine, record_or_vendor_id: str) -> dict[str, Any]:
    """A deal's canonical fields, each system's copy (its shadow: what we last read or wrote
    there) with the fields that differ from ours, and its journal, oldest first."""
    story = operations.record_story(engine, record_or_vendor_id)
    if story is None:
        raise AdminError(f"no deal with the id {record_or_vendor_id!r}", 404)
    ours = dict(story.record.fields)
    copies = []
    for link in sorted(story.links, key=lambda link: link.system):
        shadow = dict(link.shadow)
        differs = _owed(engine, story.record, link)
        copies.append(
            {
                "system": link.system,
                "external_id": link.external_id,
                "fields": shadow,
                "differs": differs,
                "synced_at": format_optional_iso(link.synced_at),
                "deleted_at": format_optional_iso(link.deleted_at),
            }
        )
    return {
        "record_id": story.record.id,
        "fields": ours,
        "held": list(story.record.held),
        "deleted_at": format_optional_iso(story.record.deleted_at),
        "copies": copies,
        "journal": [_entry(entry) for entry in story.journal],
    }


def _owed(engine: Engine, record: Any, link: Any) -> list[str]:
    """The fields where this copy is not what the engine wants it to hold: what a push would
    send it (``outbound.push_diff``: the fields its mapping writes, the amount in its currency,
    none it only derives), a value it cannot hold, and a field an open conflict holds. A plain
    comparison with ours would flag ids a system does not keep and values only it decides."""
    if link.system not in engine.config.systems or link.deleted_at or record.deleted_at:
        return []
    try:
        owed = set(outbound.push_diff(engine, link.system, record, link))
    except money.CurrencyMismatch:
        owed = {"amount", "currency"}
    shadow, ours = link.shadow, record.fields
    owed |= {name for name in record.held if name in ours and shadow.get(name) != ours[name]}
    return sorted(owed)


# --------------------------------------------------------------------------- waiting


def waiting(engine: Engine) -> dict[str, Any]:
    """Everything that waits for a person: the first run's match, held systems with their
    held deletes, and deals parked for their currency or a reference."""
    return {
        "first_run": _first_run(engine),
        "held_systems": _held_systems(engine),
        "parked": _parked(engine),
    }


def _first_run(engine: Engine) -> dict[str, Any]:
    gate = first_run.gate(engine)
    answer: dict[str, Any] = {
        "state": gate.state,
        "deals": gate.deals,
        "decided_by": gate.decided_by,
        "creates_wait": gate.creates_wait,
        "all_read": first_run.all_read(engine),
        "held_for_review": first_run.held_for_review(engine),
    }
    if gate.state != "review" and not answer["held_for_review"]:
        return answer
    proposal = matching.propose(engine)
    shown = [g for g in proposal.groups if g.to_link][:200] + proposal.of("ambiguous")
    answer["rule"] = proposal.rule
    answer["counts"] = proposal.counts
    answer["groups"] = [
        {
            "match_id": group.match_id,
            "status": group.status,
            "why": group.why,
            "deals": [_match_deal(deal) for deal in group.deals],
        }
        for group in shown
    ]
    answer["near_misses"] = [
        {"first": miss.first.label(), "second": miss.second.label(), "why": miss.why}
        for miss in proposal.near_misses[:100]
    ]
    return answer


def _match_deal(deal: matching.Deal) -> dict[str, Any]:
    return {
        "record_id": deal.record_id,
        "name": deal.fields.get("name"),
        "company": deal.fields.get("company"),
        "amount": deal.fields.get("amount"),
        "currency": deal.fields.get("currency"),
        "copies": [{"system": system, "external_id": ext} for system, ext in deal.copies],
    }


def _held_systems(engine: Engine) -> list[dict[str, Any]]:
    held = guard.holds(engine)
    pending = guard.pending_deletes(engine)
    answer = []
    for system, state in sorted(held.items()):
        rows = [row for row in pending if row.system == system]
        answer.append(
            {
                "system": system,
                "held": state.held,
                "message": state.held_message,
                "deletes": [
                    {
                        "record_id": row.record_id,
                        "external_id": row.external_id,
                        "how": row.how,
                        "detected_at": format_optional_iso(row.detected_at),
                    }
                    for row in rows[:200]
                ],
                "deletes_total": len(rows),
            }
        )
    return answer


def _parked(engine: Engine) -> list[dict[str, Any]]:
    """Open dead letters a currency mismatch made, and outbox rows parked for a reference."""
    with engine.read_session() as session:
        dead = letters.in_status(session, "open", None)
        parked = [row for row in outbox.every_open(session) if row.status == "parked"]
    answer = [
        {
            "kind": "currency",
            "dead_letter_id": letter.id,
            "record_id": letter.record_id,
            "system": letter.system,
            "why": letter.error,
        }
        for letter in dead
        if " holds only " in (letter.error or "")
    ]
    answer += [
        {
            "kind": "reference",
            "dead_letter_id": None,
            "record_id": row.record_id,
            "system": row.system,
            "why": row.last_error or row.reason,
        }
        for row in parked[:200]
    ]
    return answer


# --------------------------------------------------------------------------- overview


def outbox_states(engine: Engine) -> dict[str, dict[str, int]]:
    """Per system, open pushes per state (pending, in_flight, retry, parked)."""
    found: dict[str, dict[str, int]] = {}
    with engine.read_session() as session:
        for system, state, _op, count, *_ in outbox.owed_summary(session, outbox.OPEN_STATES):
            per = found.setdefault(system, {})
            per[state] = per.get(state, 0) + int(count)
    return found


def deals_per_system(engine: Engine) -> dict[str, int]:
    """Live deals linked in each system."""
    with engine.read_session() as session:
        return links.count_live_per_system(session)


def waiting_count(engine: Engine) -> int:
    """How many decisions wait for a person (a first run in review counts as one)."""
    gate = first_run.gate(engine)
    count = 1 if gate.state == "review" else 0
    count += first_run.held_for_review(engine)
    return count + len(guard.holds(engine))
