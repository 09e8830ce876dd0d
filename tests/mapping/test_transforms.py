"""Every transform is a pure pair that round-trips on its vendor domain and its canonical domain."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.mapping.transforms import TRANSFORMS, TransformError, default_for_kind, get_transform
from sync.model import normalize

from .support import tag_lists


def canonical(name: str, field: str, vendor: object) -> object:
    return normalize(field, get_transform(name).to_canonical(vendor))


def vendor(name: str, value: object) -> object:
    return get_transform(name).to_vendor(value)


# -- examples from the vendors' docs -------------------------------------------------------------
def test_cents_reads_close_spec_example() -> None:
    """Close `value: 300000` is $3,000 (spec example value_formatted "$3,000")."""
    assert canonical("cents", "amount", 300000) == "3000.00"
    assert vendor("cents", "3000.00") == 300000


def test_percent_reads_close_confidence_and_parsalink_probability() -> None:
    """Integer percent 75 is probability 0.7500 and back."""
    assert canonical("percent", "probability", 75) == "0.7500"
    assert vendor("percent", "0.7500") == 75


def test_percent_rounds_half_even_to_whole_percent() -> None:
    """A 4-place probability is sent as the nearest whole percent, ties to even."""
    assert vendor("percent", "0.1234") == 12
    assert vendor("percent", "0.1250") == 12
    assert vendor("percent", "0.1350") == 14


def test_number_writes_whole_amounts_as_int_and_fractions_as_float() -> None:
    """Ruddr's `amount: 50000` stays an int; 0.75 stays a float, never a string."""
    assert vendor("number", "50000.00") == 50000
    assert isinstance(vendor("number", "50000.00"), int)
    assert vendor("number", "0.7500") == 0.75


def test_datetime_reads_truto_close_date_and_writes_midnight_utc() -> None:
    """A date-time close date becomes its date as written, and is written back as midnight Z."""
    assert canonical("datetime", "close_date", "2025-06-30T00:00:00.000Z") == "2025-06-30"
    assert canonical("datetime", "close_date", "2025-06-30T23:30:00-0500") == "2025-06-30"
    assert canonical("datetime", "close_date", "2025-06-30") == "2025-06-30"
    assert vendor("datetime", "2025-06-30") == "2025-06-30T00:00:00Z"


@pytest.mark.parametrize(
    ("written", "day"),
    [
        ("2026-12-31T00:00:00Z", "2026-12-31"),  # midnight UTC
        ("2026-12-31T00:00:00+01:00", "2026-12-31"),  # local midnight east of UTC
        ("2026-12-31T00:00:00-08:00", "2026-12-31"),  # local midnight west of UTC
        ("2026-12-30T19:00:00-05:00", "2026-12-31"),  # midnight UTC read in New York
        ("2026-12-31T09:00:00+09:00", "2026-12-31"),  # midnight UTC read in Tokyo
        ("2026-12-31T23:30:00-05:00", "2026-12-31"),  # a real local time: its own date
    ],
)
def test_a_close_date_does_not_move_a_day_across_time_zones(written: str, day: str) -> None:
    """A date stored as a date-time keeps its calendar day however the vendor renders it:
    local midnight is that local date; midnight UTC shown in another zone is the UTC date."""
    assert canonical("datetime", "close_date", written) == day
    assert canonical("date", "close_date", written) == day


def test_tags_csv_splits_trims_and_sorts() -> None:
    """A Close text field "b, a,,c " is the tag list [a, b, c]; no tags unset the field."""
    assert canonical("tags_csv", "tags", "b, a,,c ") == ["a", "b", "c"]
    assert canonical("tags_csv", "tags", None) == []
    assert vendor("tags_csv", ["b", "a"]) == "a, b"
    assert vendor("tags_csv", []) is None


def test_names_reads_ruddr_tag_objects() -> None:
    """Ruddr `tags: [{id, name}]` is a list of the names."""
    assert canonical("names", "tags", [{"id": "1a", "name": "Enterprise"}]) == ["Enterprise"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("cents", 12.5),
        ("cents", "lots"),
        ("cents", True),
        ("percent", 101),
        ("percent", -1),
        ("number", float("nan")),
        ("date", "30/06/2025"),
        ("datetime", 20250630),
        ("tags_csv", ["a"]),
        ("names", "Enterprise"),
    ],
)
def test_out_of_domain_vendor_values_raise(name: str, value: object) -> None:
    """A vendor value outside a transform's domain raises TransformError, never passes through."""
    with pytest.raises(TransformError):
        get_transform(name).to_canonical(value)


def test_tags_with_a_comma_cannot_be_written() -> None:
    """A tag containing a comma would split on the way back, so writing it is refused."""
    with pytest.raises(TransformError):
        vendor("tags_csv", ["a,b"])


def test_unknown_transform_names_the_known_ones() -> None:
    """Looking up a misspelt transform lists the registered names."""
    with pytest.raises(KeyError, match="cents"):
        get_transform("cent")


def test_kind_defaults() -> None:
    """Money and probability default to `number`, dates to `date`, the rest to identity."""
    assert default_for_kind("money").name == "number"
    assert default_for_kind("probability").name == "number"
    assert default_for_kind("date").name == "date"
    assert default_for_kind("text").name == "identity"


# -- properties: vendor -> canonical -> vendor is the identity on the vendor's domain ----------
@given(st.integers(min_value=0, max_value=10**13))
def test_cents_round_trip_vendor(cents: int) -> None:
    """Any integer cents value survives canonical and back."""
    assert vendor("cents", canonical("cents", "amount", cents)) == cents


@given(st.integers(min_value=0, max_value=100))
def test_percent_round_trip_vendor(percent: int) -> None:
    """Any integer percent survives canonical and back."""
    assert vendor("percent", canonical("percent", "probability", percent)) == percent


@given(st.integers(min_value=0, max_value=10**11) | st.integers(0, 10**11).map(lambda n: n / 100))
def test_number_round_trip_vendor_amounts(amount: float) -> None:
    """Any vendor amount with at most 2 decimals survives canonical and back."""
    assert vendor("number", canonical("number", "amount", amount)) == amount


@given(st.integers(0, 10**4).map(lambda n: n / 10**4))
def test_number_round_trip_vendor_probabilities(probability: float) -> None:
    """Any Ruddr probability 0..1 with at most 4 decimals survives canonical and back."""
    assert vendor("number", canonical("number", "probability", probability)) == probability


@given(st.dates())
def test_date_round_trip_vendor(day: dt.date) -> None:
    """A YYYY-MM-DD date survives canonical and back."""
    assert vendor("date", canonical("date", "close_date", day.isoformat())) == day.isoformat()


@given(st.dates())
def test_datetime_round_trip_vendor(day: dt.date) -> None:
    """A midnight-UTC date-time survives canonical and back."""
    stamp = f"{day.isoformat()}T00:00:00Z"
    assert vendor("datetime", canonical("datetime", "close_date", stamp)) == stamp


@given(tag_lists())
def test_tags_csv_round_trip_vendor(tags: list[str]) -> None:
    """A canonical-form comma list ("a, b") survives canonical and back."""
    text = ", ".join(tags) or None
    assert vendor("tags_csv", canonical("tags_csv", "tags", text)) == text


@given(tag_lists())
def test_tag_list_round_trip_vendor(tags: list[str]) -> None:
    """A sorted list of distinct strings survives canonical and back."""
    assert vendor("tag_list", canonical("tag_list", "tags", tags)) == tags


def test_tag_list_reads_unset_as_no_tags() -> None:
    """An unset multi-value field (null or absent) is the empty tag list."""
    assert canonical("tag_list", "tags", None) == []
    with pytest.raises(TransformError):
        get_transform("tag_list").to_canonical("a, b")


@given(tag_lists())
def test_names_round_trip_vendor(tags: list[str]) -> None:
    """A list of {name} objects (in canonical order) survives canonical and back."""
    objects = [{"name": tag} for tag in tags]
    assert vendor("names", canonical("names", "tags", objects)) == objects


# -- properties: canonical -> vendor -> canonical is the identity on the canonical domain ------
@given(st.decimals(min_value=0, max_value=10**11, places=2, allow_nan=False))
def test_money_transforms_round_trip_canonical(amount: Decimal) -> None:
    """Any canonical amount survives a trip through cents and through a plain number."""
    value = normalize("amount", amount)
    for name in ("cents", "number"):
        assert canonical(name, "amount", vendor(name, value)) == value


@given(st.integers(0, 10**4))
def test_number_round_trip_canonical_probability(basis_points: int) -> None:
    """Any canonical probability survives a trip through a plain number."""
    value = normalize("probability", Decimal(basis_points) / 10**4)
    assert canonical("number", "probability", vendor("number", value)) == value


@given(st.integers(0, 100))
def test_percent_round_trip_canonical(percent: int) -> None:
    """Any canonical probability a percent vendor can hold (whole percent) survives the trip."""
    value = normalize("probability", Decimal(percent) / 100)
    assert canonical("percent", "probability", vendor("percent", value)) == value


@given(st.dates())
def test_date_transforms_round_trip_canonical(day: dt.date) -> None:
    """Any canonical date survives a trip through `date` and through `datetime`."""
    for name in ("date", "datetime"):
        assert canonical(name, "close_date", vendor(name, day.isoformat())) == day.isoformat()


@given(tag_lists())
def test_tag_transforms_round_trip_canonical(tags: list[str]) -> None:
    """Any canonical tag list survives a trip through `tags_csv` and through `names`."""
    for name in ("tags_csv", "tag_list", "names"):
        assert canonical(name, "tags", vendor(name, tags)) == tags


def test_every_registered_transform_has_a_property_test() -> None:
    """Adding a transform without its round-trip property test fails here."""
    covered = {
        "identity",
        "number",
        "cents",
        "percent",
        "date",
        "datetime",
        "tags_csv",
        "tag_list",
        "names",
    }
    assert set(TRANSFORMS) == covered


# -- properties: a transform that says it gives the normal form does -----------------------------
_DATE_TIMES = st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat())


@given(st.dates().map(dt.date.isoformat) | _DATE_TIMES)
def test_what_gives_the_normal_form_is_already_normalized(value: str) -> None:
    """A transform naming the kind whose normal form it returns (``gives``: the mapper then
    skips ``normalize``) returns exactly what ``normalize`` would make of it."""
    givers = [t for t in TRANSFORMS.values() if t.gives is not None]
    assert {t.name for t in givers} == {"date", "datetime"}
    for transform in givers:
        read = transform.to_canonical(value)
        assert normalize("close_date", read) == read
