"""Keyed fields (``external_ids``, ``custom``) merge key by key: a system that does not carry a
key never erases it, and an id is never lost — per pair of the shipped systems."""

from __future__ import annotations

import datetime as dt

import pytest

from sync.engine.merge import Policy, Side, merge_field

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
LATEST = Policy("latest", (), dt.timedelta(seconds=5))
SF, HS = "006DjO7000001", "23831060"
#: what each shipped system's mapping carries of external_ids (config.yaml)
CARRIES: dict[str, dict[str, str]] = {
    "ruddr": {"salesforce": SF, "hubspot": HS},
    "truto_salesforce": {"salesforce": SF},
    "close": {},
    "parsalink": {},
}
PAIRS = [(a, b) for a in CARRIES for b in CARRIES if a != b]


def _first_match(first: str, second: str, field: str = "external_ids") -> object:
    """``first`` made the record, ``second`` is matched to it (no base: a fresh link)."""
    decision = merge_field(
        field,
        None,
        Side(CARRIES[first] or None, first, T0),
        Side(CARRIES[second] or None, second, T0 + dt.timedelta(minutes=1)),
        LATEST,
        first_match=True,
    )
    return decision.value


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}+{b}" for a, b in PAIRS])
def test_a_first_match_keeps_every_id_either_side_carries(first: str, second: str) -> None:
    """Whichever system made the record and whichever is matched to it, the merged
    external_ids hold every id of both (Ruddr's HubSpot id survives Truto's Salesforce copy)."""
    expected = {**CARRIES[first], **CARRIES[second]}
    assert (_first_match(first, second) or {}) == expected


def test_ruddr_then_truto_keeps_the_hubspot_id_and_says_nothing_changed() -> None:
    """The issue's case: Ruddr's {salesforce, hubspot} matched with Truto's {salesforce}."""
    decision = merge_field(
        "external_ids",
        None,
        Side({"hubspot": HS, "salesforce": SF}, "ruddr", T0),
        Side({"salesforce": SF}, "truto_salesforce", T0 + dt.timedelta(hours=1)),
        LATEST,
        first_match=True,
    )
    assert decision.value == {"hubspot": HS, "salesforce": SF}
    assert decision.outcome == "untouched"
    assert not decision.conflict


def test_an_id_cleared_in_the_vendor_is_never_lost() -> None:
    """A system that held the HubSpot id and now shows none does not erase it from the store."""
    decision = merge_field(
        "external_ids",
        {"hubspot": HS, "salesforce": SF},
        Side({"hubspot": HS, "salesforce": SF}, "ruddr", T0),
        Side({"salesforce": SF}, "ruddr", T0 + dt.timedelta(minutes=1)),
        LATEST,
    )
    assert decision.value == {"hubspot": HS, "salesforce": SF}


def test_a_new_id_from_one_system_is_added_to_the_others() -> None:
    """An id a system gains is added next to the ids held from elsewhere."""
    decision = merge_field(
        "external_ids",
        {"salesforce": SF},
        Side({"salesforce": SF, "hubspot": HS}, "ruddr", T0),
        Side({"salesforce": SF, "hubspot": "999"}, "truto_salesforce", T0 + dt.timedelta(hours=1)),
        LATEST,
    )
    assert decision.value == {"salesforce": SF, "hubspot": "999"}
    assert decision.outcome == "take_theirs"


def test_differing_values_of_one_key_are_a_conflict_for_that_key_only() -> None:
    """Two systems with different Salesforce ids: that key follows the policy, others stay."""
    decision = merge_field(
        "external_ids",
        None,
        Side({"salesforce": "A", "hubspot": HS}, "ruddr", T0),
        Side({"salesforce": "B"}, "truto_salesforce", T0 + dt.timedelta(hours=1)),
        LATEST,
        first_match=True,
    )
    assert decision.conflict
    assert decision.value == {"salesforce": "B", "hubspot": HS}
    assert "external_ids.salesforce" in decision.reason


def test_manual_policy_on_a_key_holds_the_field() -> None:
    """Under `manual`, a key both sides changed holds the whole field for an admin."""
    decision = merge_field(
        "custom",
        {"tier": "a"},
        Side({"tier": "b", "region": "emea"}, "ruddr", T0),
        Side({"tier": "c"}, "close", T0),
        Policy("manual"),
    )
    assert decision.outcome == "held"
    assert decision.value == {"tier": "b", "region": "emea"}


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}+{b}" for a, b in PAIRS])
def test_custom_keys_a_system_does_not_carry_are_kept(first: str, second: str) -> None:
    """``custom`` follows the same rule: each system's own keys survive the other's copy."""
    ours = {f"{first}_field": "x"}
    theirs = {f"{second}_field": "y"}
    decision = merge_field(
        "custom", None, Side(ours, first, T0), Side(theirs, second, T0), LATEST, first_match=True
    )
    assert decision.value == {**ours, **theirs}


def test_a_custom_key_cleared_where_it_was_held_is_cleared() -> None:
    """Unlike an id, a custom value a system held and cleared is a change, and is taken."""
    decision = merge_field(
        "custom",
        {"tier": "a", "region": "emea"},
        Side({"tier": "a", "region": "emea"}, "ruddr", T0),
        Side({"region": "emea"}, "ruddr", T0 + dt.timedelta(minutes=1)),
        LATEST,
    )
    assert decision.value == {"region": "emea"}
