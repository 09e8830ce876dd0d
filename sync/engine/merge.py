"""The three-way, per-field merge (shared/DESIGN.md §2.3) — pure, no I/O.

For one field: base = the shadow (what the incoming system held when we last saw it),
ours = the canonical value, theirs = the incoming value.

- theirs == base: the incoming system did not touch the field -> nothing to merge.
- theirs == ours: both already agree -> nothing to do.
- ours == base: only they moved -> take theirs.
- otherwise both moved to different values: a conflict, resolved by the field's policy:
  ``prefer`` (source priority), ``latest`` (vendor modified stamps; within the clock-skew
  tolerance, fall back to priority) or ``manual`` (keep ours, hold the field, open a conflict).

Keyed fields (``external_ids``, ``custom``) are merged key by key: a system that does not
carry a key never erases it (Truto's Salesforce copy knows only the Salesforce id; Ruddr's
deal also carries the HubSpot one), and an identity key (``external_ids``) is never lost, not
even when the system that held it clears it — an id is what matching relies on.

Every decision carries a reason in words, for the journal and for ``plan``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Outcome = Literal["untouched", "agree", "take_theirs", "keep_ours", "held"]
#: canonical fields merged key by key; those in NEVER_ERASED never lose a key in a merge
KEYED_FIELDS = frozenset({"external_ids", "custom"})
NEVER_ERASED = frozenset({"external_ids"})


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a merge: a value, the system it came from and that system's stamp."""

    value: Any
    system: str | None = None
    stamp: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """A conflict policy: kind ``latest`` | ``prefer`` | ``manual``; ``order`` ranks systems."""

    kind: Literal["latest", "prefer", "manual"]
    order: tuple[str, ...] = ()
    skew: dt.timedelta = dt.timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class Decision:
    field: str
    outcome: Outcome
    value: Any  # the canonical value after the merge
    conflict: bool = False
    winner: str | None = None
    policy: str | None = None
    reason: str = ""


def _rank(system: str | None, order: Sequence[str]) -> int:
    return order.index(system) if system in order else len(order)


def _by_priority(ours: Side, theirs: Side, order: Sequence[str], why: str) -> tuple[Side, str]:
    if _rank(theirs.system, order) < _rank(ours.system, order):
        return theirs, f"{why}; {theirs.system} ranks above {ours.system}"
    return ours, f"{why}; {ours.system} ranks at or above {theirs.system}"


def _resolve(ours: Side, theirs: Side, policy: Policy) -> tuple[Side, str]:
    if policy.kind == "prefer":
        return _by_priority(ours, theirs, policy.order, "policy prefer")
    if ours.stamp is None or theirs.stamp is None:
        return _by_priority(ours, theirs, policy.order, "latest: a stamp is unknown")
    gap = theirs.stamp - ours.stamp
    if abs(gap) <= policy.skew:
        return _by_priority(
            ours,
            theirs,
            policy.order,
            f"latest: stamps {abs(gap).total_seconds():.3f}s apart "
            f"(within the {policy.skew.total_seconds():g}s skew tolerance)",
        )
    newer, older = (theirs, ours) if gap > dt.timedelta(0) else (ours, theirs)
    return (
        newer,
        f"latest: {newer.system} edited at {newer.stamp:%Y-%m-%dT%H:%M:%S.%fZ}, "
        f"after {older.system} at {older.stamp:%Y-%m-%dT%H:%M:%S.%fZ}",
    )


def merge_field(
    field: str,
    base: Any,
    ours: Side,
    theirs: Side,
    policy: Policy,
    *,
    held: bool = False,
    first_match: bool = False,
) -> Decision:
    """Merge one field. ``held`` means an open manual conflict freezes the field.
    ``first_match``: the incoming deal was just matched to ours (by an external id, our record
    id or the natural key), so there is no base: differing values are a conflict, and the
    journal should say they differed at the match, not that both sides edited."""
    if theirs.value == ours.value:
        return Decision(field, "agree", ours.value, reason="both sides hold the same value")
    if theirs.value == base:
        return Decision(field, "untouched", ours.value, reason=f"{theirs.system} did not change it")
    if held:
        return Decision(
            field,
            "held",
            ours.value,
            policy="manual",
            reason="held by an open manual conflict; an admin must resolve it",
        )
    if field in KEYED_FIELDS:
        return merge_keyed(field, base, ours, theirs, policy, first_match=first_match)
    if ours.value == base:
        return Decision(
            field,
            "take_theirs",
            theirs.value,
            winner=theirs.system,
            reason=f"only {theirs.system} changed it",
        )
    what = (
        f"{ours.system} and {theirs.system} held different values when matched"
        if first_match
        else f"{ours.system} and {theirs.system} both changed it"
    )
    if policy.kind == "manual":
        return Decision(
            field,
            "held",
            ours.value,
            conflict=True,
            policy="manual",
            reason=f"{what}; policy manual holds the field until an admin resolves the conflict",
        )
    winner, why = _resolve(ours, theirs, policy)
    outcome: Outcome = "take_theirs" if winner is theirs else "keep_ours"
    return Decision(
        field,
        outcome,
        winner.value,
        conflict=True,
        winner=winner.system,
        policy=policy.kind,
        reason=f"{what}; {why}",
    )


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def merge_keyed(
    field: str,
    base: Any,
    ours: Side,
    theirs: Side,
    policy: Policy,
    *,
    first_match: bool = False,
) -> Decision:
    """Merge a dict field key by key (``merge_field`` per key). A key the incoming copy lacks
    and its shadow lacked too is one that system does not carry: ours stays. A key it held and
    dropped is a removal — taken for ``custom``, ignored for ``external_ids`` (never lost).
    A manual conflict on any key holds the whole field, as for any other field."""
    base_d, ours_d, theirs_d = _as_dict(base), _as_dict(ours.value), _as_dict(theirs.value)
    merged: dict[str, Any] = {}
    decisions: list[Decision] = []
    for key in sorted(set(ours_d) | set(theirs_d) | set(base_d)):
        if key not in theirs_d and (key not in base_d or field in NEVER_ERASED):
            if key in ours_d:
                merged[key] = ours_d[key]
            continue
        decision = merge_field(
            f"{field}.{key}",
            base_d.get(key),
            Side(ours_d.get(key), ours.system, ours.stamp),
            Side(theirs_d.get(key), theirs.system, theirs.stamp),
            policy,
            first_match=first_match,
        )
        decisions.append(decision)
        if decision.value is not None:
            merged[key] = decision.value
    conflicts = [d for d in decisions if d.conflict]
    if any(d.outcome == "held" for d in conflicts):
        why = "; ".join(f"{d.field}: {d.reason}" for d in conflicts)
        return Decision(field, "held", ours.value, conflict=True, policy="manual", reason=why)
    value = merged if merged or ours.value is not None else ours.value
    moved = [d for d in decisions if d.outcome == "take_theirs"]
    if value == (ours.value or {}) and not conflicts:
        return Decision(
            field, "untouched", ours.value, reason=f"{theirs.system} changed no key it carries"
        )
    reason = "; ".join(
        f"{d.field}: {d.reason}" for d in moved + [c for c in conflicts if c not in moved]
    )
    last = conflicts[-1] if conflicts else None
    return Decision(
        field,
        "take_theirs" if value != ours.value else "keep_ours",
        value,
        conflict=bool(conflicts),
        winner=(last.winner if last else theirs.system),
        policy=last.policy if last else None,
        reason=reason or f"merged key by key with {theirs.system}",
    )
