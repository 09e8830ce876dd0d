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
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import partial
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


def _money(field: str, value: object) -> JSON:
    return str(_decimal(field, value).quantize(_CENT, rounding=ROUND_HALF_EVEN))


def _probability(field: str, value: object) -> JSON:
    number = _decimal(field, value)
    if not Decimal(0) <= number <= Decimal(1):
        raise CanonicalValueError(field, value, "a probability between 0 and 1")
    return str(number.quantize(_BASIS_POINT, rounding=ROUND_HALF_EVEN))


def _tags(field: str, value: object) -> JSON:
    if not isinstance(value, list | tuple | set | frozenset):
        raise CanonicalValueError(field, value, "a list of strings")
    return sorted({str(tag) for tag in value if str(tag) != ""})


def _dict(field: str, value: object) -> JSON:
    if not isinstance(value, Mapping):
        raise CanonicalValueError(field, value, "a mapping")
    return {str(k): v for k, v in sorted(value.items()) if v is not None}


def _currency(field: str, value: object) -> JSON:
    text = _text(field, value)
    if text is None:
        return None
    if len(text) != 3 or not text.isalpha():
        raise CanonicalValueError(field, value, "a 3-letter ISO 4217 code")
    return text.upper()


def _status(field: str, value: object) -> JSON:
    text = _text(field, value)
    if text is not None and text not in STATUSES:
        raise CanonicalValueError(field, value, f"one of {', '.join(STATUSES)}")
    return text


def _priority(field: str, value: object) -> JSON:
    text = _text(field, value)
    if text is None:
        return None
    if text.lower() not in PRIORITIES:
        raise CanonicalValueError(field, value, f"one of {', '.join(PRIORITIES)}")
    return text.lower()


#: kind -> the normal form of a value of that kind that is not None
_BY_KIND: Final[dict[str, Callable[[str, object], JSON]]] = {
    "text": _text,
    "key": _text,
    "money": _money,
    "probability": _probability,
    "date": _date,
    "tags": _tags,
    "dict": _dict,
    "currency": _currency,
    "status": _status,
    "priority": _priority,
}


def normalize(field: str, value: object) -> JSON:
    """Put one python value for a canonical field into canonical form (None stays None)."""
    kind = CANONICAL_FIELDS.get(field)
    if kind is None:
        raise CanonicalValueError(
            field, value, f"a canonical field ({', '.join(CANONICAL_FIELDS)})"
        )
    if value is None:
        return None
    return _BY_KIND[kind](field, value)


def normalizer(field: str) -> Callable[[object], JSON]:
    """``normalize`` of one field with its kind looked up once: the mapper reads every field
    of every captured deal through it (a load of 10,000 deals normalises some 120,000 values)."""
    kind = CANONICAL_FIELDS.get(field)
    if kind is None:
        return partial(normalize, field)  # raises, naming the canonical fields
    convert = _BY_KIND[kind]

    def one(value: object) -> JSON:
        return None if value is None else convert(field, value)

    return one
