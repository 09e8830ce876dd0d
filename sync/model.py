"""The canonical opportunity: field names, units and the one normal form every layer compares.

Canonical values are plain JSON values in a fixed normal form, so that equality is ``==``,
shadows and journals store them as they are, and no float ever sneaks into a comparison:

- ``amount``: string Decimal in major units, quantized to 2 places (``"50000.00"``)
- ``probability``: string Decimal 0..1 quantized to 4 places (``"0.7500"``)
- ``close_date``: ``"YYYY-MM-DD"``
- ``tags``: sorted list of distinct strings; ``custom``: dict; ``external_ids``: dict
- every other field: a non-empty string, or ``None`` (empty strings become ``None``, as Ruddr does)

Only the mapping layer converts vendor units into this form (via :func:`normalize`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Final

JSON = Any
Fields = dict[str, JSON]

STATUSES: Final = ("open", "won", "lost")
PRIORITIES: Final = ("high", "medium", "low")

#: canonical field name -> kind. The order is the order fields are shown to people.
CANONICAL_FIELDS: Final[dict[str, str]] = {
    "name": "text",
    "description": "text",
    "amount": "money",
    "currency": "currency",
    "probability": "probability",
    "stage": "key",
    "status": "status",
    "close_date": "date",
    "owner": "key",
    "company": "key",
    "priority": "priority",
    "next_steps": "text",
    "lead_source": "text",
    "tags": "tags",
    "custom": "dict",
    "external_ids": "dict",
}

_CENT = Decimal("0.01")
_BASIS_POINT = Decimal("0.0001")


class CanonicalValueError(ValueError):
    """A value that cannot be put in canonical form (names the field and the value)."""

    def __init__(self, field: str, value: object, expected: str) -> None:
        super().__init__(f"{field}: expected {expected}, got {value!r}")
        self.field = field
        self.value = value
        self.expected = expected


def _decimal(field: str, value: object) -> Decimal:
    if isinstance(value, bool):
        raise CanonicalValueError(field, value, "a number")
    try:
        number = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation as exc:
        raise CanonicalValueError(field, value, "a number") from exc
    if not number.is_finite():
        raise CanonicalValueError(field, value, "a finite number")
    return number


def _text(field: str, value: object) -> str | None:
    if not isinstance(value, str):
        raise CanonicalValueError(field, value, "a string")
    return value if value != "" else None


def _date(field: str, value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10]).isoformat()
        except ValueError as exc:
            raise CanonicalValueError(field, value, "a date YYYY-MM-DD") from exc
    raise CanonicalValueError(field, value, "a date YYYY-MM-DD")


def normalize(field: str, value: object) -> JSON:
    """Put one python value for a canonical field into canonical form (None stays None)."""
    kind = CANONICAL_FIELDS.get(field)
    if kind is None:
        raise CanonicalValueError(
            field, value, f"a canonical field ({', '.join(CANONICAL_FIELDS)})"
        )
    if value is None:
        return None
    if kind == "money":
        return str(_decimal(field, value).quantize(_CENT, rounding=ROUND_HALF_EVEN))
    if kind == "probability":
        number = _decimal(field, value)
        if not Decimal(0) <= number <= Decimal(1):
            raise CanonicalValueError(field, value, "a probability between 0 and 1")
        return str(number.quantize(_BASIS_POINT, rounding=ROUND_HALF_EVEN))
    if kind == "date":
        return _date(field, value)
    if kind == "tags":
        if not isinstance(value, list | tuple | set | frozenset):
            raise CanonicalValueError(field, value, "a list of strings")
        return sorted({str(tag) for tag in value if str(tag) != ""})
    if kind == "dict":
        if not isinstance(value, Mapping):
            raise CanonicalValueError(field, value, "a mapping")
        return {str(k): v for k, v in sorted(value.items()) if v is not None}
    text = _text(field, value)
    if text is None:
        return None
    if kind == "currency":
        if len(text) != 3 or not text.isalpha():
            raise CanonicalValueError(field, value, "a 3-letter ISO 4217 code")
        return text.upper()
    if kind == "status" and text not in STATUSES:
        raise CanonicalValueError(field, value, f"one of {', '.join(STATUSES)}")
    if kind == "priority" and text.lower() not in PRIORITIES:
        raise CanonicalValueError(field, value, f"one of {', '.join(PRIORITIES)}")
    return text.lower() if kind == "priority" else text
