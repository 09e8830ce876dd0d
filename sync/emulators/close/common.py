"""What the Close emulator's modules share: constants, the error answers, stamp and money formats.

The API's rules are in the package docstring (``sync.emulators.close``).
"""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request

API_KEY = "close-test-key"
MAX_LIMIT = 100
DEFAULT_LIMIT = 100
MAX_SKIP = 10_000
EVENT_LIMIT = 50
EVENT_RETENTION = dt.timedelta(days=30)
CURRENCY = "USD"

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
VALUE_PERIODS = ("one_time", "monthly", "annual")
STATUS_TYPES = ("active", "won", "lost")
ORDERABLE = (
    "date_won",
    "date_updated",
    "date_created",
    "confidence",
    "user_name",
    "value",
    "annualized_value",
    "annualized_expected_value",
)
#: Keys a create body may carry (spec ``CreateOpportunity`` minus attachments/custom_fields).
CREATE_KEYS = frozenset(
    {
        "confidence",
        "contact_id",
        "created_by",
        "date_created",
        "date_won",
        "lead_id",
        "note",
        "pipeline_id",
        "status_id",
        "user_id",
        "value",
        "value_period",
    }
)
UPDATE_KEYS = CREATE_KEYS - {"created_by", "date_created"}
LEAD_KEYS = frozenset({"name", "description", "url", "status_id"})
#: Documented opportunity list parameters the emulator does not implement (400, see docstring).
UNSUPPORTED_PARAMS = frozenset(
    {"query", "lead_query", "lead_saved_search_id", "_group_by", "status", "status__in"}
)
RANGE_OPS = ("", "__gt", "__gte", "__lt", "__lte")
IN_FILTERS = ("user_id", "status_id", "status_label", "status_type", "value_period")
#: Event filter combinations the event log accepts (``date_updated__*`` goes with any of them).
EVENT_COMBOS = frozenset(
    frozenset(c)
    for c in (
        (),
        ("object_type", "object_id"),
        ("object_type", "action"),
        ("object_id", "action"),
        ("lead_id", "object_type"),
        ("lead_id", "object_type", "action"),
        ("lead_id", "user_id", "object_type"),
        ("lead_id", "user_id", "object_type", "action"),
        ("lead_id", "user_id"),
        ("user_id", "object_id"),
        ("user_id", "object_id", "action"),
        ("user_id", "object_type"),
        ("user_id", "object_type", "action"),
        ("lead_id",),
        ("user_id",),
        ("request_id",),
    )
)
#: Emulator-only second pipeline: (label, type) — see the module docstring.
EXTRA_PIPELINE = ("Renewals", (("Renewal Due", "active"), ("Renewed", "won"), ("Churned", "lost")))
LEAD_STATUSES = ("Potential", "Bad Fit", "Qualified", "Customer")
MULTI_VALUE_FIELDS = frozenset({"cf_Tags00000000000000000000000000000000000003"})
NOTES = (
    "Follow up after the demo.",
    "Budget confirmed by finance.",
    "Waiting on legal review.",
    "Champion changed roles; re-qualify.",
    "",
)
TAGS = ("inbound", "partner", "upsell", "renewal", "enterprise", "smb")


class CloseError(Exception):
    """A vendor error answer raised from deep inside a handler."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


def bad_request(message: str | None = None, **field_errors: str) -> CloseError:
    """Close's 400 body: ``{"errors": [...], "field-errors": {...}}`` (vendors.md §2.4)."""
    return CloseError(400, {"errors": [message] if message else [], "field-errors": field_errors})


def field_error(field: str, message: str) -> CloseError:
    return CloseError(400, {"errors": [], "field-errors": {field: message}})


def not_found(kind: str) -> CloseError:
    return CloseError(404, {"error": f"{kind} matching query does not exist."})


def stamp(moment: dt.datetime) -> str:
    """Close's timestamp: microseconds and ``+00:00`` (``2013-02-01T00:54:51.321000+00:00``)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def iso_or_none(value: dt.date | None) -> str | None:
    if value is None:
        return None
    return stamp(value) if isinstance(value, dt.datetime) else value.isoformat()


def format_cents(cents: int | None) -> str | None:
    """``300000`` → ``"$3,000"``, ``300050`` → ``"$3,000.50"`` (spec examples)."""
    if cents is None:
        return None
    sign, cents = ("-", -cents) if cents < 0 else ("", cents)
    dollars, rest = divmod(cents, 100)
    return f"{sign}${dollars:,}" + (f".{rest:02d}" if rest else "")


def new_id(rng: random.Random, prefix: str, length: int = 43) -> str:
    return prefix + "".join(rng.choice(ALPHABET) for _ in range(length))


def parse_moment(raw: str, tz_offset: dt.timezone) -> dt.datetime:
    """An ISO date or datetime from a request; naive values are in the ``x-tz-offset`` zone."""
    text = raw.strip().replace(" ", "+") if "T" in raw else raw.strip()
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz_offset)
    return moment.astimezone(dt.UTC)


def tz_of(request: Request) -> dt.timezone:
    """The caller's UTC offset from ``x-tz-offset`` (hours; Close's Timezone Offsets page)."""
    try:
        return dt.timezone(dt.timedelta(hours=float(request.headers.get("x-tz-offset", "0"))))
    except ValueError:
        return dt.UTC


def int_param(params: QueryParams, name: str, default: int, maximum: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer.") from None
    if value < 0:
        raise bad_request(f"{name} must be a non-negative integer.")
    if value > maximum:
        raise bad_request(f"{name} must be less than or equal to {maximum}.")
    return value


def project(obj: dict[str, Any], fields: str | None) -> dict[str, Any]:
    """``_fields=a,b``: only the named fields (unknown names are left out)."""
    if not fields:
        return obj
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    return {k: obj[k] for k in wanted if k in obj}


async def json_body(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/json"):
        raise CloseError(415, {"error": "Unsupported media type: send application/json."})
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        raise bad_request("Invalid JSON body.") from None
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object.")
    return body
