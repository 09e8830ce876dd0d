"""The identity rules of ``engine.identity`` applied to a page of captured deals, with the
page's cache of keys and records (``page.Page``): an unlinked deal belongs to the record whose
id it carries, else to the record holding one of its identity keys, else to an open create
intent of ours whose answer was lost; else it is a new record (``_create``). Also indexes the
keys of the page's records in that cache (inserted with the page's other new rows).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sync.connectors.base import VendorRecord
from sync.engine.capture.bridge import fold_bridged
from sync.engine.capture.page import NewRecord, Page, Poll, _load_records, _lookup_keys
from sync.engine.context import new_id
from sync.engine.identity import describe_key, keys_of
from sync.engine.intents import (
    Intent,
    best_intent,
    open_intents,
)
from sync.store.models import Record
from sync.timefmt import maybe_utc


def _match(
    poll: Poll, state: Page, rec: VendorRecord, theirs: dict[str, Any]
) -> tuple[Record | NewRecord | None, str]:
    """The record an unlinked deal belongs to: our record id it carries, then its keys."""
    record, why = _by_record_id(poll, state, rec)
    if record is None:
        record, why = _find_record(state, theirs, poll.engine.config.sync.natural_key)
    if record is None:
        record, why = _by_intent(poll, state, rec, theirs)
    if isinstance(record, Record) and record.id not in state.linked_here and not record.deleted_at:
        fold_bridged(poll, state, record, theirs)  # its other ids may name other records
    return record, why


def _by_intent(
    poll: Poll, state: Page, rec: VendorRecord, theirs: dict[str, Any]
) -> tuple[Record | None, str]:
    """A deal one of our creates made whose answer was lost (``intents`` has the rule): it is
    that record's, never a new one — whichever comes first, this capture or the retry."""
    if poll.engine.mapper.holds_record_id(poll.system):
        return None, ""  # our creates there carry our id: a deal without it is not ours
    pool = [i for i in _intents(poll, state) if i.record_id not in state.linked_here]
    if not pool:
        return None, ""
    current = {
        i.record_id: state.records[i.record_id].fields for i in pool if i.record_id in state.records
    }
    found = best_intent(pool, theirs, maybe_utc(rec.modified), current, maybe_utc(rec.created))
    record = state.records.get(found[0].record_id) if found else None
    if found is None or record is None:
        return None, ""
    intent, score = found
    _intents(poll, state).remove(intent)
    state.adopted[rec.external_id] = intent
    return record, (
        f"is the deal of create intent #{intent.row_id} whose answer was lost "
        f"({score.value:.0%} alike what it sent)"
    )


def _create(
    poll: Poll, state: Page, rec: VendorRecord, theirs: dict[str, Any], now: dt.datetime
) -> NewRecord:
    record = NewRecord(
        id=new_id(),
        fields=dict(theirs),
        provenance=_prov(theirs, poll.system, rec),
        held=[],
        created_at=now,
        updated_at=now,
    )
    state.new_records[record.id] = record
    state.notes.add(
        record.id,
        "created",
        f"new deal captured from {poll.system} {rec.external_id}",
        system=poll.system,
        new=theirs,
        run_id=poll.run_id,
    )
    poll.counts.add("created")
    return record


def _by_record_id(
    poll: Poll, state: Page, rec: VendorRecord
) -> tuple[Record | NewRecord | None, str]:
    """Our own record id written into the vendor's deal (a create whose answer we lost)."""
    record_id = poll.engine.mapper.record_id_of(poll.system, rec.data)
    record = state.record(record_id)
    if record is None:
        return None, ""
    intent = next((i for i in _intents(poll, state) if i.record_id == record.id), None)
    if intent is not None:  # our create whose answer was lost: its base is what it sent
        _intents(poll, state).remove(intent)
        state.adopted[rec.external_id] = intent
    return record, f"carries our record id {record_id}"


def _intents(poll: Poll, state: Page) -> list[Intent]:
    """This system's open create intents, loaded with their records once per page."""
    if state.intents is None:
        state.intents = open_intents(state.session, poll.system)
        _load_records(state, [intent.record_id for intent in state.intents])
    return state.intents


def _find_record(
    state: Page, fields: dict[str, Any], natural_key: list[str]
) -> tuple[Record | NewRecord | None, str]:
    """The record an unlinked deal belongs to, by its identity keys in order (DESIGN §2.5):
    external ids it carries first, then the natural key."""
    for namespace, value in keys_of(fields, natural_key):
        record = state.record(state.keys.get((namespace, value)))
        if record is not None:
            return record, f"matched by {describe_key(namespace, value, natural_key)}"
    return None, ""


def _index_keys(state: Page, record: Record | NewRecord, natural_key: list[str]) -> None:
    """Make sure every identity key of the record points at it (first come keeps a key)."""
    wanted = keys_of(record.fields, natural_key)
    _lookup_keys(state, wanted)
    for key in wanted:
        if key not in state.keys:
            state.new_keys.append({"record_id": record.id, "namespace": key[0], "value": key[1]})
            state.keys[key] = record.id
            state.absent.discard(key)


def _prov(fields: dict[str, Any], system: str, rec: VendorRecord) -> dict[str, Any]:
    at = maybe_utc(rec.modified)
    stamp = at.isoformat() if at else None  # once, not once per field
    return {name: {"system": system, "at": stamp} for name in fields}
