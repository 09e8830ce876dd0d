"""Time, in one place: the clock, the UTC rule, ISO 8601 and HTTP-date parsing, vendor stamp styles.

Every product module that reads, writes or compares a timestamp goes through here, so there is
one rule for what a stamp means. (The emulators keep their own time code: they stand in for
the vendors and share no code with the product.)

**The rule.** Inside crmsync every instant is a timezone-aware UTC ``datetime``. A stamp that
carries an offset is converted to UTC; a stamp *without* an offset (a naive ``datetime``, or
text such as ``2025-03-15T09:30:00``) is taken as UTC. That is what production has always
done: every vendor here documents its stamps as UTC, and SQLite hands stored stamps back
without an offset. (An earlier draft of this module rejected naive stamps, but the connectors
and the engine never used it; the rule kept is the one they run on.)

The vendor stamp formats (shared/vendors.md §8) — all parsed by ``parse_timestamp``:

- Ruddr ``modifiedAt``: ``2025-01-15T20:47:03.284Z`` (ms, ``Z``) — https://docs.ruddr.io/guides/conventions
- Close ``date_updated``: ``2013-02-01T00:54:51.321000+00:00`` (µs, ``+00:00``) —
  https://developer.close.com/ ; written back by ``format_close``
- Truto (unified CRM) ``updated_at``: ``2025-01-15T20:47:03.284Z`` (ms, ``Z``); written by
  ``format_truto``
- Salesforce ``SystemModstamp``: ``2013-05-08T21:20:00.000+0000`` (ms, offset without a colon) —
  https://developer.salesforce.com/docs/platform/api-rest/guide/resources-getupdated.md
- ParsaLink ``updatedAt``: ``2025-03-15T09:30:00Z`` (seconds, ``Z``) — seed 003

Ruddr and ParsaLink take no stamp in a request (no modified-since filter), so only Close and
Truto have a formatter.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from typing import Literal

OffsetStyle = Literal["Z", "+00:00", "+0000"]
Precision = Literal["s", "ms", "us"]

#: The start of every "since the beginning" listing.
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# Older Pythons' fromisoformat read "Z" and "+00:00" but not "+0000"; normalised for any reader.
_COLONLESS_OFFSET = re.compile(r"([+-])(\d{2})(\d{2})$")


class TimestampError(ValueError):
    """A value that is not an ISO 8601 timestamp."""


def utcnow() -> dt.datetime:
    """Aware UTC now: what every stored stamp and every comparison uses."""
    return dt.datetime.now(dt.UTC)


def as_utc(stamp: dt.datetime) -> dt.datetime:
    """The rule: an aware stamp converted to UTC; a naive one taken as UTC."""
    if stamp.tzinfo is None:
        return stamp.replace(tzinfo=dt.UTC)
    return stamp.astimezone(dt.UTC)


def maybe_utc(stamp: dt.datetime | None) -> dt.datetime | None:
    """``as_utc`` that passes None through (nullable columns, optional stamps)."""
    return None if stamp is None else as_utc(stamp)


def read_iso(value: str) -> dt.datetime:
    """An ISO 8601 date or date-time *as written*: its own offset kept, naive left naive.

    For callers that need the wall-clock reading (a date-only field a vendor renders as
    midnight in some zone); everyone else wants ``parse_timestamp``.
    """
    try:
        return dt.datetime.fromisoformat(_COLONLESS_OFFSET.sub(r"\1\2:\3", value))
    except ValueError as exc:
        raise TimestampError(f"expected an ISO 8601 timestamp, got {value!r}") from exc


def parse_timestamp(value: object) -> dt.datetime:
    """A vendor or stored stamp as aware UTC: ``Z`` / ``+00:00`` / ``+0000``, any fraction;
    no offset means UTC (the rule above). Raises ``TimestampError`` (a ``ValueError``)."""
    if not isinstance(value, str) or not value:
        raise TimestampError(f"not a timestamp: {value!r}")
    return as_utc(read_iso(value))


def parse_optional_timestamp(value: object) -> dt.datetime | None:
    """:func:`parse_timestamp` of a stamp a record may lack (a vendor's creation stamp)."""
    return parse_timestamp(value) if isinstance(value, str) and value else None


def parse_http_date(value: str | None) -> dt.datetime | None:
    """An RFC 9110 HTTP-date (``Date``, ``Retry-After``) as aware UTC; None when absent or
    unreadable. Whole seconds only, so up to a second behind the instant it names."""
    if not value:
        return None
    try:
        return as_utc(email.utils.parsedate_to_datetime(value))
    except (TypeError, ValueError):
        return None


def format_timestamp(
    value: dt.datetime, *, offset: OffsetStyle = "Z", precision: Precision = "ms"
) -> str:
    """Render a stamp in UTC the way a vendor writes it (default: ms + ``Z``)."""
    utc = as_utc(value)
    timespec = {"s": "seconds", "ms": "milliseconds", "us": "microseconds"}[precision]
    return utc.replace(tzinfo=None).isoformat(timespec=timespec) + offset


def format_close(value: dt.datetime) -> str:
    """Close's style, for ``date_updated__gte`` and friends: µs and ``+00:00``."""
    return format_timestamp(value, offset="+00:00", precision="us")


def format_truto(value: dt.datetime) -> str:
    """Truto's style, for ``updated_at[gte]`` / ``created_at[gte]``: ms and ``Z``."""
    return format_timestamp(value, offset="Z", precision="ms")


def format_iso(value: dt.datetime) -> str:
    """A stored stamp as the operator views (CLI, admin API) show it: ISO 8601 in UTC with
    ``Z``, the fraction only when there is one (``2025-01-02T03:04:05Z``,
    ``2025-01-02T03:04:05.678901Z``); a naive value is UTC."""
    return as_utc(value).replace(tzinfo=None).isoformat() + "Z"


def format_optional_iso(value: dt.datetime | None) -> str | None:
    """:func:`format_iso` that passes None through (nullable columns)."""
    return None if value is None else format_iso(value)
