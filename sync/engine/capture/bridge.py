"""A captured deal that bridges two records: one of its external ids is held by the record it
joins, another by a different record (Ruddr's deal carries both ``salesforceId`` and
``hubspotId``; Salesforce's deal and HubSpot's were read first, each made its own record).
Both records are this one deal, so they are folded into one — else which deals end up
together would depend on the order the systems were first read, and the record left apart
would be created everywhere as a duplicate.

Folding can never merge two real deals into one: it is done only when no system holds both
records (a link, or a create that may have reached the vendor: in flight, or an intent whose
answer was lost) and nothing of the folded record is on its way out (no push in flight, no
open intent). Otherwise the records stay apart and the journal of both says why — a visible
duplicate, never a silent merge (the rule of ``intents``). The checks read rows locked until
the page commits (PostgreSQL), so a drain cannot claim a push of either record meanwhile.
"""

from __future__ import annotations

from typing import Any

from sync.engine.capture.page import Page, Poll
from sync.engine.fold import fold_fields
from sync.engine.identity import describe_key, keys_of
from sync.engine.outbound import MATCH_HOLD
from sync.store import links, outbox, records
from sync.store.models import Record


def fold_bridged(poll: Poll, state: Page, record: Record, theirs: dict[str, Any]) -> None:
    """Fold into ``record`` (the stored record the deal joins) every other stored record that
    holds one of the deal's external ids, where that is safe; journal why where it is not."""
    natural = poll.engine.config.sync.natural_key
    for namespace, value in keys_of(theirs, natural):
        other = state.records.get(state.keys.get((namespace, value)) or "")
        if namespace == "natural" or other is None or other.id == record.id:
            continue  # a shared name is not identity: only an id the deal carries bridges
        key = describe_key(namespace, value, natural)
        why_not = _unsafe(poll, state, record, other)
        if why_not:
            _kept_apart(poll, state, record, other, key, why_not)
        else:
            _fold(poll, state, record, other, key)


def _unsafe(poll: Poll, state: Page, keep: Record, other: Record) -> str:
    """Why ``other`` cannot be folded into ``keep`` ("" when it can)."""
    for record in (keep, other):
        if record.deleted_at is not None:
            return f"record {record.id} is deleted"
        if MATCH_HOLD in record.held:
            return f"record {record.id} waits for a person's match decision"
        if record.id in state.linked_here:
            return f"record {record.id} is already linked in {poll.system}"
    session = state.session
    records.lock(session, sorted((keep.id, other.id)))  # rows read below stay as read
    held = links.systems_of(session, [keep.id, other.id])
    for record_id, system, status, intent_at in outbox.open_states_locked(
        session, [keep.id, other.id]
    ):
        if record_id == other.id and (status == "in_flight" or intent_at is not None):
            return f"a push of record {other.id} to {system} is under way"
        if status == "in_flight" or intent_at is not None:  # may be there already
            held[record_id].add(system)
    held[keep.id].discard(poll.system)  # its create there, if any, made this very deal
    both = sorted(held[keep.id] & held[other.id])
    if both:
        return f"{', '.join(both)} already holds both"
    if poll.system in held[other.id]:
        return f"{poll.system} already holds record {other.id}'s deal"
    return ""


def _fold(poll: Poll, state: Page, keep: Record, other: Record, key: str) -> None:
    fold_fields(poll.engine, keep, other, state.notes, "bridge")
    state.notes.write(state.session)  # before its rows move: the gone record's entries too
    records.absorb(state.session, {other.id: keep.id}, outbox.UNSENT_STATES)
    state.session.expunge(other)
    del state.records[other.id]
    for found, record_id in state.keys.items():
        if record_id == other.id:
            state.keys[found] = keep.id
    state.notes.add(
        keep.id,
        "merged",
        f"folded record {other.id} in: the {poll.system} deal it is now linked to carries "
        f"{key} of that record too (one deal, first read apart)",
        system=poll.system,
        run_id=poll.run_id,
    )
    poll.counts.add("folded")


def _kept_apart(
    poll: Poll, state: Page, keep: Record, other: Record, key: str, why_not: str
) -> None:
    for record_id in (keep.id, other.id):
        state.notes.add(
            record_id,
            "bridge_kept_apart",
            f"the {poll.system} deal linked to record {keep.id} carries {key} of record "
            f"{other.id}: the two are kept apart (if they are one deal, one is a duplicate) "
            f"as {why_not}",
            system=poll.system,
            run_id=poll.run_id,
        )
    poll.counts.add("bridges_kept_apart")
