"""The ParsaLink emulator's DRF serializer checks of a create or update body (422).

The API's rules are in the package docstring (``sync.emulators.parsalink``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sync.emulators.parsalink.common import (
    DATE_FORMAT,
    NOT_NULL,
    REQUIRED,
    STAGES,
    Invalid,
    Record,
)
from sync.emulators.parsalink.data import ParsaLinkData
from sync.emulators.state import is_date, is_number


class ParsaLinkValidation(ParsaLinkData):
    """Field checks over the workspace's records (related ids must name existing ones)."""

    def _validate(self, body: dict[str, Any], *, creating: bool) -> Record:
        """DRF serializer validation: known fields only, errors as ``{field: [message]}``."""
        errors: dict[str, list[str]] = {}
        changes: Record = {}
        if creating:
            errors.update({k: [REQUIRED] for k in ("name", "accountId") if k not in body})
        validators: dict[str, Callable[[Any], str | None]] = {
            "name": lambda v: check_string(v, 255, blank=False),
            "accountId": lambda v: self._related(v, "accounts"),
            "value": _value,
            "stage": lambda v: None if v in STAGES else f'"{v}" is not a valid choice.',
            "probability": _probability,
            "closeDate": _date,
            "closedDate": _date,
            "lossReason": lambda v: check_string(v, 255),
            "assignedTo": lambda v: self._related(v, "users"),
            "source": lambda v: check_string(v, 50),
            "contactIds": _contact_ids,
            "description": lambda v: check_string(v, None),
        }
        nullable = {
            "value",
            "closeDate",
            "closedDate",
            "lossReason",
            "assignedTo",
            "source",
            "description",
        }
        for key, value in body.items():
            if key not in validators:
                continue  # DRF ignores unknown and read-only fields
            problem = (
                (None if key in nullable else NOT_NULL)
                if value is None
                else (validators[key](value))
            )
            if problem:
                errors[key] = [problem]
            else:
                changes[key] = value
        if errors:
            raise Invalid(422, {"detail": "Invalid input.", **errors})
        return changes

    def _related(self, value: Any, collection: str) -> str | None:
        if isinstance(value, str) and value in self.collections[collection]:
            return None
        return f'Invalid pk "{value}" - object does not exist.'


def check_string(value: Any, max_length: int | None, *, blank: bool = True) -> str | None:
    if not isinstance(value, str):
        return "Not a valid string."
    if not blank and not value.strip():
        return "This field may not be blank."
    if max_length is not None and len(value) > max_length:
        return f"Ensure this field has no more than {max_length} characters."
    return None


def _value(value: Any) -> str | None:
    if not is_number(value) or not math.isfinite(value):
        return "A valid number is required."
    exponent = Decimal(repr(value)).as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        return "Ensure that there are no more than 2 decimal places."
    return None if value >= 0 else "Ensure this value is greater than or equal to 0."


def _probability(value: Any) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return "A valid integer is required."
    if value < 0:
        return "Ensure this value is greater than or equal to 0."
    return None if value <= 100 else "Ensure this value is less than or equal to 100."


def _date(value: Any) -> str | None:
    return None if is_date(value) else DATE_FORMAT


def _contact_ids(value: Any) -> str | None:
    if not isinstance(value, list):
        return f'Expected a list of items but got type "{type(value).__name__}".'
    return None if all(isinstance(v, str) and v for v in value) else "Not a valid string."
