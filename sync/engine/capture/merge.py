"""Folding a captured deal into its record: field-by-field merge against the shadow, echoes of
our own pushes taken off, conflicts journaled; ``healed`` counted for a full compare.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Session

from sync.connectors.base import VendorRecord
from sync.engine import derived, money
from sync.engine.capture.identity import _create, _index_keys, _match
from sync.engine.capture.page import Item, NewLink, NewRecord, Page, Poll
from sync.engine.intents import (
    adopted_base,
    echoes,
    open_update_doubts,
)
from sync.engine.merge import Side, merge_field
from sync.mapping.derived import Derived
from sync.store.models import Conflict, Link, Record
from sync.timefmt import maybe_utc, parse_timestamp, utcnow


def _healed(poll: Poll, state: Page, record_id: str, rec: VendorRecord, what: str) -> None:
    """Count and journal a difference the regular path should already have delivered."""
    poll.counts.add("healed")
    state.notes.add(
        record_id,
        "healed",
        f"full compare: {poll.system} {rec.external_id} {what} although its stamp "
        f"{rec.modified.isoformat()} predates what earlier polls covered",
        system=poll.system,
        run_id=poll.run_id,
    )


def _ingest_new(poll: Poll, state: Page, item: Item) -> None:
    """An unlinked deal: link it to the stored record it matches, or create one."""
    system, rec, theirs = poll.system, item.rec, item.theirs
    if rec.external_id in state.new_links:  # listed twice in one page: linked by the first
        poll.counts.add("repeated")
        return
    found, why = _match(poll, state, rec, theirs)
    if isinstance(found, NewRecord) or (found is not None and found.id in state.linked_here):
        found = None  # that deal already has a partner here: this one is another deal
    elif found is not None and found.deleted_at is not None:
        poll.counts.add("tombstoned")
        return
    now = state.now
    record: Record | NewRecord = found or _create(poll, state, rec, theirs, now)
    intent = state.adopted.get(rec.external_id) if found is not None else None
    if found is not None:
        state.notes.add(
            found.id,
            "linked",
            f"{system} {rec.external_id} {why}",
            system=system,
            run_id=poll.run_id,
        )
        poll.counts.add("linked")
    if poll.missed(rec):
        _healed(poll, state, record.id, rec, "was not linked")
    link = NewLink(
        record_id=record.id,
        system=system,
        external_id=rec.external_id,
        shadow={} if found else dict(theirs),
        sent={},
        vendor_modified=maybe_utc(rec.modified),
        linked_at=now,
        synced_at=now,
    )
    state.new_links[rec.external_id] = link
    state.linked_here.add(record.id)
    if found is None:
        state.created[record.id] = link
    elif intent is not None:  # our own create: merge against what it sent
        link.shadow, link.sent = adopted_base(intent.sent, theirs)
        poll.counts.add("adopted")
        _merge_into(poll, state, rec, link, found, theirs)
    else:  # matched: merge everything against an unknown base
        _merge_into(poll, state, rec, link, found, theirs, first_match=True)
    _index_keys(state, record, poll.engine.config.sync.natural_key)
    state.touched[record.id] = (record, f"captured from {system}")


def _ingest_known(poll: Poll, state: Page, item: Item) -> None:
    rec, link, record, theirs = item.rec, item.link, item.record, item.theirs
    assert link is not None and record is not None
    if theirs == link.shadow:
        link.vendor_modified = maybe_utc(rec.modified)  # echo of our own write, or no change
        state.session.add(link)
        poll.counts.add("unchanged")
        return
    if poll.missed(rec):
        _healed(poll, state, record.id, rec, "differs from its shadow")
    changed = _merge_into(poll, state, rec, link, record, theirs)
    poll.counts.add("changed" if changed else "unchanged")
    _index_keys(state, record, poll.engine.config.sync.natural_key)
    state.touched[record.id] = (record, f"changed in {poll.system}")


def _effective_base(link: Link | NewLink | money.Copy, ours: dict[str, Any], name: str) -> Any:
    """The shadow value, except where the shadow is the vendor's lossy copy of ours."""
    base = link.shadow.get(name)
    sent = link.sent.get(name)
    if sent is not None and sent == [ours.get(name), base]:
        return ours.get(name)
    return base


def _merge_into(
    poll: Poll,
    state: Page,
    rec: VendorRecord,
    link: Link | NewLink,
    record: Record,
    theirs: dict[str, Any],
    *,
    first_match: bool = False,
) -> bool:
    """Three-way merge of every incoming field; returns whether the canonical record changed.
    ``first_match``: the deal was just matched to ours, so there is no base yet."""
    engine, session, system, run_id = poll.engine, state.session, poll.system, poll.run_id
    ours = dict(record.fields)
    provenance = dict(record.provenance)
    held = list(record.held)
    stamp = maybe_utc(rec.modified)
    changed = False
    _take_echoes(poll, state, record.id, theirs, link)
    # amounts compared as (amount, currency) pairs, in the deal's currency (engine/money.py)
    terms = money.for_merge(engine, system, ours, theirs, link)
    for reason in terms.set_aside:
        state.notes.add(
            record.id, "not_taken", reason, system=system, field="amount", run_id=run_id
        )
    base = terms.base.shadow
    following = derived.consequences(
        engine, system, base, terms.theirs, rec.data, first_match=first_match
    )
    for name, value in terms.theirs.items():
        if not first_match and name in base and value == base[name]:
            continue  # not changed there since we last saw it (a lossy copy of ours included)
        if name in following:  # the vendor recomputed it from a source that moved
            _note_consequence(poll, state, record.id, following[name], value, ours.get(name))
            continue
        origin = provenance.get(name) or {}
        ours_side = Side(ours.get(name), origin.get("system"), _parse(origin.get("at")))
        decision = merge_field(
            name,
            _effective_base(terms.base, ours, name),
            ours_side,
            Side(value, system, stamp),
            engine.policy_for(name),
            held=name in held,
            first_match=first_match,
        )
        if decision.conflict:
            _record_conflict(session, record, link, decision, ours_side, value, system)
            poll.counts.add("conflicts")
            if decision.outcome == "held" and name not in held:
                held.append(name)
        if decision.outcome == "take_theirs":
            state.notes.add(
                record.id,
                "field_changed",
                decision.reason + terms.why.get(name, ""),
                system=system,
                field=name,
                old=ours.get(name),
                new=value,
                run_id=run_id,
            )
            ours[name] = value
            at = maybe_utc(stamp)
            provenance[name] = {"system": system, "at": at.isoformat() if at else None}
            changed = True
        elif decision.conflict:
            state.notes.add(
                record.id,
                "conflict",
                decision.reason,
                system=system,
                field=name,
                old=value,
                new=decision.value,
                run_id=run_id,
            )
    link.shadow = dict(theirs)
    link.vendor_modified = maybe_utc(rec.modified)
    link.synced_at = utcnow()  # a stored link is tracked; a new one is in state.new_links
    if changed or held != record.held:
        record.fields, record.provenance, record.held = ours, provenance, held
        record.updated_at = utcnow()
        session.add(record)
    return changed


def _note_consequence(
    poll: Poll, state: Page, record_id: str, follower: Derived, value: Any, kept: Any
) -> None:
    sources = " / ".join(sorted(follower.sources))
    state.notes.add(
        record_id,
        "derived",
        f"{follower.field} {value!r} in {poll.system} came with its {sources} change "
        f"({follower.why}): the vendor's consequence, not an edit — kept {kept!r}, not spread",
        system=poll.system,
        field=follower.field,
        new=value,
        run_id=poll.run_id,
    )


def _take_echoes(
    poll: Poll, state: Page, record_id: str, theirs: dict[str, Any], link: Link | NewLink
) -> None:
    """Values an update of ours whose answer never came back may have left there are our
    echo, not that system's edit: the shadow moves to them, as the answer would have moved it
    (``intents``: updates in doubt)."""
    if state.doubts is None:
        state.doubts = open_update_doubts(state.session, poll.system)
    doubts = state.doubts.get(record_id)
    echo = echoes(doubts, theirs, link.shadow) if doubts else {}
    if echo:
        link.shadow = {**link.shadow, **echo}
        poll.counts.add("echoes")


def _record_conflict(
    session: Session,
    record: Record,
    link: Link | NewLink,
    decision: Any,
    ours: Side,
    theirs: Any,
    system: str,
) -> None:
    manual = decision.outcome == "held"
    session.add(
        Conflict(
            record_id=record.id,
            field=decision.field,
            policy=decision.policy or "manual",
            base=link.shadow.get(decision.field),
            ours=ours.value,
            ours_system=ours.system,
            theirs=theirs,
            theirs_system=system,
            winner=decision.winner,
            status="open" if manual else "resolved",
            reason=decision.reason,
            resolved_at=None if manual else utcnow(),
        )
    )


def _parse(value: Any) -> dt.datetime | None:
    """When a provenance entry says its value was set (None when it does not say).
    ``parse_timestamp`` of the value's text rather than ``parse_optional_timestamp``: that one
    answers None for a value that is not a string, where capture always read its text (and
    failed on what is no stamp). Matching's ``_at`` reads provenance the same way."""
    return parse_timestamp(str(value)) if value else None
