"""``crmsync verify``: read every system and compare every linked deal field by field, in
canonical form, with the canonical record. Drift is reported per system, record and field.

A field whose vendor copy is the vendor's lossy form of exactly our value (``links.sent``:
Close keeps 0.7512 as 75 %) is not drift. Held fields (open manual conflicts) are skipped.
Also reported: vendor deals not linked to any record, linked deals missing from the vendor,
and duplicates counted from the vendors' side, not only against the store: more deals of one
name in a system than live deals of that name in the store, several deals in one system that
carry the same crmsync record id (where the vendor holds it), and — what comparing each
system with the store cannot see — several live canonical records for one real deal
(``twins``), found by the identity rule a lost create answer breaks: records of one name and
company (normalised) of which one was captured as new from a system *after* another had
journaled a create intent there. (Two real deals of one name and company, made
independently, are common in a CRM and are not reported.)

Differences with a known reason are listed as such, not hidden (issue 17): a field held by an
open manual conflict whose copies differ, a linked deal the system's ``filter`` now leaves out
(crmsync neither reads nor writes it), a field waiting for a reference that system lacks
(``engine.unresolved``: named, with what to do), a deal whose update the vendor refused (its
open dead letter, the vendor's words), and a held system (not read at all: it may point at the
wrong account). They keep ``clean`` false; ``agrees(accept_known=True)`` accepts them.

A summary listing (ParsaLink) costs a GET per deal to compare in full — two hours for 10,000
deals at 100 requests a minute, from the budget the sync itself uses. ``summaries`` says how
to read one (issue 25): every deal in full, or trusting stamps a full read confirmed or our
own write's answer carried, with or without a sample read in full (``engine.summaries``,
with the risk the trust takes); the report says which, and how many were trusted each way.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from sync.connectors.base import VendorRecord
from sync.engine import companies, guard, money, unresolved
from sync.engine.context import Engine
from sync.engine.normalise import normalise_company, normalise_text
from sync.engine.outbound import MATCH_HOLD, desired
from sync.engine.summaries import Sample, Summaries, trusted
from sync.engine.unresolved import Waiting
from sync.engine.verify_report import Drift, Known, SystemCheck, VerifyReport
from sync.mapping.errors import MappingError, UnresolvedReference
from sync.store import conflicts, journal
from sync.store import links as stored_links
from sync.store import records as stored_records
from sync.store.models import Link, Record

#: how capture's journal entry for a record it made from a vendor deal begins
CAPTURED = "new deal captured from "


def verify(
    engine: Engine, systems: list[str] | None = None, summaries: Summaries = "full"
) -> VerifyReport:
    report = VerifyReport()
    engine.refs.forget()
    engine.refs.prime()
    for system in systems or engine.systems:
        state = guard.held(engine, system)
        if state is not None:  # not read: it may point at another account
            message = state.held_message or "held"
            check = SystemCheck(held=message)
            check.known.append(Known(system, None, None, None, f"system held: {message}"))
            report.systems[system] = check
            continue
        report.systems[system] = _verify_system(engine, system, summaries)
    with engine.read_session() as session:
        alike = twins(stored_records.every(session))
        report.twins = [group for group in alike if _one_deal(session, group)]
    read = [name for name, check in report.systems.items() if check.held is None]
    report.company_names = companies.names_across(engine, read)
    return report


def _one_deal(session: Session, group: list[str]) -> bool:
    """Was one record of the group captured as new from a system after another record of the
    group had journaled a create there (a create whose answer was lost, adopted by no one)?"""
    rows = journal.creates_of(session, group, CAPTURED)
    intents = [(rid, system, at) for rid, system, action, at in rows if action == "create_intent"]
    captured = [(rid, system, at) for rid, system, action, at in rows if action == "created"]
    return any(
        new_rid != rid and new_system == system and new_at >= at
        for rid, system, at in intents
        for new_rid, new_system, new_at in captured
    )


def twins(records: Sequence[Record]) -> list[list[str]]:
    """Live records sharing a normalised (name, company): one deal the store holds twice.
    Two real deals of one company with one name are rare enough to be worth a look too."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for record in records:
        if record.deleted_at is None and record.fields.get("name"):
            # the first run's normalisation (engine/normalise.py): one rule for "one deal"
            name, company = record.fields.get("name"), record.fields.get("company") or ""
            key = (normalise_text(name), normalise_company(company))
            groups[key].append(record.id)
    return sorted(sorted(ids) for ids in groups.values() if len(ids) > 1)


def _verify_system(engine: Engine, system: str, summaries: Summaries = "full") -> SystemCheck:
    check = SystemCheck()
    with engine.session() as session:
        links = {link.external_id: link for link in stored_links.of_system(session, system)}
        records = {r.id: r for r in stored_records.every(session)}
        waits = unresolved.by_record(session, system)
    names: Counter[str] = Counter()
    carried: Counter[str] = Counter()  # our record id, where the vendor holds it
    seen: set[str] = set()
    sample = Sample(summaries, len(links))
    for page in engine.connector(system).scan():
        for vendor_record in page:
            check.vendor_records += 1
            seen.add(vendor_record.external_id)
            link = links.get(vendor_record.external_id)
            theirs = _read(engine, system, check, sample, vendor_record, link)
            if theirs is None:
                if vendor_record.external_id in check.why:  # unreadable: name it too
                    _name_of(check, vendor_record.external_id, links, records)
                continue
            if theirs.get("name"):
                names[str(theirs["name"])] += 1
                check.names[vendor_record.external_id] = str(theirs["name"])
            if record_id := engine.mapper.record_id_of(system, vendor_record.data):
                carried[record_id] += 1
            if link is None or link.deleted_at is not None:
                check.unlinked.append(vendor_record.external_id)
                check.why[vendor_record.external_id] = UNLINKED
                continue
            check.linked += 1
            record = records.get(link.record_id)
            if record is not None:
                drift, known = _compare(engine, system, record, link, theirs)
                drift, waiting = _waiting(drift, waits.get(record.id, []))
                check.drift.extend(drift)
                check.known.extend([*known, *waiting])
    # two deals may share a name; more copies of a name here than deals of that name is not
    live_names = Counter(
        str(r.fields.get("name")) for r in records.values() if r.deleted_at is None
    )
    check.duplicates = sorted(name for name, n in names.items() if n > max(1, live_names[name]))
    check.duplicates += sorted(
        f"{n} deals carry record id {rid}" for rid, n in carried.items() if n > 1
    )
    if engine.config.systems[system].create:
        linked_records = {link.record_id for link in links.values()}
        check.absent = sorted(
            rid
            for rid, record in records.items()
            if record.deleted_at is None
            and rid not in linked_records
            and MATCH_HOLD not in record.held  # an ambiguous match waits for a person
        )
        # a create waiting for a reference this system lacks: known, and named
        check.known += [
            Known(system, rid, None, item.field, item.describe())
            for rid in check.absent
            for item in waits.get(rid, [])
        ]
        check.absent = [rid for rid in check.absent if rid not in waits]
    _open_conflicts(engine, check, system, links)
    check.missing = sorted(
        ext
        for ext, link in links.items()
        if ext not in seen
        and link.deleted_at is None
        and (records.get(link.record_id) is None or records[link.record_id].deleted_at is None)
    )
    for ext in check.missing:
        check.why[ext] = MISSING
        _name_of(check, ext, links, records)
    _explain(engine, check, system)
    return check


def _waiting(drift: list[Drift], waits: list[Waiting]) -> tuple[list[Drift], list[Known]]:
    """Differences in fields that wait for a reference there are known, with its reason."""
    if not waits:
        return drift, []
    why = {w.field: w for w in waits}
    known = [
        Known(d.system, d.record_id, d.external_id, d.field, why[d.field].describe())
        for d in drift
        if d.field in why
    ]
    return [d for d in drift if d.field not in why], known


#: why a vendor deal is unlinked, and a linked one missing (absent and unreadable say per deal)
UNLINKED = "no deal crmsync holds is linked to it (new since the last read, or created by hand)"
MISSING = "linked, but the vendor no longer lists it (deleted there, or out of the account)"


def _name_of(
    check: SystemCheck, ext: str, links: dict[str, Link], records: dict[str, Record]
) -> None:
    link = links.get(ext)
    record = records.get(link.record_id) if link is not None else None
    if record is not None and record.fields.get("name"):
        check.names[ext] = str(record.fields["name"])


def _explain(engine: Engine, check: SystemCheck, system: str) -> None:
    """Why each unlinked, unreadable and absent deal is there: the open dead letter about it
    (the vendor's refusal, the mapping's complaint) where there is one, else what is owed. A
    drifting deal whose update the vendor refused is a known difference, with that refusal."""
    from sync.store import letters
    from sync.store import outbox as stored_outbox

    drifting = {d.record_id for d in check.drift}
    with engine.read_session() as session:
        found = letters.open_about(
            session,
            system,
            [*check.absent, *sorted(drifting)],
            [*check.unlinked, *check.unreadable],
        )
        owed = {
            row.record_id: row
            for row in stored_outbox.open_rows_of_many(session, check.absent)
            if row.system == system
        }
        absent = {r.id: r for r in stored_records.many(session, check.absent)}
    for letter in found:
        by_record = letter.record_id in absent or letter.record_id in drifting
        key = letter.record_id if by_record else letter.external_id
        if key:
            # a write the vendor refused (its words follow), or a read the mapping could not
            what = f"{letter.op} refused" if letter.direction == "outbound" else "cannot be read"
            check.why[key] = f"{what} (dead letter {letter.id}): {letter.error}"
    refused = {k: check.why.pop(k) for k in drifting if k in check.why}
    check.known += [
        Known(system, d.record_id, d.external_id, d.field, refused[d.record_id])
        for d in check.drift
        if d.record_id in refused
    ]
    check.drift = [d for d in check.drift if d.record_id not in refused]
    for rid in check.absent:
        if rid in absent and absent[rid].fields.get("name"):
            check.names[rid] = str(absent[rid].fields["name"])
        if rid in check.why:
            continue
        row = owed.get(rid)
        check.why[rid] = (
            f"not created here yet: its {row.op} is {row.status} ({row.reason})"
            if row is not None
            else "not created here, and nothing is owed: `crmsync reconcile` heals it"
        )


def _read(
    engine: Engine,
    system: str,
    check: SystemCheck,
    sample: Sample,
    vendor_record: VendorRecord,
    link: Link | None,
) -> dict[str, Any] | None:
    """The deal's canonical fields to compare (a summary read in full, or trusted); None when
    it is filtered out or unreadable (noted in ``check``)."""
    if vendor_record.partial:
        check.summaries = sample.label
        if sample.trusts and not sample.drawn():
            trust = trusted(engine, system, link, vendor_record)
            if trust is not None:
                check.trusted_by[trust[0]] += 1
                return trust[1]
        vendor_record = engine.connector(system).get(vendor_record.external_id)
        check.read_in_full += 1
    if not engine.mapper.accepts(system, vendor_record.data):
        check.filtered.append(vendor_record.external_id)
        _filtered(check, system, link)
        return None
    try:
        return dict(engine.mapper.to_canonical(system, vendor_record.data, engine.refs))
    except (MappingError, UnresolvedReference) as exc:
        check.unreadable.append(vendor_record.external_id)
        check.why[vendor_record.external_id] = f"cannot be read: {exc}"
        return None


def _filtered(check: SystemCheck, system: str, link: Link | None) -> None:
    if link is not None and link.deleted_at is None:
        check.known.append(
            Known(
                system,
                link.record_id,
                link.external_id,
                None,
                "left out by the system's filter: neither read nor written",
            )
        )


def _open_conflicts(
    engine: Engine, check: SystemCheck, system: str, links: dict[str, Link]
) -> None:
    """Count the open manual conflicts on deals linked here; the fields they hold whose copies
    differ are already in ``known`` (``_compare``)."""
    linked = {link.record_id for link in links.values() if link.deleted_at is None}
    if not linked:
        return
    with engine.session() as session:
        rows = conflicts.open_on_records(session, sorted(linked))
    check.conflicts = len(rows)


def _compare(
    engine: Engine, system: str, record: Record, link: Link, theirs: dict[str, Any]
) -> tuple[list[Drift], list[Known]]:
    out = []
    try:
        wanted = desired(engine, system, record)
    except money.CurrencyMismatch:
        # it cannot hold the deal's currency: whatever figure it holds is in another one
        wanted = desired(engine, system, _without_amount(record))
        ours_pair, theirs_pair = money.money_drift(engine, system, record.fields, theirs) or (
            f"{record.fields.get('amount')} {record.fields.get('currency')}",
            theirs.get("amount"),
        )
        out.append(Drift(system, record.id, link.external_id, "currency", ours_pair, theirs_pair))
    for name, ours in wanted.items():
        value = theirs.get(name)
        if value == ours or link.sent.get(name) == [ours, value]:
            continue
        if name == "amount" and money.holds_ours(engine, system, record.fields, value):
            continue  # a converted copy, in sync with the rate that made it
        if name == "amount" and (pair := money.money_drift(engine, system, record.fields, theirs)):
            ours, value = pair  # say which currencies the two figures are in
        out.append(Drift(system, record.id, link.external_id, name, ours, value))
    pair = money.money_drift(engine, system, record.fields, theirs)
    if pair and not any(d.field in ("amount", "currency") for d in out):
        # the same figure, in another currency: a EUR deal sitting as a USD figure
        out.append(Drift(system, record.id, link.external_id, "currency", *pair))
    known = [
        Known(
            system,
            record.id,
            link.external_id,
            name,
            f"held by an open manual conflict: ours {record.fields.get(name)!r}, "
            f"theirs {theirs.get(name)!r}",
        )
        for name in record.held
        if name in theirs and theirs.get(name) != record.fields.get(name)
    ]
    return out, known


@dataclass
class _Canonical:
    fields: dict[str, Any]
    held: list[str]
    deleted_at: Any = None


def _without_amount(record: Record) -> _Canonical:
    return _Canonical(record.fields, [*record.held, "amount"], record.deleted_at)
