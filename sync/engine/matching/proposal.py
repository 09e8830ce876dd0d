"""The first run's proposal: which live records are one deal by the ``sync.match`` rule
(matched, ambiguous or single groups, see the package docstring) and which unmatched deals
look alike (near-misses, found within a budget so a large store stays cheap). Reads the store,
writes nothing."""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import combinations
from typing import Any, Literal

from sqlmodel import Session

from sync.engine.context import Engine
from sync.engine.normalise import normalise_company, normalise_text
from sync.engine.outbound import MATCH_HOLD
from sync.store import links, records

Status = Literal["matched", "ambiguous", "single"]
#: name comparisons the near-miss search may make (about a second at worst)
NEAR_MISS_BUDGET = 20_000


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
    if not any(not a.systems & b.systems for a, b in combinations(members, 2)):
        # e.g. two deals of one name that only Ruddr holds: no two of them could be one deal,
        # so there is nothing to confuse them with — each is a deal of its own
        where = ", ".join(sorted({s for d in members for s in d.systems}))
        why = f"same {rule} as another deal in {where}, and no other system holds one"
        return [Group("", _alone(deal), [deal], why) for deal in members]
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
