"""The list endpoints' machinery: filters, ordering, stamp indexes, aggregates, search, cursors.

The API's rules are in the package docstring (``sync.emulators.close``).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams

from sync.emulators.close.common import (
    RANGE_OPS,
    VALUE_PERIODS,
    bad_request,
    field_error,
    parse_moment,
)


def null_last(name: str) -> Callable[[dict[str, Any]], tuple[bool, Any]]:
    return lambda r: (r[name] is None, r[name] if r[name] is not None else 0)


def equals(name: str, expected: str) -> Callable[[dict[str, Any]], bool]:
    return lambda r: r.get(name) == expected


def member(name: str, allowed: set[str]) -> Callable[[dict[str, Any]], bool]:
    return lambda r: r.get(name) in allowed


def range_checks(
    params: QueryParams, name: str, tz: dt.timezone
) -> list[Callable[[dict[str, Any]], bool]]:
    """``name`` / ``name__gt|gte|lt|lte`` over a rendered ISO value (date or datetime)."""
    return [_compare(name, op, bound, tz) for op, bound in range_bounds(params, name, tz)]


def range_bounds(params: QueryParams, name: str, tz: dt.timezone) -> list[tuple[str, dt.datetime]]:
    """(operator, parsed bound) of each ``name`` / ``name__gt|gte|lt|lte`` given; a bound that
    is no ISO 8601 date or datetime is Close's 400 for that field."""
    bounds = []
    for op in RANGE_OPS:
        raw = params.get(name + op)
        if raw is None:
            continue
        try:
            bounds.append((op, parse_moment(raw, tz)))
        except ValueError:
            raise field_error(name + op, "Expected an ISO 8601 date or datetime.") from None
    return bounds


def _compare(
    name: str, op: str, bound: dt.datetime, tz: dt.timezone
) -> Callable[[dict[str, Any]], bool]:
    def check(row: dict[str, Any]) -> bool:
        raw = row.get(name)
        if raw is None:
            return False
        value = (
            dt.datetime.fromisoformat(raw)
            if "T" in raw
            else dt.datetime.fromisoformat(raw).replace(tzinfo=tz).astimezone(dt.UTC)
        )
        return {
            "": value == bound,
            "__gt": value > bound,
            "__gte": value >= bound,
            "__lt": value < bound,
            "__lte": value <= bound,
        }[op]

    return check


INDEXED_STAMPS = ("date_created", "date_updated")  # never null: a plain sorted index
LISTING_PARAMS = {"_limit", "_skip", "_fields", "_order_by"}


@dataclass
class StampIndex:
    """Opportunities sorted by one stamp (ties by id, as ``_sorted``), with running sums of
    the value aggregates so any contiguous range's aggregates cost O(periods)."""

    stamps: list[dt.datetime]
    ids: list[str]
    sums: dict[str, list[tuple[int, int, int]]]  # period -> prefix (count, total, expected)

    @classmethod
    def build(cls, opps: list[dict[str, Any]], key: str) -> StampIndex:
        ordered = sorted(opps, key=lambda o: (o[key], o["id"]))
        sums: dict[str, list[tuple[int, int, int]]] = {p: [(0, 0, 0)] for p in VALUE_PERIODS}
        for opp in ordered:
            value = opp["value"]
            expected = 0 if value is None else round(value * opp["confidence"] / 100)
            for period, running in sums.items():
                count, total, exp = running[-1]
                if period == opp["value_period"]:
                    count, total, exp = count + 1, total + (value or 0), exp + expected
                running.append((count, total, exp))
        return cls([o[key] for o in ordered], [o["id"] for o in ordered], sums)

    def narrow(self, op: str, bound: dt.datetime, lo: int, hi: int) -> tuple[int, int]:
        """Positions [lo, hi) further narrowed by ``stamp <op> bound``."""
        left = bisect.bisect_left(self.stamps, bound)
        right = bisect.bisect_right(self.stamps, bound)
        if op in ("", "__gte"):
            lo = max(lo, left)
        if op == "__gt":
            lo = max(lo, right)
        if op in ("", "__lte"):
            hi = min(hi, right)
        if op == "__lt":
            hi = min(hi, left)
        return lo, hi

    def aggregates(self, lo: int, hi: int) -> dict[str, Any]:
        count, total, expected = {}, {}, {}
        for period, running in self.sums.items():
            count[period] = running[hi][0] - running[lo][0]
            total[period] = running[hi][1] - running[lo][1]
            expected[period] = running[hi][2] - running[lo][2]
        return _aggregate_body(count, total, expected)


def aggregates(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The value aggregates every opportunity list answer carries (seed 002)."""
    count = dict.fromkeys(VALUE_PERIODS, 0)
    total = dict.fromkeys(VALUE_PERIODS, 0)
    expected = dict.fromkeys(VALUE_PERIODS, 0)
    for row in rows:
        period = row["value_period"]
        count[period] += 1
        total[period] += row["value"] or 0
        expected[period] += row["expected_value"] or 0
    return _aggregate_body(count, total, expected)


def _aggregate_body(
    count: dict[str, int], total: dict[str, int], expected: dict[str, int]
) -> dict[str, Any]:
    out: dict[str, Any] = {"count_by_value_period": count}
    for period in VALUE_PERIODS:
        out[f"total_value_{period}"] = total[period]
        out[f"expected_value_{period}"] = expected[period]
    out["total_value_annualized"] = total["one_time"] + total["annual"] + 12 * total["monthly"]
    out["expected_value_annualized"] = (
        expected["one_time"] + expected["annual"] + 12 * expected["monthly"]
    )
    return out


def lead_matcher(query: str) -> Callable[[str], bool]:
    """Close lead search, the part a connector needs: ``name:"Acme Corp"`` is a case-insensitive
    phrase match on the name; bare words must all occur in the name."""
    query = query.strip()
    if not query:
        return lambda name: True
    found = re.fullmatch(r'name:(?:"([^"]*)"|(\S+))', query)
    if found:
        phrase = (found.group(1) or found.group(2) or "").lower()
        return lambda name: phrase in name.lower()
    if ":" in query:
        raise bad_request(f"The emulator only supports name searches, not {query!r}.")
    words = [w.lower() for w in query.replace('"', " ").split()]
    return lambda name: all(w in name.lower() for w in words)


def public_event(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if not k.startswith("_")}


def _encode_cursor(direction: str, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{direction}:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        direction, seq = raw.split(":")
        if direction not in ("next", "prev"):
            raise ValueError(direction)
        return direction, int(seq)
    except (ValueError, binascii.Error):
        raise field_error("_cursor", "Invalid cursor.") from None


def cursor_page(
    matches: list[dict[str, Any]], cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """Latest first; ``cursor_next`` = older events, ``cursor_previous`` = newer ones."""
    newest_first = sorted(matches, key=lambda e: e["_seq"], reverse=True)
    if cursor is None:
        page = newest_first[:limit]
    else:
        direction, seq = _decode_cursor(cursor)
        if direction == "next":
            page = [e for e in newest_first if e["_seq"] < seq][:limit]
        else:
            page = [e for e in reversed(newest_first) if e["_seq"] > seq][:limit][::-1]
    if not page:
        return [], None, None
    first, last = page[0]["_seq"], page[-1]["_seq"]
    older = any(e["_seq"] < last for e in newest_first)
    newer = any(e["_seq"] > first for e in newest_first)
    return (
        page,
        _encode_cursor("next", last) if older else None,
        _encode_cursor("prev", first) if newer else None,
    )
