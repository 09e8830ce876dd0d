"""``normalizer`` (a field's normal form with its kind looked up once, as the mapper reads)
is ``normalize``: the same value or the same error, for every field and any value."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.model import CANONICAL_FIELDS, CanonicalValueError, normalize, normalizer

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=6),
    st.sampled_from(["", "open", "won", "High", "usd", "EURO", "2026-12-07", "x"]),
    st.text(max_size=12),
    st.dates(),
    st.lists(st.text(max_size=4), max_size=4),
    st.dictionaries(st.text(max_size=4), st.none() | st.integers(), max_size=3),
)


def outcome(read: Callable[[object], object], value: object) -> object:
    try:
        return ("value", read(value))
    except Exception as exc:  # whichever it is, both must raise it
        return (type(exc), str(exc))


@given(st.sampled_from([*CANONICAL_FIELDS, "nonsense"]), VALUES)
def test_normalizer_is_normalize(field: str, value: object) -> None:
    """Whatever the field and the value: the same normal form, or the same error (an
    amount beyond ``Decimal``'s precision raises ``InvalidOperation`` in both)."""
    assert outcome(normalizer(field), value) == outcome(lambda v: normalize(field, v), value)


def test_examples_of_each_kind() -> None:
    """One value per kind, in normal form."""
    examples = {
        "amount": (Decimal("12.345"), "12.34"),
        "probability": (0.75, "0.7500"),
        "close_date": (dt.date(2026, 12, 7), "2026-12-07"),
        "tags": (["b", "a", "", "b"], ["a", "b"]),
        "custom": ({"b": 1, "a": None}, {"b": 1}),
        "currency": ("usd", "USD"),
        "status": ("won", "won"),
        "priority": ("HIGH", "high"),
        "name": ("", None),
        "stage": ("proposal", "proposal"),
    }
    for field, (value, normal) in examples.items():
        assert normalizer(field)(value) == normal
    with pytest.raises(CanonicalValueError, match="a canonical field"):
        normalizer("nonsense")(None)
