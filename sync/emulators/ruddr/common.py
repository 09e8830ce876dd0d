"""What the Ruddr emulator's modules share: constants, the stamp format, the error answers.

The API's rules are in the package docstring (``sync.emulators.ruddr``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.responses import JSONResponse

from sync.emulators.base import VendorError

Record = dict[str, Any]

DEFAULT_TOKEN = "ruddr-test-token"
WORKSPACE_CURRENCY = "USD"
PRIORITIES = ("high", "medium", "low")
READ_ONLY = ("salesforceId", "hubspotId")
NULLABLE_STRINGS = {"description": 5000, "nextSteps": 255, "cloudFolderUrl": 1024}
REFERENCE_FIELDS = {  # body field -> collection it must name
    "ownerId": "members",
    "opportunityTypeId": "opportunity-types",
    "opportunityLeadSourceId": "opportunity-lead-sources",
    "practiceId": "practices",
}
WRITABLE = {
    "name",
    "companyId",
    "opportunityStageId",
    "amount",
    "isActive",
    "probability",
    "closeDate",
    "priorityId",
    "currency",
    "tagIds",
    "projects",
    *NULLABLE_STRINGS,
    *REFERENCE_FIELDS,
}
SINGULAR = {
    "companies": "company",
    "clients": "client",
    "members": "member",
    "opportunity-stages": "opportunity stage",
    "opportunity-types": "opportunity type",
    "opportunity-lead-sources": "opportunity lead source",
    "practices": "practice",
    "tags": "tag",
    "projects": "project",
}
OPPORTUNITY_TYPES = ("New Business", "Existing Business", "Renewal")
LEAD_SOURCES = ("Referral", "Website", "Outbound", "Partner")
PRACTICES = ("Consulting", "Implementation")
TAGS = ("Enterprise", "SMB", "Strategic")
DESCRIPTIONS = (
    "Proposal for a new engagement.",
    "Follow-on work after the pilot.",
    None,
    None,
)


def stamp(moment: dt.datetime) -> str:
    """Ruddr's date-time format: UTC, milliseconds, ``Z`` (e.g. ``2025-01-15T20:47:03.284Z``)."""
    return (
        moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{moment.microsecond // 1000:03d}Z"
    )


def parse_stamp(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def error(status: int, message: str, errors: list[str] | None = None) -> JSONResponse:
    """Ruddr's error body (https://docs.ruddr.io/guides/errors)."""
    body: dict[str, Any] = {"status": status, "message": message}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status)


class BadRequest(VendorError):
    """A 400 with Ruddr's body; raised by parsing and validation helpers."""

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(400, message)
        self.message = message
        self.errors = errors

    def response(self) -> JSONResponse:
        return error(400, self.message, self.errors)
