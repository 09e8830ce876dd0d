"""Unit conversions between a vendor's value and the canonical one, as named, pure pairs.

Each :class:`Transform` is a pair ``to_canonical`` (vendor JSON value → a value that
``sync.model.normalize`` puts in canonical form) and ``to_vendor`` (canonical JSON value → vendor
JSON value). Config names them (``transform: cents``); :data:`TRANSFORMS` is the registry.
On each vendor's own value domain the pair round-trips exactly (tests/mapping/test_transforms.py
proves it with hypothesis), which is what keeps our writes from coming back as changes.

The mapper never hands ``None`` to a transform unless ``accepts_none`` is set: ``None`` means
"no value" in every unit. Fields without a transform get the default for their canonical kind
(:func:`default_for_kind`): ``number`` for money and probability, ``date`` for dates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Final

from sync.timefmt import as_utc, read_iso

JSON = Any

_HUNDRED: Final = Decimal(100)


class TransformError(ValueError):
    """A vendor or canonical value outside the transform's domain."""


@dataclass(frozen=True, slots=True)
class Transform:
    """A pure pair of conversions, registered by ``name`` for config."""

    name: str
    to_canonical: Callable[[JSON], JSON]
    to_vendor: Callable[[JSON], JSON]
    doc: str
    accepts_none: bool = False
    #: the canonical kind whose normal form ``to_canonical`` already returns: reading skips
    #: ``normalize`` for a field of that kind (it would parse the value again for nothing)
    gives: str | None = None


def _decimal(value: JSON) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise TransformError(f"expected a number, got {value!r}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as exc:
        raise TransformError(f"expected a number, got {value!r}") from exc
    if not number.is_finite():
        raise TransformError(f"expected a finite number, got {value!r}")
    return number


def _json_number(number: Decimal) -> int | float:
    """A JSON number for a Decimal: an int when whole (``50000``), else the shortest float.

    Float is safe here: canonical money has 2 and probability 4 decimals, and ``float(str)``
    reads such short decimals back to the same shortest repr.
    """
    return int(number) if number == number.to_integral_value() else float(number)


# -- identity and plain numbers -----------------------------------------------------------------
def _identity(value: JSON) -> JSON:
    return value


def _number_to_canonical(value: JSON) -> JSON:
    return _decimal(value)


def _number_to_vendor(value: JSON) -> JSON:
    return _json_number(_decimal(value))


# -- Close `value`: integer cents ⇄ major units ------------------------------------------------
def _cents_to_canonical(value: JSON) -> JSON:
    if isinstance(value, float) and not value.is_integer():
        raise TransformError(f"expected whole cents, got {value!r}")
    return _decimal(value) / _HUNDRED


def _cents_to_vendor(value: JSON) -> JSON:
    cents = _decimal(value) * _HUNDRED
    if cents != cents.to_integral_value():
        raise TransformError(f"{value!r} has fractions of a cent")
    return int(cents)


# -- Close `confidence`, ParsaLink `probability`: integer percent ⇄ 0..1 -----------------------
def _percent_to_canonical(value: JSON) -> JSON:
    percent = _decimal(value)
    if not Decimal(0) <= percent <= _HUNDRED:
        raise TransformError(f"expected a percentage 0..100, got {value!r}")
    return percent / _HUNDRED


def _percent_to_vendor(value: JSON) -> JSON:
    """Whole percent, half-even: the vendors store an integer, so 0.1234 is sent as 12."""
    percent = (_decimal(value) * _HUNDRED).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    if not Decimal(0) <= percent <= _HUNDRED:
        raise TransformError(f"expected a probability 0..1, got {value!r}")
    return int(percent)


# -- dates -----------------------------------------------------------------------------------------
def _date_part(value: JSON) -> dt.date:
    """The calendar date of a date or date-time string, *as written* (no UTC conversion) —
    except a date-time that is exactly midnight UTC shown in another zone, which is the UTC date.

    Vendors that return a date-only field as a date-time (Truto ``close_date``) render it as
    midnight in some zone; converting ``2026-12-31T00:00:00+01:00`` to UTC first would move it
    to the previous day. A vendor that stores the date at midnight UTC and renders it in the
    reader's zone (``2026-12-30T19:00:00-05:00``) means the UTC date, 2026-12-31.
    """
    if not isinstance(value, str):
        raise TransformError(f"expected a date string, got {value!r}")
    try:
        if len(value) == 10:
            return dt.date.fromisoformat(value)
        moment = read_iso(value)
    except ValueError as exc:
        raise TransformError(
            f"expected YYYY-MM-DD or an ISO 8601 date-time, got {value!r}"
        ) from exc
    if moment.utcoffset() and moment.time() != dt.time(0):
        utc = as_utc(moment)
        if utc.time() == dt.time(0):
            return utc.date()
    return moment.date()


def _date_to_canonical(value: JSON) -> JSON:
    return _date_part(value).isoformat()


def _date_to_vendor(value: JSON) -> JSON:
    return _date_part(value).isoformat()


def _datetime_to_vendor(value: JSON) -> JSON:
    """Midnight UTC of the date (Truto ``close_date`` is a date-time; Close accepts one for
    ``date_won`` in requests and answers with the date)."""
    return f"{_date_part(value).isoformat()}T00:00:00Z"


# -- tags --------------------------------------------------------------------------------
def _csv_to_canonical(value: JSON) -> JSON:
    if value is None:
        return []
    if not isinstance(value, str):
        raise TransformError(f"expected a comma-separated string, got {value!r}")
    return [tag.strip() for tag in value.split(",") if tag.strip()]


def _csv_to_vendor(value: JSON) -> JSON:
    """``"a, b"``; an empty list unsets the field (``None``), as Close reads an unset field."""
    if not isinstance(value, list):
        raise TransformError(f"expected a list of tags, got {value!r}")
    for tag in value:
        if "," in str(tag):
            raise TransformError(f"tag {tag!r} contains a comma and cannot be stored")
    return ", ".join(sorted({str(tag).strip() for tag in value})) or None


def _list_to_canonical(value: JSON) -> JSON:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise TransformError(f"expected a list of strings, got {value!r}")
    return value


def _list_to_vendor(value: JSON) -> JSON:
    """The sorted list, ``[]`` included (a multi-value field is replaced wholesale)."""
    if not isinstance(value, list):
        raise TransformError(f"expected a list of tags, got {value!r}")
    return sorted({str(tag) for tag in value})


def _names_to_canonical(value: JSON) -> JSON:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise TransformError(f"expected a list of objects with a name, got {value!r}")
    return [item["name"] for item in value if item.get("name")]


def _names_to_vendor(value: JSON) -> JSON:
    if not isinstance(value, list):
        raise TransformError(f"expected a list of names, got {value!r}")
    return [{"name": name} for name in value]


TRANSFORMS: Final[dict[str, Transform]] = {
    t.name: t
    for t in (
        Transform("identity", _identity, _identity, "the value as it is"),
        Transform(
            "number",
            _number_to_canonical,
            _number_to_vendor,
            "JSON number ⇄ decimal string (Ruddr amount and probability 0..1, ParsaLink value)",
        ),
        Transform(
            "cents",
            _cents_to_canonical,
            _cents_to_vendor,
            "integer cents ⇄ major units (Close `value`)",
        ),
        Transform(
            "percent",
            _percent_to_canonical,
            _percent_to_vendor,
            "integer percent 0..100 ⇄ probability 0..1 (Close `confidence`, ParsaLink)",
        ),
        Transform(
            "date", _date_to_canonical, _date_to_vendor, "YYYY-MM-DD ⇄ YYYY-MM-DD", gives="date"
        ),
        Transform(
            "datetime",
            _date_to_canonical,
            _datetime_to_vendor,
            "ISO date-time ⇄ date; written as midnight UTC (Truto `close_date`, Close `date_won`)",
            gives="date",
        ),
        Transform(
            "tags_csv",
            _csv_to_canonical,
            _csv_to_vendor,
            "comma-separated text ⇄ tag list (a Close text custom field)",
            accepts_none=True,
        ),
        Transform(
            "tag_list",
            _list_to_canonical,
            _list_to_vendor,
            "list of strings ⇄ tag list (a Close multi-value custom field)",
            accepts_none=True,
        ),
        Transform(
            "names",
            _names_to_canonical,
            _names_to_vendor,
            "[{id, name}] ⇄ name list (Ruddr `tags`)",
            accepts_none=True,
        ),
    )
}

_KIND_DEFAULTS: Final = {"money": "number", "probability": "number", "date": "date"}


def default_for_kind(kind: str) -> Transform:
    """The transform a field of this canonical kind gets when config names none."""
    return TRANSFORMS[_KIND_DEFAULTS.get(kind, "identity")]


def get_transform(name: str) -> Transform:
    """The registered transform ``name`` (``KeyError`` lists the known names)."""
    try:
        return TRANSFORMS[name]
    except KeyError:
        raise KeyError(f"unknown transform {name!r}; known: {', '.join(TRANSFORMS)}") from None
