"""The three-way merge table: every combination of base / ours / theirs under each policy."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.engine.merge import Policy, Side, merge_field

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
ORDER = ("ruddr", "close")
POLICIES = {
    "latest": Policy("latest", ORDER, dt.timedelta(seconds=5)),
    "prefer_close": Policy("prefer", ("close", "ruddr")),
    "manual": Policy("manual", ORDER),
}


def _merge(base: str, ours: str, theirs: str, policy: str, theirs_later: float = 60.0):
    return merge_field(
        "amount",
        base,
        Side(ours, "ruddr", T0),
        Side(theirs, "close", T0 + dt.timedelta(seconds=theirs_later)),
        POLICIES[policy],
    )


# (base, ours, theirs) by letter pattern -> expected (outcome, value) for each policy.
# Patterns: which of the three values are equal.
TABLE = {
    ("a", "a", "a"): {p: ("agree", "a") for p in POLICIES},
    ("a", "a", "b"): {p: ("take_theirs", "b") for p in POLICIES},
    ("a", "b", "a"): {p: ("untouched", "b") for p in POLICIES},
    ("a", "b", "b"): {p: ("agree", "b") for p in POLICIES},
    ("a", "b", "c"): {
        "latest": ("take_theirs", "c"),  # close edited 60 s later
        "prefer_close": ("take_theirs", "c"),
        "manual": ("held", "b"),
    },
}


@pytest.mark.parametrize(
    ("pattern", "policy"),
    [pytest.param(k, p, id=f"{''.join(k)}-{p}") for k, p in itertools.product(TABLE, POLICIES)],
)
def test_merge_table(pattern: tuple[str, str, str], policy: str) -> None:
    """Each base/ours/theirs combination yields the documented outcome and value per policy."""
    decision = _merge(*pattern, policy)
    assert (decision.outcome, decision.value) == TABLE[pattern][policy]
    assert decision.conflict == (len(set(pattern)) == 3)
    assert decision.reason


def test_latest_keeps_ours_when_ours_is_newer() -> None:
    """Under `latest`, the side with the later vendor stamp wins a conflict."""
    decision = _merge("a", "b", "c", "latest", theirs_later=-60)
    assert (decision.outcome, decision.value, decision.winner) == ("keep_ours", "b", "ruddr")
    assert "after close" in decision.reason


def test_latest_within_skew_falls_back_to_priority() -> None:
    """Stamps within the skew tolerance are a tie broken by system priority (ruddr first)."""
    decision = _merge("a", "b", "c", "latest", theirs_later=3)
    assert decision.winner == "ruddr"
    assert "skew tolerance" in decision.reason


def test_prefer_ranks_the_preferred_system_first() -> None:
    """`prefer: [ruddr]` keeps ruddr's value against a later edit from close."""
    decision = merge_field(
        "amount",
        "a",
        Side("b", "ruddr", T0),
        Side("c", "close", T0 + dt.timedelta(hours=1)),
        Policy("prefer", ("ruddr", "close")),
    )
    assert (decision.outcome, decision.value) == ("keep_ours", "b")


def test_held_field_ignores_new_values_until_resolved() -> None:
    """A field held by an open manual conflict keeps ours, without opening another conflict."""
    decision = merge_field(
        "amount",
        "a",
        Side("a", "ruddr", T0),
        Side("z", "close", T0),
        POLICIES["latest"],
        held=True,
    )
    assert (decision.outcome, decision.value, decision.conflict) == ("held", "a", False)


def test_unknown_stamp_falls_back_to_priority() -> None:
    """Without a stamp for ours (e.g. set by an admin), `latest` uses priority."""
    decision = merge_field(
        "amount", "a", Side("b", "close", None), Side("c", "ruddr", T0), POLICIES["latest"]
    )
    assert decision.winner == "ruddr"


def test_a_first_match_conflict_says_the_copies_differed_at_the_match() -> None:
    """Matching a deal (no base yet) with a different stage is a conflict settled by policy,
    journaled as a difference found at the match rather than as two edits."""
    decision = merge_field(
        "stage",
        None,
        Side("negotiation", "ruddr", T0),
        Side("proposal", "truto_salesforce", T0 + dt.timedelta(minutes=1)),
        POLICIES["latest"],
        first_match=True,
    )
    assert decision.conflict and decision.value == "proposal"
    assert decision.reason.startswith("ruddr and truto_salesforce held different values when")
    assert "both changed" not in decision.reason


values = st.one_of(st.none(), st.sampled_from(["x", "y", "z"]))


@given(base=values, ours=values, theirs=values, policy=st.sampled_from(sorted(POLICIES)))
def test_merge_never_invents_values(
    base: object, ours: object, theirs: object, policy: str
) -> None:
    """Whatever the inputs, the merged value is ours or theirs, and an agreement is kept."""
    decision = _merge(base, ours, theirs, policy)  # type: ignore[arg-type]
    assert decision.value in (ours, theirs)
    if ours == theirs:
        assert decision.value == ours and not decision.conflict
    if theirs == base:
        assert decision.value == ours
