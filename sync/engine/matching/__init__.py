"""Matching deals that already exist in several systems (the guided first run, README).

Capture links what it can be sure of — an external id (Ruddr's ``salesforceId`` /
``hubspotId`` against Truto's Salesforce ids), crmsync's record id written in the vendor, an
exact ``sync.natural_key`` — and makes one canonical record for every other vendor deal. On a
fresh store whose systems already held the same deals, that is one record per copy. This module
proposes which of those records are one deal, by the ``sync.match`` rule: the ``fields``
(default name + company) must agree once normalised — case, accents, whitespace, punctuation
and, for companies, suffixes such as Inc, LLC, Ltd, GmbH, Corp, Co — and ``tie_breakers``
(close date, amount) split a group that holds two deals of one system.

Per group of records sharing a key:
- each system appears once at most → **matched** (records of several systems; linked on apply)
- one system appears twice even after the tie-breakers → **ambiguous**: never guessed; on
  apply its records are held (nothing created from them) until a person decides (``--apply``)
- one record in one system → **single** (created in the others once approved)
Unmatched deals of different systems with close names (``near_miss``) or the same name at
another company are reported as **near-misses**, for a person to look at; never linked.

The proposal is computed from the store only (no vendor call) and is deterministic, so
``crmsync match`` can be run, exported (CSV), corrected and applied at any time. Applying a
link merges the records (fields by the conflict policy, keyed fields key by key, links, identity
keys, journal, conflicts and pushes moved onto the record kept) and queues what each system
now lacks or holds differently.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from sqlmodel import Session

from sync.engine.identity import index_keys
from sync.engine.journal import Notes
from sync.engine.merge import Side, merge_field
from sync.engine.normalise import normalise_company, normalise_text
from sync.engine.outbound import MATCH_HOLD, enqueue_pushes
from sync.engine.state import Engine
from sync.store import links, outbox, records
from sync.store.models import Record
from sync.timefmt import parse_timestamp, utcnow

Status = Literal["matched", "ambiguous", "single"]
CSV_COLUMNS = (
    "match_id",
    "status",
    "action",
    "system",
    "external_id",
    "record_id",
    "name",
    "company",
    "amount",
    "close_date",
    "why",
)
#: name comparisons the near-miss search may make (about a second at worst)
NEAR_MISS_BUDGET = 20_000
CHUNK = 400  # ids per statement (SQLite binds up to 32,766 variables; PostgreSQL 65,535)


class MatchFileError(ValueError):
    """A corrected match file that cannot be applied; the message names the rows."""


# -- normalising -------------------------------------------------------------------------------
def normalise(name: str, value: Any) -> str | None:
    """One canonical field in the form the match compares (None: the deal has no value)."""
    if value in (None, ""):
        return None
    if name == "company":
        return normalise_company(value) or None
    if name in ("name", "owner", "stage"):
        return normalise_text(value) or None
    return str(value)


# -- the proposal ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Deal:
    """A live canonical record as the match sees it: its copies and the fields it compares."""

    record_id: str
    copies: tuple[tuple[str, str], ...]  # (system, external id), sorted
    fields: Mapping[str, Any]
    held: bool = False

    @cached_property
    def systems(self) -> frozenset[str]:
        return frozenset(system for system, _ in self.copies)

    def label(self) -> str:
        where = ", ".join(f"{system} {ext}" for system, ext in self.copies) or "no system"
        return f"{self.fields.get('name')!r} at {self.fields.get('company')!r} ({where})"


@dataclass
class Group:
    """Records the rule says are one deal (or cannot tell apart, when ambiguous)."""

    match_id: str
    status: Status
    deals: list[Deal]
    why: str

    @property
    def to_link(self) -> bool:
        return self.status == "matched" and len(self.deals) > 1


@dataclass(frozen=True)
class NearMiss:
    first: Deal
    second: Deal
    why: str


@dataclass
class Proposal:
    groups: list[Group] = field(default_factory=list)
    near_misses: list[NearMiss] = field(default_factory=list)
    rule: str = ""
    #: the near-miss search stopped at its budget: more may exist
    near_misses_cut: bool = False

    def of(self, status: Status) -> list[Group]:
        return [group for group in self.groups if group.status == status]

    @property
    def counts(self) -> dict[str, int]:
        """Deals (not records) per outcome, and how many records linking would merge."""
        return {
            "matched": len(self.of("matched")),
            "ambiguous": len(self.of("ambiguous")),
            "single": len(self.of("single")),
            "to_link": sum(len(g.deals) - 1 for g in self.groups if g.to_link),
            "near_misses": len(self.near_misses),
        }


def load_deals(session: Session) -> list[Deal]:
    """Every live record with its live copies (two queries)."""
    copies: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for record_id, system, external_id in links.live_copies(session):
        copies[record_id].append((system, external_id))
    live = records.live(session)
    return [
        Deal(r.id, tuple(sorted(copies.get(r.id, []))), dict(r.fields), MATCH_HOLD in r.held)
        for r in sorted(live, key=lambda r: (r.created_at, r.id))
    ]


def propose(engine: Engine, deals: Sequence[Deal] | None = None) -> Proposal:
    """Group the store's live records by the match rule (see the module docstring)."""
    rule = engine.config.sync.match
    if deals is None:
        with engine.read_session() as session:
            deals = load_deals(session)
    proposal = Proposal(
        rule=" + ".join(rule.fields)
        + (f" (tie-breakers: {', '.join(rule.tie_breakers)})" if rule.tie_breakers else "")
    )
    by_key: dict[tuple[str | None, ...], list[Deal]] = defaultdict(list)
    keyless: list[Deal] = []
    for deal in deals:
        key = tuple(normalise(name, deal.fields.get(name)) for name in rule.fields)
        if any(part is None for part in key) or not deal.copies:
            keyless.append(deal)
        else:
            by_key[key].append(deal)
    for members in by_key.values():
        proposal.groups.extend(_decide(members, rule.tie_breakers, " + ".join(rule.fields)))
    for deal in keyless:
        why = "no copy in any system" if not deal.copies else "lacks a field the rule compares"
        proposal.groups.append(Group("", _alone(deal), [deal], why))
    proposal.groups.sort(key=lambda g: (g.deals[0].fields.get("name") or "", g.deals[0].record_id))
    for number, group in enumerate(proposal.groups, start=1):
        group.match_id = f"{group.status[0].upper()}{number:05d}"
    proposal.near_misses, proposal.near_misses_cut = _near_misses(proposal, rule.near_miss)
    return proposal


def _alone(deal: Deal) -> Status:
    return "matched" if len(deal.systems) > 1 else "single"


def _disjoint(deals: Sequence[Deal]) -> bool:
    """No system holds two of these deals (so they can be one deal)."""
    seen: set[str] = set()
    for deal in deals:
        if seen & deal.systems:
            return False
        seen |= deal.systems
    return True


def _decide(members: list[Deal], tie_breakers: Sequence[str], rule: str) -> list[Group]:
    if len(members) == 1:
        deal = members[0]
        why = "linked by an id" if len(deal.systems) > 1 else "no other system holds it"
        return [Group("", _alone(deal), [deal], why)]
    if _disjoint(members):
        return [Group("", "matched", members, f"same {rule}")]
    if tie_breakers:
        split: dict[tuple[str | None, ...], list[Deal]] = defaultdict(list)
        for deal in members:
            split[tuple(normalise(n, deal.fields.get(n)) for n in tie_breakers)].append(deal)
        if len(split) > 1 and all(_disjoint(part) for part in split.values()):
            why = f"same {rule}, told apart by {', '.join(tie_breakers)}"
            return [
                Group("", "matched" if len(part) > 1 else _alone(part[0]), part, why)
                for part in split.values()
            ]
    clash = sorted(
        {s for d in members for s in d.systems if sum(s in o.systems for o in members) > 1}
    )
    why = f"same {rule}, but {', '.join(clash)} holds {len(members)} candidates: a person decides"
    return [Group("", "ambiguous", members, why)]


def _near_misses(proposal: Proposal, threshold: float) -> tuple[list[NearMiss], bool]:
    """Unmatched deals of different systems whose names are close at the same company, or
    equal at another company: reported, never linked. Only singles are compared, only within
    a company (or a name), and at most ``NEAR_MISS_BUDGET`` name comparisons in all: a large
    store whose systems share nothing must not make ``match`` quadratic."""
    singles = [g.deals[0] for g in proposal.of("single")]
    by_company: dict[str, list[Deal]] = defaultdict(list)
    by_name: dict[str, list[Deal]] = defaultdict(list)
    for deal in singles:
        by_company[normalise_company(deal.fields.get("company") or "")].append(deal)
        by_name[normalise_text(deal.fields.get("name") or "")].append(deal)
    found: list[NearMiss] = []
    budget = NEAR_MISS_BUDGET
    for company, members in by_company.items():
        for first, second in _cross_system_pairs(members):
            budget -= 1
            if budget < 0:
                return found, True
            a = normalise_text(first.fields.get("name") or "")
            b = normalise_text(second.fields.get("name") or "")
            matcher = difflib.SequenceMatcher(None, a, b)
            if company and a and b and matcher.quick_ratio() >= threshold:
                ratio = matcher.ratio()
                if ratio >= threshold:
                    found.append(NearMiss(first, second, f"names {ratio:.0%} alike, same company"))
    for name, members in by_name.items():
        for first, second in _cross_system_pairs(members):
            budget -= 1
            if budget < 0:
                return found, True
            if name and normalise_company(first.fields.get("company") or "") != (
                normalise_company(second.fields.get("company") or "")
            ):
                found.append(NearMiss(first, second, "same name, another company"))
    return found, False


def _cross_system_pairs(members: list[Deal]) -> Iterable[tuple[Deal, Deal]]:
    """Pairs of deals held by different systems (by system set, not deal by deal: a company
    with a thousand deals in one system costs nothing until another system has one too)."""
    by_systems: dict[frozenset[str], list[Deal]] = defaultdict(list)
    for deal in members:
        by_systems[deal.systems].append(deal)
    groups = list(by_systems.items())
    for i, (systems_a, firsts) in enumerate(groups):
        for systems_b, seconds in groups[i + 1 :]:
            if not systems_a & systems_b:
                for first in firsts:
                    for second in seconds:
                        yield first, second


# -- CSV ---------------------------------------------------------------------------------------
def write_csv(proposal: Proposal, path: Path) -> int:
    """One row per copy of a deal (system, external id); rows sharing ``match_id`` are one
    deal. Returns the number of rows written."""
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for group in proposal.groups:
            action = "hold" if group.status == "ambiguous" else "link"
            for deal in group.deals:
                for system, external_id in deal.copies:
                    writer.writerow(
                        [
                            group.match_id,
                            group.status,
                            action,
                            system,
                            external_id,
                            deal.record_id,
                            deal.fields.get("name") or "",
                            deal.fields.get("company") or "",
                            deal.fields.get("amount") or "",
                            deal.fields.get("close_date") or "",
                            group.why,
                        ]
                    )
                    rows += 1
    return rows


def read_csv(path: Path, proposal: Proposal) -> Proposal:
    """The proposal as corrected in a CSV written by :func:`write_csv`: rows sharing a
    ``match_id`` are one deal; ``action`` is ``link`` or ``hold`` (leave for later). Records
    the file does not mention keep the computed decision. Raises MatchFileError naming every
    bad row."""
    deals = {deal.record_id: deal for group in proposal.groups for deal in group.deals}
    wanted: dict[str, list[Deal]] = defaultdict(list)
    actions: dict[str, str] = {}
    problems: list[str] = []
    placed: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [
            c for c in ("match_id", "action", "record_id") if c not in (reader.fieldnames or [])
        ]
        if missing:
            raise MatchFileError(f"{path}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            match_id = (row.get("match_id") or "").strip()
            record_id = (row.get("record_id") or "").strip()
            action = (row.get("action") or "link").strip().lower() or "link"
            if action not in ("link", "hold"):
                problems.append(f"line {line}: action must be link or hold, got {action!r}")
                continue
            if record_id not in deals:
                problems.append(f"line {line}: record {record_id!r} is not a live record")
                continue
            match_id = match_id or f"~{record_id}"
            if placed.setdefault(record_id, match_id) != match_id:
                problems.append(
                    f"line {line}: record {record_id} is in {placed[record_id]} and {match_id}"
                )
                continue
            if actions.setdefault(match_id, action) != action:
                problems.append(f"line {line}: {match_id} is both link and hold")
            if deals[record_id] not in wanted[match_id]:
                wanted[match_id].append(deals[record_id])
    for match_id, members in wanted.items():
        if actions.get(match_id) == "link" and not _disjoint(members):
            problems.append(
                f"{match_id}: links two deals of one system "
                f"({'; '.join(d.label() for d in members)}); give one another match_id or hold"
            )
    if problems:
        raise MatchFileError(f"{path}: " + "; ".join(problems))
    corrected = Proposal(rule=f"{proposal.rule}, corrected by {path.name}")
    for group in proposal.groups:  # records the file leaves out keep the computed decision
        kept = [deal for deal in group.deals if deal.record_id not in placed]
        if kept:
            corrected.groups.extend(_regroup(group, kept))
    for match_id, members in wanted.items():
        if actions[match_id] == "hold":
            status: Status = "ambiguous"
        else:
            status = "matched" if len(members) > 1 or len(members[0].systems) > 1 else "single"
        corrected.groups.append(Group(match_id, status, members, f"decided in {path.name}"))
    return corrected


def _regroup(group: Group, kept: list[Deal]) -> list[Group]:
    if len(kept) == len(group.deals):
        return [group]
    if group.status == "ambiguous":
        return [Group(group.match_id, "ambiguous", kept, group.why)]
    return [Group(group.match_id, _alone(d), [d], "left out of the file") for d in kept]


# -- applying ----------------------------------------------------------------------------------
@dataclass
class Applied:
    linked: int = 0  # groups whose records were merged into one
    merged_records: int = 0  # records absorbed
    held: int = 0  # records held for a person
    released: int = 0  # records no longer held


def apply(
    engine: Engine, proposal: Proposal, *, by: str, session: Session | None = None
) -> Applied:
    """Link every matched group (merge its records into one), hold the records of every
    ambiguous group, release held records the proposal no longer calls ambiguous. In batches:
    one query per table for all the records, not one per record (a store of 10,000 deals is
    matched in one go)."""
    if session is None:
        with engine.session() as own:
            result = apply(engine, proposal, by=by, session=own)
            own.commit()
            return result
    batch = _Batch(engine, session, by)
    batch.load(d.record_id for group in proposal.groups for d in group.deals)
    for group in proposal.groups:
        if group.status == "ambiguous":
            for deal in group.deals:
                batch.hold(deal, group)
            continue
        keep = batch.release(group.deals[0])
        if keep is None:
            continue
        if group.to_link:
            for deal in group.deals[1:]:
                other = batch.release(deal)
                if other is not None:
                    batch.merge(keep, other, f"{group.why} ({by})")
            batch.result.linked += 1
    batch.finish()
    return batch.result


class _Batch:
    """The writes of one ``apply``, gathered and then made a statement per table."""

    def __init__(self, engine: Engine, session: Session, by: str) -> None:
        self.engine, self.session, self.by = engine, session, by
        self.records: dict[str, Record] = {}
        self.moves: dict[str, str] = {}  # absorbed record id -> the record it joins
        self.held: list[str] = []
        self.touched: dict[str, Record] = {}  # records whose pushes must be queued again
        self.notes = Notes()
        self.result = Applied()

    def load(self, ids: Iterable[str]) -> None:
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            self.records.update((r.id, r) for r in records.many(self.session, chunk))

    def release(self, deal: Deal) -> Record | None:
        record = self.records.get(deal.record_id)
        if record is not None and MATCH_HOLD in record.held:
            record.held = [name for name in record.held if name != MATCH_HOLD]
            self.touched[record.id] = record
            self.result.released += 1
        return record

    def hold(self, deal: Deal, group: Group) -> None:
        record = self.records.get(deal.record_id)
        if record is None or MATCH_HOLD in record.held:
            return
        record.held = [*record.held, MATCH_HOLD]
        self.held.append(record.id)
        self.result.held += 1
        others = "; ".join(d.label() for d in group.deals if d.record_id != deal.record_id)
        self.notes.add(
            record.id,
            "match_held",
            f"{group.match_id}: {group.why}. Candidates: {others}. Nothing is created from "
            f"this deal until a person decides (crmsync match --csv / --apply) [{self.by}]",
        )

    def merge(self, keep: Record, other: Record, why: str) -> None:
        """Fold ``other``'s fields into ``keep`` (as at a first match: each field's policy,
        ids and custom keys key by key); its rows move when the batch finishes."""
        ours, provenance = dict(keep.fields), dict(keep.provenance)
        held = list(dict.fromkeys([*keep.held, *other.held]))
        for name, value in other.fields.items():
            mine = provenance.get(name) or {}
            theirs = other.provenance.get(name) or {}
            decision = merge_field(
                name,
                None,
                Side(ours.get(name), mine.get("system"), _at(mine.get("at"))),
                Side(value, theirs.get("system"), _at(theirs.get("at"))),
                self.engine.policy_for(name),
                first_match=True,
            )
            if decision.outcome == "held" and name not in held:
                held.append(name)
            if decision.value != ours.get(name) and decision.outcome != "held":
                old, ours[name] = ours.get(name), decision.value
                if decision.outcome == "take_theirs" and theirs:
                    provenance[name] = theirs
                self.notes.add(
                    keep.id,
                    "field_changed",
                    f"match: {decision.reason}",
                    field=name,
                    old=old,
                    new=decision.value,
                )
            elif decision.conflict:
                self.notes.add(
                    keep.id,
                    "conflict",
                    f"match: {decision.reason}",
                    field=name,
                    old=value,
                    new=ours.get(name),
                )
        keep.fields, keep.provenance, keep.held = ours, provenance, held
        keep.updated_at = utcnow()
        self.moves[other.id] = keep.id
        self.touched[keep.id] = keep
        self.touched.pop(other.id, None)
        self.notes.add(keep.id, "merged", f"matched record {other.id}: {why}")
        self.result.merged_records += 1

    def finish(self) -> None:
        session = self.session
        for record in self.records.values():
            if record.id not in self.moves and (
                record.id in self.touched or record.id in self.held
            ):
                session.add(record)
        session.flush()
        if self.held:  # creates already queued for them wait no more: none is to be sent
            for start in range(0, len(self.held), CHUNK):
                outbox.drop_unsent_creates(session, self.held[start : start + CHUNK])
        self._move_rows()
        self.notes.write(session)
        session.flush()
        natural = self.engine.config.sync.natural_key
        for record in self.touched.values():
            index_keys(session, record, natural)
            enqueue_pushes(self.engine, session, record, reason=f"first run: matched ({self.by})")

    def _move_rows(self) -> None:
        """Every row of an absorbed record moves to the record it joined (one statement per
        table and chunk); its open pushes are dropped (the kept record's are queued again)."""
        pairs = sorted(self.moves.items())
        for start in range(0, len(pairs), CHUNK):
            records.absorb(self.session, dict(pairs[start : start + CHUNK]), outbox.UNSENT_STATES)
        for gone_id in self.moves:
            self.session.expunge(self.records[gone_id])


def _at(value: Any) -> dt.datetime | None:
    if not value:
        return None
    return parse_timestamp(str(value))
