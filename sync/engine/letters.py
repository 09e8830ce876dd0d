"""Dead letters that close themselves once the deal they were about syncs after all.

A letter is written when a push is refused or a read cannot be mapped; the user then fixes the
deal (or the mapping) and the next sync goes through. Leaving the letter ``open`` would keep a
fixed problem on every dashboard, so the step that succeeded closes it: a push that landed in a
system resolves that record's outbound letters there, a capture that mapped a vendor record
resolves its inbound letters, and a deal that left the sync's scope closes every letter about
it: a filter now leaves it out, or it was deleted — in the system the letter is about (its copy
there is gone, so nothing is owed to or from it), or everywhere (a ``propagate`` delete: the
deal itself is gone). Each closed letter gets a journal entry on its record.

Both functions run one query per batch (usually finding nothing), never one per record.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping

from sqlmodel import Session

from sync.engine.journal import Notes
from sync.store import letters, links
from sync.store.models import DeadLetter
from sync.timefmt import utcnow


def resolve_pushed(
    session: Session, system: str, record_ids: Collection[str], notes: Notes, run_id: str | None
) -> int:
    """Close the outbound letters of ``record_ids`` in ``system``: a push there succeeded."""
    if not record_ids:
        return 0
    found = letters.unresolved_outbound(session, system, sorted(record_ids))
    for letter in found:
        _close(session, letter, letter.record_id, notes, run_id, "a later push succeeded")
    return len(found)


def outbound_open(session: Session, system: str, record_ids: Collection[str]) -> bool:
    """Whether any of ``record_ids`` has an open outbound letter in ``system`` (a push there
    that lands closes it: :func:`resolve_pushed`)."""
    return bool(record_ids) and bool(
        letters.unresolved_outbound(session, system, sorted(record_ids))
    )


def resolve_captured(
    session: Session, system: str, external_ids: Collection[str], notes: Notes, run_id: str | None
) -> int:
    """Close the inbound letters of ``external_ids`` read from ``system``: they mapped fine.

    Call it after the page's new links are inserted: a letter about a deal that was never
    captured has no record yet, and its journal entry goes to the record the read created."""
    if not external_ids:
        return 0
    ids = sorted(external_ids)
    found = letters.unresolved_inbound(session, system, ids)
    if not found:
        return 0
    record_of = links.record_ids_of(session, system, ids)
    for letter in found:
        record_id = letter.record_id or record_of.get(letter.external_id or "")
        _close(session, letter, record_id, notes, run_id, "a later read mapped it")
    return len(found)


def resolve_filtered(
    session: Session,
    system: str,
    deals: Mapping[str, str | None],
    notes: Notes,
    run_id: str | None,
) -> int:
    """Close every letter about deals of ``system`` its filter now leaves out (external id ->
    record id): they left the sync, nothing is owed to or from them any more, so a letter
    about one would stay open, and counted, for good."""
    if not deals:
        return 0
    found = letters.unresolved_of_deals(session, system, sorted(deals), _ids(deals.values()))
    for letter in found:
        record_id = letter.record_id or deals.get(letter.external_id or "")
        why = "the deal left the sync: the system's filter leaves it out"
        _close(session, letter, record_id, notes, run_id, why)
    return len(found)


def resolve_deleted(
    session: Session,
    system: str,
    deal: tuple[str, str],
    *,
    everywhere: bool,
    why: str,
    run_id: str | None,
) -> int:
    """Close the letters about a deal (external id, record id) deleted in ``system``: that
    system's letters about its copy, and with ``everywhere`` (the record itself was deleted)
    every system's letters about the record — a refused create or update there is owed to a
    deal that no longer exists, and would stay open, and counted, for good."""
    external_id, record_id = deal
    found = {
        letter.id: letter
        for letter in letters.unresolved_of_deals(session, system, [external_id], [record_id])
    }
    if everywhere:
        found.update(
            (letter.id, letter) for letter in letters.unresolved_of_record(session, record_id)
        )
    notes = Notes()
    for letter in found.values():
        _close(session, letter, record_id, notes, run_id, f"the deal was deleted: {why}")
    notes.write(session)
    return len(found)


def resolve_vanished_unlinked(
    session: Session, system: str, gone: Callable[[str], bool], why: str, run_id: str | None
) -> int:
    """Close the inbound letters of ``system`` about never-captured deals that ``gone`` says
    the vendor deleted (missing from a complete scan, or in its delete feed): no record holds
    them, so no delete policy ever sees them."""
    found = [
        letter
        for letter in letters.unresolved_unlinked_inbound(session, system)
        if letter.external_id and gone(letter.external_id)
    ]
    notes = Notes()
    for letter in found:
        _close(session, letter, None, notes, run_id, f"the deal was deleted: {why}")
    return len(found)


def _ids(values: Iterable[str | None]) -> list[str]:
    return sorted({value for value in values if value})


def _close(
    session: Session,
    letter: DeadLetter,
    record_id: str | None,
    notes: Notes,
    run_id: str | None,
    why: str,
) -> None:
    letter.status, letter.updated_at = "resolved", utcnow()
    letter.record_id = letter.record_id or record_id
    session.add(letter)
    if record_id is not None:
        reason = f"dead letter {letter.id} ({letter.op} in {letter.system}) resolved: {why}"
        notes.add(record_id, "dead_letter_resolved", reason, system=letter.system, run_id=run_id)
