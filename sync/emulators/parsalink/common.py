"""What the ParsaLink emulator's modules share: constants, the stamp format, DRF's errors.

The API's rules are in the package docstring (``sync.emulators.parsalink``).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from sync.emulators import reference
from sync.emulators.base import VendorError

Record = dict[str, Any]

DEFAULT_API_KEY = "pk_test_parsalink"
DEMO_EMAIL = "demo@parsalink.test"
DEMO_PASSWORD = "parsalink-demo"
ACCESS_TTL = dt.timedelta(hours=1)
REFRESH_TTL = dt.timedelta(days=30)
PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
STAGES = reference.PARSALINK_STAGES
CLOSED_STAGES = ("closed_won", "closed_lost")
STAGE_PROBABILITY = {
    "prospecting": 10,
    "qualification": 20,
    "needs_analysis": 30,
    "proposal": 50,
    "negotiation": 70,
    "closed_won": 100,
    "closed_lost": 0,
}
SOURCES = ("inbound", "outbound", "referral", "partner", "event")
LOSS_REASONS = ("Chose competitor — price was primary objection", "No budget", "Went silent")
SUMMARY_FIELDS = (
    "id",
    "name",
    "accountId",
    "accountName",
    "value",
    "stage",
    "probability",
    "closeDate",
    "assignedTo",
    "source",
    "createdAt",
    "updatedAt",
)
STRING_LIMITS = {"name": 255, "lossReason": 255, "source": 50, "description": None}
REQUIRED = "This field is required."
NOT_NULL = "This field may not be null."
DATE_FORMAT = "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."


def stamp(moment: dt.datetime) -> str:
    """ParsaLink's date-time format: UTC, whole seconds, ``Z`` (``2025-03-15T09:30:00Z``)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def detail(status: int, message: str, **extra: Any) -> JSONResponse:
    """DRF's error body ``{"detail": …}``."""
    return JSONResponse({"detail": message, **extra}, status)


class Invalid(VendorError):
    """A DRF-style error answer raised by parsing and validation helpers."""


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise Invalid(400, {"detail": f"JSON parse error - {exc}"}) from None
    if not isinstance(body, dict):
        raise Invalid(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    return body
