"""The Ruddr emulator's checks of a create or update body (Ruddr's 400 with ``errors``).

The API's rules are in the package docstring (``sync.emulators.ruddr``).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from sync.emulators.ruddr.common import (
    NULLABLE_STRINGS,
    PRIORITIES,
    READ_ONLY,
    REFERENCE_FIELDS,
    SINGULAR,
    WRITABLE,
    BadRequest,
    Record,
)
from sync.emulators.ruddr.data import RuddrData
from sync.emulators.state import is_date, is_number


class RuddrValidation(RuddrData):
    """Field checks over the workspace's records (references must name existing ones)."""

    def _validate(self, body: dict[str, Any], *, creating: bool) -> Record:
        """Check a create/update body; return the stored-field changes or raise BadRequest."""
        errors: list[str] = []
        changes: Record = {}
        for key in body:
            if key in READ_ONLY:
                errors.append(f"'{key}' is read-only")
            elif key not in WRITABLE:
                errors.append(f"'{key}' is not allowed")
        if creating:
            errors += [
                f"'{k}' is required" for k in ("name", "companyId") if body.get(k) in (None, "")
            ]
        for key, value in body.items():
            if key not in WRITABLE or (
                creating and key in ("name", "companyId") and value in (None, "")
            ):
                continue
            value = None if value == "" else value  # documented: empty strings become null
            problem = self._check(key, value)
            if problem:
                errors.append(problem)
            elif value is None and key in ("tagIds", "projects"):
                changes[key] = []  # unsetting a list leaves it empty
            else:
                changes[key] = value
        if errors:
            raise BadRequest("The request body is invalid.", errors)
        return changes

    def _check(self, key: str, value: Any) -> str | None:
        """One field's problem, or None when ``value`` may be stored."""
        if value is None:
            nullable = (
                key in NULLABLE_STRINGS
                or key in REFERENCE_FIELDS
                or key in ("amount", "closeDate", "priorityId", "tagIds", "projects")
            )
            return None if nullable else f"'{key}' cannot be null"
        if key in NULLABLE_STRINGS or key in ("name", "currency"):
            return check_string(key, value, NULLABLE_STRINGS.get(key, 255))
        checker = {
            "companyId": lambda v: self._check_ref(key, v, "companies"),
            "opportunityStageId": lambda v: self._check_ref(key, v, "opportunity-stages"),
            "amount": lambda v: None if is_number(v) else f"'{key}' must be a number",
            "isActive": lambda v: None if isinstance(v, bool) else f"'{key}' must be a boolean",
            "probability": _check_probability,
            "closeDate": lambda v: _check_date(key, v),
            "priorityId": lambda v: (
                None if v in PRIORITIES else f"'{key}' must be one of: high, medium, low"
            ),
            "tagIds": lambda v: self._check_refs(key, v, "tags"),
            "projects": self._check_projects,
        }.get(key)
        if checker is not None:
            return checker(value)
        return self._check_ref(key, value, REFERENCE_FIELDS[key])

    def _check_ref(self, key: str, value: Any, collection: str) -> str | None:
        if isinstance(value, str) and value in self.collections[collection]:
            return None
        return f"'{key}' must be the ID of an existing {SINGULAR[collection]}"

    def _check_refs(self, key: str, value: Any, collection: str) -> str | None:
        if not isinstance(value, list):
            return f"'{key}' must be an array"
        problems = [self._check_ref(key, v, collection) for v in value]
        return next((p for p in problems if p), None)

    def _check_projects(self, value: Any) -> str | None:
        if not isinstance(value, list) or not all(isinstance(p, dict) for p in value):
            return "'projects' must be an array of objects"
        ids = [p.get("id") for p in value]
        if len(set(ids)) != len(ids):
            return "'projects' IDs must be unique"
        return self._check_refs("projects", ids, "projects")


def check_string(key: str, value: Any, max_length: int) -> str | None:
    if not isinstance(value, str):
        return f"'{key}' must be a string"
    if key == "currency":
        return (
            None
            if re.fullmatch(r"[A-Z]{3}", value)
            else ("'currency' must be a 3-letter currency code")
        )
    if len(value) > max_length:
        return f"'{key}' must be at most {max_length} characters"
    return None


def _check_probability(value: Any) -> str | None:
    message = "'probability' must be a number from 0 to 1 with at most four decimals"
    if not is_number(value):
        return message
    try:
        exact = Decimal(repr(value))
    except InvalidOperation:
        return message
    exponent = exact.as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return None if 0 <= exact <= 1 and decimals <= 4 else message


def _check_date(key: str, value: Any) -> str | None:
    return None if is_date(value) else f"'{key}' must be a date (YYYY-MM-DD)"
