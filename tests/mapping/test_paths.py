"""Vendor paths read literal keys first, then nesting, and write nested or flat as told."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.mapping.paths import get_path, getter, set_path

CF = "custom.cf_OppName0000000000000000000000000000000001"


def test_reads_nested_objects() -> None:
    """`opportunityStage.id` reads inside the nested object (Ruddr)."""
    data = {"opportunityStage": {"id": "s1", "name": "Proposal", "statusId": "open"}}
    assert get_path(data, "opportunityStage.id") == "s1"
    assert get_path(data, "opportunityStage.statusId") == "open"


def test_reads_close_flat_custom_key() -> None:
    """`custom.cf_…` is a flat key with a dot on Close's object, found literally."""
    assert get_path({CF: "Deal"}, CF) == "Deal"


def test_literal_key_wins_over_nesting() -> None:
    """When a literal dotted key and a nested path both exist, the literal key is read."""
    data = {"a.b": "flat", "a": {"b": "nested"}}
    assert get_path(data, "a.b") == "flat"


def test_falls_back_to_nesting_when_literal_is_absent() -> None:
    """A dotted path without a literal key reads the nested value (Close's deprecated dict)."""
    assert get_path({"custom": {"cf_x": 1}}, "custom.cf_x") == 1


def test_mixed_literal_and_nested_levels() -> None:
    """A nested object may itself hold a dotted key."""
    assert get_path({"remote_data": {"x.y": 3}}, "remote_data.x.y") == 3


@pytest.mark.parametrize(
    "data", [{}, {"owner": None}, {"owner": "not-an-object"}, {"owner": {"name": "x"}}]
)
def test_missing_or_null_reads_as_none(data: dict[str, object]) -> None:
    """An absent key, a null parent or a non-object parent all read as None."""
    assert get_path(data, "owner.id") is None


def test_writes_nested_and_merges_siblings() -> None:
    """Two nested writes under one parent build one object (`stage.id`, `stage.name`)."""
    payload: dict[str, object] = {}
    set_path(payload, "stage.id", "Closed Won")
    set_path(payload, "stage.name", "Closed Won")
    set_path(payload, "remote_data.Probability", 70)
    assert payload == {
        "stage": {"id": "Closed Won", "name": "Closed Won"},
        "remote_data": {"Probability": 70},
    }


def test_writes_flat_keys_literally() -> None:
    """With flat=True a dotted path is one key, as Close's custom fields require."""
    payload: dict[str, object] = {}
    set_path(payload, CF, "Deal", flat=True)
    assert payload == {CF: "Deal"}


def test_nested_write_through_a_scalar_is_refused() -> None:
    """Writing `a.b` when `a` already holds a scalar raises instead of clobbering it."""
    with pytest.raises(ValueError, match="cannot nest"):
        set_path({"a": 1}, "a.b", 2)


_KEYS = st.sampled_from(["a", "b", "a.b", "b.a", "a.b.c", "c"])
_DOCS = st.recursive(
    st.none() | st.integers(0, 3),
    lambda inner: st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)


@given(st.sampled_from(["a", "a.b", "b.a", "a.b.c", "c.a.b"]), _DOCS)
def test_a_getter_reads_what_get_path_reads(path: str, data: object) -> None:
    """A path's ``getter`` (taken apart once, as the mapper reads) finds exactly what
    ``get_path`` finds: literal keys first, then nesting, ``None`` when absent."""
    doc = data if isinstance(data, dict) else {"a": data}
    assert getter(path)(doc) == get_path(doc, path)
