"""What the HubSpot emulator's modules share: constants, HubSpot's error bodies, stamp formats.

The API's rules are in the package docstring (``sync.emulators.hubspot``).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from starlette.requests import Request

from sync.emulators.base import VendorError

TOKEN = "hubspot-test-token"
#: Granted to ``TOKEN`` unless a test narrows them (``POST /_emulator/scopes``).
SCOPES = (
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.owners.read",
    "crm.schemas.deals.read",
)
LIST_LIMIT = 100  # GET list: default 10, at most 100
SEARCH_LIMIT = 200  # search: default 10, at most 200 a page
SEARCH_CAP = 10_000  # results one search query can page through
BATCH_LIMIT = 100  # inputs of one batch request
MAX_FILTER_GROUPS = 5
MAX_FILTERS_PER_GROUP = 10
MAX_FILTERS = 25
TEN_SECONDLY = 190  # Professional private app: 190 requests per 10 s
DAILY = 650_000  # Professional: 650,000 a day
SEARCH_RATE = 5  # search requests per second, a budget of its own
DEFAULT_INDEX_LAG = 2.0  # seconds before a write shows in search
COMPANY_TYPE_IDS = {5: "Primary", 341: ""}  # deal -> company association type ids


class HubSpotError(VendorError):
    """An error answer in HubSpot's ``Error`` shape (deals.json ``Error``)."""

    def __init__(
        self,
        status: int,
        message: str,
        category: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        context: dict[str, list[str]] | None = None,
        sub_category: str | None = None,
    ) -> None:
        body: dict[str, Any] = {
            "status": "error",
            "message": message,
            "correlationId": str(uuid.uuid4()),
            "category": category,
        }
        if sub_category:
            body["subCategory"] = sub_category
        if errors:
            body["errors"] = errors
        if context:
            body["context"] = context
        super().__init__(status, body)

    def standard(self, context: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """The same error as one entry of a batch's ``errors`` (deals.json ``StandardError``)."""
        body = self.body
        return {
            "status": "error",
            "category": body["category"],
            "message": body["message"],
            "context": {**body.get("context", {}), **(context or {})},
            "errors": body.get("errors", []),
            "links": {},
        }


def validation(message: str, **context: list[str]) -> HubSpotError:
    return HubSpotError(400, message, "VALIDATION_ERROR", context=context or None)


def not_found(message: str = "resource not found") -> HubSpotError:
    return HubSpotError(404, message, "OBJECT_NOT_FOUND")


class PropertyProblem:
    """One invalid property value, as HubSpot lists it in "Property values were not valid"."""

    def __init__(self, name: str, code: str, message: str) -> None:
        self.name, self.code, self.message = name, code, message

    def as_json(self) -> dict[str, Any]:
        return {
            "isValid": False,
            "message": self.message,
            "error": self.code,
            "name": self.name,
            "localizedErrorMessage": self.message,
        }


def invalid_properties(problems: list[PropertyProblem]) -> HubSpotError:
    """HubSpot's 400 for property values it refuses: the list is JSON inside ``message``, and
    ``errors`` carries each problem with ``code`` and ``context.propertyName``."""
    listed = json.dumps([p.as_json() for p in problems], separators=(",", ":"))
    details = [
        {"message": p.message, "code": p.code, "context": {"propertyName": [p.name]}}
        for p in problems
    ]
    return HubSpotError(
        400, f"Property values were not valid: {listed}", "VALIDATION_ERROR", errors=details
    )


def stamp(moment: dt.datetime) -> str:
    """HubSpot's date-time: UTC, milliseconds, ``Z`` (``2019-10-30T03:30:17.883Z``)."""
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def epoch_ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_ms(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC)


def parse_when(raw: str) -> int | None:
    """A date-time property value or filter value: epoch milliseconds, an ISO date (midnight
    UTC) or an ISO date-time; None when it is neither."""
    text = raw.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return epoch_ms(moment)


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, or HubSpot's 400 for a body that is not one."""
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise validation("Invalid input JSON on line 1, column 1: Cannot parse JSON") from None
    if not isinstance(body, dict):
        raise validation("Invalid input JSON: expected an object")
    return body


def wanted_properties(request: Request) -> list[str] | None:
    """``properties=a,b`` or ``properties=a&properties=b`` (None: the default set)."""
    values = request.query_params.getlist("properties")
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return names or None


def flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"
