"""The three-way, per-field merge (shared/DESIGN.md §2.3) — pure, no I/O.

For one field: base = the shadow (what the incoming system held when we last saw it),
ours = the canonical value, theirs = the incoming value.

- theirs == base: the incoming system did not touch the field -> nothing to merge.
- theirs == ours: both already agree -> nothing to do.
- ours == base: only they moved -> take theirs.
- otherwise both moved to different values: a conflict, resolved by the field's policy:
  ``prefer`` (source priority), ``latest`` (vendor modified stamps; within the clock-skew
  tolerance, fall back to priority) or ``manual`` (keep ours, hold the field, open a conflict).

Every decision carries a reason in words, for the journal and for ``plan``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Outcome = Literal["untouched", "agree", "take_theirs", "keep_ours", "held"]


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

    @property
    def changes_ours(self) -> bool:
        return self.outcome == "take_theirs"


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
