"""Vendor timestamps: one parser for every stamp format we meet, one formatter per vendor style.

Shared by the connectors (modified stamps, cursors) and the mapping layer (date ⇄ datetime), which
must not depend on each other. The formats seen in the vendors' docs (shared/vendors.md §8):

- Ruddr ``modifiedAt``: ``2025-01-15T20:47:03.284Z`` (ms, ``Z``) — https://docs.ruddr.io/guides/conventions
- Close ``date_updated``: ``2013-02-01T00:54:51.321000+00:00`` (µs, ``+00:00``) —
  https://developer.close.com/
- Salesforce ``SystemModstamp``: ``2013-05-08T21:20:00.000+0000`` (ms, offset without a colon) —
  https://developer.salesforce.com/docs/platform/api-rest/guide/resources-getupdated.md
- ParsaLink ``updatedAt``: ``2025-03-15T09:30:00Z`` (seconds, ``Z``) — seed 003

Every parsed stamp is timezone-aware UTC; a stamp without an offset is rejected rather than
guessed (a naive stamp compared with an aware cursor would silently shift by hours).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

OffsetStyle = Literal["Z", "+00:00", "+0000"]
Precision = Literal["s", "ms", "us"]

# Python 3.11's fromisoformat reads "Z", "+00:00" and any fraction length, but not "+0000".
_COLONLESS_OFFSET = re.compile(r"([+-])(\d{2})(\d{2})$")


class TimestampError(ValueError):
    """A string that is not an ISO 8601 timestamp with a UTC offset."""


def parse_timestamp(value: str) -> dt.datetime:
    """Parse an ISO 8601 stamp with ``Z`` / ``+00:00`` / ``+0000`` and any fraction into UTC."""
    if not isinstance(value, str) or "T" not in value.upper():
        raise TimestampError(f"expected an ISO 8601 timestamp, got {value!r}")
    text = _COLONLESS_OFFSET.sub(r"\1\2:\3", value.strip())
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise TimestampError(f"expected an ISO 8601 timestamp, got {value!r}") from exc
    if parsed.tzinfo is None:
        raise TimestampError(f"timestamp without a UTC offset: {value!r}")
    return parsed.astimezone(dt.UTC)


def format_timestamp(
    value: dt.datetime, *, offset: OffsetStyle = "Z", precision: Precision = "ms"
) -> str:
    """Render an aware datetime in UTC the way a vendor writes it (e.g. ms + ``Z`` for Ruddr)."""
    if value.tzinfo is None:
        raise TimestampError(f"refusing to format a naive datetime: {value!r}")
    utc = value.astimezone(dt.UTC)
    timespec = {"s": "seconds", "ms": "milliseconds", "us": "microseconds"}[precision]
    text = utc.replace(tzinfo=None).isoformat(timespec=timespec)
    suffix = {"Z": "Z", "+00:00": "+00:00", "+0000": "+0000"}[offset]
    return text + suffix
