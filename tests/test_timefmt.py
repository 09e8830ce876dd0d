"""Vendor timestamps parse to aware UTC in every documented format and format per vendor style."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.timefmt import (
    TimestampError,
    as_utc,
    format_close,
    format_iso,
    format_optional_iso,
    format_timestamp,
    format_truto,
    maybe_utc,
    parse_http_date,
    parse_timestamp,
)

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


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2025-03-15T09:30:00", dt.datetime(2025, 3, 15, 9, 30, tzinfo=UTC)),
        ("2025-03-15", dt.datetime(2025, 3, 15, tzinfo=UTC)),
    ],
)
def test_a_stamp_without_an_offset_is_utc(stamp: str, expected: dt.datetime) -> None:
    """The one rule (what the connectors always did): no offset means UTC."""
    assert parse_timestamp(stamp) == expected


@pytest.mark.parametrize("stamp", ["yesterday", "", None, 1700000000])
def test_rejects_non_timestamps(stamp: object) -> None:
    """Anything that is not ISO 8601 text is rejected, as a ValueError."""
    with pytest.raises(TimestampError):
        parse_timestamp(stamp)
    assert issubclass(TimestampError, ValueError)


def test_naive_datetimes_are_utc_and_aware_ones_convert() -> None:
    """as_utc / maybe_utc: naive is taken as UTC, an offset is converted, None passes."""
    naive = dt.datetime(2025, 1, 2, 3, 4, 5)
    assert as_utc(naive) == naive.replace(tzinfo=UTC)
    plus_two = dt.datetime(2025, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert as_utc(plus_two).utcoffset() == dt.timedelta(0)
    assert as_utc(plus_two) == naive.replace(tzinfo=UTC)
    assert maybe_utc(None) is None


def test_http_dates_parse_to_utc() -> None:
    """RFC 9110 dates (``Date`` / ``Retry-After``) parse to UTC; junk and absence are None."""
    assert parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT") == dt.datetime(
        2015, 10, 21, 7, 28, tzinfo=UTC
    )
    assert parse_http_date("not a date") is None
    assert parse_http_date(None) is None


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


def test_vendor_formatters() -> None:
    """Close writes µs + ``+00:00``; Truto ms + ``Z``; a naive value is UTC."""
    value = dt.datetime(2025, 1, 2, 3, 4, 5, 678901)
    assert format_close(value) == "2025-01-02T03:04:05.678901+00:00"
    assert format_truto(value) == "2025-01-02T03:04:05.678Z"


def test_operator_views_show_z_and_the_fraction_only_when_there_is_one() -> None:
    """format_iso: UTC with ``Z``, whole seconds without a fraction, µs with it; a naive
    value is UTC, an aware one converted; format_optional_iso passes None."""
    assert format_iso(dt.datetime(2025, 1, 2, 3, 4, 5)) == "2025-01-02T03:04:05Z"
    assert format_iso(dt.datetime(2025, 1, 2, 3, 4, 5, 678900, UTC)) == (
        "2025-01-02T03:04:05.678900Z"
    )
    plus_two = dt.datetime(2025, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert format_iso(plus_two) == "2025-01-02T03:04:05Z"
    assert format_optional_iso(None) is None


@given(st.datetimes(), st.booleans())
def test_format_iso_writes_stored_stamps_as_the_operator_views_did(
    value: dt.datetime, aware: bool
) -> None:
    """Stored stamps come back naive (SQLite) or UTC: for both, format_iso writes what
    engine/operations.py's own formatter wrote before it moved here."""
    stamp = value.replace(tzinfo=UTC) if aware else value
    before = stamp.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
    assert format_iso(stamp) == before


# -- one home for time -------------------------------------------------------------------------
SYNC = Path(__file__).resolve().parents[1] / "sync"
#: Files that read the clock or convert stamps themselves, and why: none — sync.timefmt is the
#: one home for time. Shrink, never grow.
STILL_OWN_TIME: dict[str, str] = {}


def _own_time_calls(tree: ast.AST) -> list[str]:
    """Clock reads and stamp conversions: ``datetime.now``, ``datetime.fromisoformat``,
    ``parsedate_to_datetime``, ``strptime``, ``.astimezone(…)``, ``.replace(tzinfo=…)``."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name, owner = node.func.attr, ast.unparse(node.func.value)
        if (
            (name in {"now", "utcnow", "fromisoformat"} and owner.endswith("datetime"))
            or name in {"parsedate_to_datetime", "strptime", "astimezone"}
            or (name == "replace" and any(k.arg == "tzinfo" for k in node.keywords))
        ):
            found.append(f"{owner}.{name} (line {node.lineno})")
    return found


def test_time_is_read_and_converted_only_in_timefmt() -> None:
    """Product code gets the clock, parses and normalises stamps through sync.timefmt only.
    The emulators stand in for the vendors and keep their own; migrations are frozen history."""
    offenders = {}
    for path in sorted(SYNC.rglob("*.py")):
        rel = path.relative_to(SYNC).as_posix()
        if rel == "timefmt.py" or rel.startswith(("emulators/", "store/migrations/")):
            continue
        calls = _own_time_calls(ast.parse(path.read_text(), rel))
        if calls and rel not in STILL_OWN_TIME:
            offenders[rel] = calls
    assert offenders == {}
    stale = [
        rel for rel in STILL_OWN_TIME if not _own_time_calls(ast.parse((SYNC / rel).read_text()))
    ]
    assert stale == [], "remove these from STILL_OWN_TIME"
