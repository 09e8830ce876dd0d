"""What every Truto integration shares: the error envelope, stamp formats, the ``Integration`` base.

The unified API's rules are in the package docstring (``sync.emulators.truto``).
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from starlette.responses import JSONResponse

from sync.emulators import reference

if TYPE_CHECKING:
    from sync.emulators.truto.app import TrutoEmulator

TOKEN = "truto-test-token"
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
OPERATORS = ("gt", "gte", "lt", "lte")
#: Query parameters every list accepts besides the integration's filters.
COMMON_PARAMS = frozenset(
    {
        "integrated_account_id",
        "limit",
        "next_cursor",
        "truto_response_format",
        "truto_ignore_remote_data",
        "truto_exclude_fields",
        "truto_exclude_fields[]",
    }
)
RESPONSE_FORMATS = ("unified", "raw", "normalized")
UNIFIED_FIELDS = (
    "id",
    "name",
    "description",
    "amount",
    "currency",
    "owner",
    "account",
    "contact",
    "stage",
    "status",
    "tags",
    "last_activity_at",
    "close_date",
    "created_at",
    "updated_at",
    "custom_fields",
)
REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
}
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE
)
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class TrutoError(Exception):
    """An answer in Truto's error envelope."""

    def __init__(self, status: int, message: str, details: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = dict(details or {})

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.details)


def error_response(
    status: int, message: str, details: Mapping[str, Any] | None = None
) -> JSONResponse:
    """``{"statusCode", "error", "message", "details"}`` — Truto's one error shape."""
    body: dict[str, Any] = {
        "statusCode": status,
        "error": REASONS.get(status, "Error"),
        "message": message,
    }
    if details:
        body["details"] = dict(details)
    return JSONResponse(body, status)


def validation_failure(field: str, message: str) -> TrutoError:
    return TrutoError(
        400, "Validation failed", {"failures": [{"field": field, "message": message}]}
    )


# -- time formats ---------------------------------------------------------------------------
def iso_ms(moment: dt.datetime) -> str:
    """Truto's unified stamp: UTC, milliseconds, ``Z``."""
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def sf_stamp(moment: dt.datetime) -> str:
    """Salesforce's JSON date-time: ``2026-01-05T10:00:00.123+0000``."""
    return iso_ms(moment)[:-1] + "+0000"


def capsule_stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def close_stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def parse_stamp(value: str) -> dt.datetime:
    """Parse any stamp this module writes (``Z``, ``+0000``, ``+00:00``)."""
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC)


def parse_datetime(value: Any, field: str) -> dt.datetime:
    """A client-sent date-time; RFC 3339 with an offset or 400."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise validation_failure(field, "must be an ISO 8601 date-time with a time zone offset")
    try:
        return parse_stamp(value.upper())
    except ValueError as exc:
        raise validation_failure(
            field, "must be an ISO 8601 date-time with a time zone offset"
        ) from exc


def date_as_datetime(value: str | None) -> str | None:
    """A vendor date (``2026-03-01``) as Truto's date-time (``2026-03-01T00:00:00.000Z``)."""
    return f"{value}T00:00:00.000Z" if value else None


def random_id(rng: random.Random, prefix: str, length: int) -> str:
    return prefix + "".join(rng.choice(_ALNUM) for _ in range(length))


def ref_id(body: Mapping[str, Any], field: str) -> str | None:
    """``{"id": …}`` references (``owner``, ``account``); 400 when malformed."""
    if field not in body or body[field] is None:
        return None
    value = body[field]
    if not isinstance(value, dict) or not isinstance(value.get("id"), str | int):
        raise validation_failure(field, "must be an object with an id")
    return str(value["id"])


def body_amount(body: Mapping[str, Any]) -> float | None:
    value = body.get("amount")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise validation_failure("amount", "must be a number")
    return float(value)


def body_text(body: Mapping[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise validation_failure(field, "must be a string")
    return value


# -- integrations ---------------------------------------------------------------------------
class Integration:
    """One integrated account: the upstream's raw records and their unified mapping."""

    name: ClassVar[str] = ""
    required: ClassVar[tuple[str, ...]] = ()  # unified create requirements (seed 001)
    filterable: ClassVar[tuple[str, ...]] = ()  # unified fields with date-time filters
    populated: ClassVar[tuple[str, ...]] = ()  # unified fields this integration maps

    def __init__(self, emulator: TrutoEmulator) -> None:
        self.emulator = emulator

    stage_collection: ClassVar[str] = "stages"  # where the upstream keeps its stages

    # collections
    def collection(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.emulator.collections.setdefault(f"{self.name}:{kind}", {})

    def reference_collection(self, kind: str) -> dict[str, dict[str, Any]]:
        """``accounts``, ``users`` or ``stages`` (Capsule milestones, Close statuses)."""
        return self.collection(self.stage_collection if kind == "stages" else kind)

    @property
    def account_id(self) -> str:
        return reference.TRUTO_ACCOUNTS[self.name]

    def now(self) -> dt.datetime:
        return self.emulator.clock.now()

    # to implement
    def seed_reference(self, rng: random.Random) -> None:
        raise NotImplementedError

    def random_opportunity(self, rng: random.Random) -> dict[str, Any]:
        raise NotImplementedError

    def record_id(self, raw: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def update(self, raw: dict[str, Any], body: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def unified(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def stamps(self, raw: Mapping[str, Any]) -> tuple[dt.datetime, dt.datetime]:
        """(created, updated) at the upstream's own precision, for ordering and filters."""
        raise NotImplementedError

    def unified_account(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def update_account(self, raw: dict[str, Any], body: Mapping[str, Any]) -> None:
        """``PATCH /accounts/{id}``: rename the upstream account (where emulated)."""
        raise TrutoError(405, f"Updating accounts is not emulated for {self.name}")

    def unified_user(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def unified_stage(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def filter_value(self, moment: dt.datetime) -> dt.datetime:
        """The filter value as the upstream receives it."""
        return moment

    def custom_field_names(self) -> tuple[str, ...]:
        return ()

    # shared
    def check_required(self, body: Mapping[str, Any]) -> None:
        failures = [
            {"field": field, "message": f"{field} is required for {self.name}"}
            for field in self.required
            if body.get(field) in (None, "", {})
        ]
        if failures:
            raise TrutoError(400, "Validation failed", {"failures": failures})

    def check_custom_fields(self, body: Mapping[str, Any]) -> dict[str, Any]:
        custom = body.get("custom_fields") or {}
        if not isinstance(custom, dict):
            raise validation_failure("custom_fields", "must be an object")
        unknown = sorted(set(custom) - set(self.custom_field_names()))
        if unknown:
            raise self.unknown_field_error(unknown)
        return dict(custom)

    def unknown_field_error(self, fields: list[str]) -> TrutoError:
        return self.remote_error(f"No such custom field: {', '.join(fields)}", fields)

    def remote_error(self, message: str, fields: list[str]) -> TrutoError:
        raise NotImplementedError

    def require_ref(self, kind: str, ref: str | None, field: str) -> None:
        if ref is not None and ref not in self.collection(kind):
            raise self.remote_error(f"{field} {ref} does not exist", [field])


def first_last(name: str) -> tuple[str, str]:
    first, _, last = name.partition(" ")
    return first, last
