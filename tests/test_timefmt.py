"""Vendor timestamps parse to aware UTC in every documented format and format per vendor style."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.timefmt import TimestampError, format_timestamp, parse_timestamp

UTC = dt.UTC


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2025-01-15T20:47:03.284Z", dt.datetime(2025, 1, 15, 20, 47, 3, 284000, UTC)),  # Ruddr
        ("2013-02-01T00:54:51.321000+00:00", dt.datetime(2013, 2, 1, 0, 54, 51, 321000, UTC)),
        ("2013-05-08T21:20:00.000+0000", dt.datetime(2013, 5, 8, 21, 20, tzinfo=UTC)),  # SF
        ("2025-03-15T09:30:00Z", dt.datetime(2025, 3, 15, 9, 30, tzinfo=UTC)),  # ParsaLink
        ("2025-03-15T11:30:00+0200", dt.datetime(2025, 3, 15, 9, 30, tzinfo=UTC)),
    ],
)
def test_parses_every_vendor_format(stamp: str, expected: dt.datetime) -> None:
    """Ruddr ms+Z, Close µs+00:00, Salesforce ms+0000 and ParsaLink s+Z all parse to UTC."""
    parsed = parse_timestamp(stamp)
    assert parsed == expected
    assert parsed.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("stamp", ["2025-03-15T09:30:00", "2025-03-15", "yesterday", ""])
def test_rejects_naive_or_non_timestamps(stamp: str) -> None:
    """A stamp without an offset (or not a stamp at all) is rejected, never guessed."""
    with pytest.raises(TimestampError):
        parse_timestamp(stamp)


@given(
    st.datetimes(timezones=st.just(UTC)),
    st.sampled_from(["Z", "+00:00", "+0000"]),
)
def test_format_then_parse_round_trips_at_microseconds(value: dt.datetime, offset: str) -> None:
    """Formatting with µs in any offset style and parsing back gives the same instant."""
    text = format_timestamp(value, offset=offset, precision="us")  # type: ignore[arg-type]
    assert parse_timestamp(text) == value


def test_formats_in_vendor_styles() -> None:
    """Ruddr style is ms + Z; Close style is µs + +00:00."""
    value = dt.datetime(2025, 1, 15, 20, 47, 3, 284000, UTC)
    assert format_timestamp(value) == "2025-01-15T20:47:03.284Z"
    assert format_timestamp(value, offset="+00:00", precision="us") == (
        "2025-01-15T20:47:03.284000+00:00"
    )
