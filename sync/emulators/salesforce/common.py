"""What the Salesforce emulator's modules share: constants, errors, ids, stamps, the schema.

The API's rules are in the package docstring (``sync.emulators.salesforce``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

TOKEN = "sf-test-token"
CLIENT_ID = "crmsync-test-client"
CLIENT_SECRET = "crmsync-test-secret"
ORG_ID = "00D5g00000EmuLAEAZ"
CORPORATE_CURRENCY = "USD"
#: Active currencies of the multi-currency org: (ISO code, conversion rate to corporate).
CURRENCIES: tuple[tuple[str, float], ...] = (("USD", 1.0), ("EUR", 0.92), ("GBP", 0.79))
DAILY_API_LIMIT = 100_000
SESSION_SECONDS = 2 * 3600
MIN_VERSION, MAX_VERSION = 20, 62
COLLECTION_LIMIT = 200
MIN_BATCH, MAX_BATCH = 200, 2000
UPDATED_WINDOW = dt.timedelta(days=30)
DELETED_RETENTION = dt.timedelta(days=15)
EXTERNAL_ID = "Crmsync_Id__c"

#: Key prefixes of the objects the emulator holds (the first three characters of an id).
PREFIXES = {
    "Opportunity": "006",
    "Account": "001",
    "User": "005",
    "OpportunityStage": "01J",
    "CurrencyType": "02c",
}
_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

#: Default probability and forecast category per standard stage (Setup → Opportunity Stages).
STAGE_DEFAULTS: dict[str, tuple[int, str]] = {
    "Prospecting": (10, "Pipeline"),
    "Qualification": (10, "Pipeline"),
    "Needs Analysis": (20, "Pipeline"),
    "Proposal/Price Quote": (75, "Pipeline"),
    "Negotiation/Review": (90, "Commit"),
    "Closed Won": (100, "Closed"),
    "Closed Lost": (0, "Omitted"),
}


class SalesforceError(Exception):
    """Salesforce's error answer: a JSON *array* of ``{message, errorCode, fields?}``."""

    def __init__(
        self, status: int, code: str, message: str, fields: list[str] | None = None
    ) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields

    def body(self) -> list[dict[str, Any]]:
        item: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            item["fields"] = self.fields
        return [item]

    def save_error(self) -> dict[str, Any]:
        """The same error inside a SaveResult (sObject Collections)."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields or []}


def malformed(message: str) -> SalesforceError:
    return SalesforceError(400, "MALFORMED_QUERY", message)


def invalid_field(message: str, fields: list[str] | None = None) -> SalesforceError:
    return SalesforceError(400, "INVALID_FIELD", message, fields)


def not_found() -> SalesforceError:
    return SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")


def full_id(short: str) -> str:
    """A 15-character id with its 3-character case-safe suffix (the documented checksum)."""
    suffix = ""
    for start in (0, 5, 10):
        flags = sum(1 << i for i, ch in enumerate(short[start : start + 5]) if "A" <= ch <= "Z")
        suffix += _CHECKSUM[flags]
    return short + suffix


def make_id(object_type: str, number: int, pod: str = "5g00000") -> str:
    """The ``number``-th id of an object type: prefix, pod, base-62 counter, checksum."""
    digits = ""
    while number or len(digits) < 5:
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
    short = (PREFIXES[object_type] + pod + digits)[:15].ljust(15, "0")
    return full_id(short)


def normalise_id(raw: str) -> str | None:
    """An 18-character id from a 15- or 18-character one; None when it is not an id."""
    if len(raw) == 15 and raw.isalnum():
        return full_id(raw)
    if len(raw) == 18 and raw.isalnum():
        return raw
    return None


def truncate_ms(moment: dt.datetime) -> dt.datetime:
    """Salesforce keeps datetimes to the millisecond."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def stamp(moment: dt.datetime) -> str:
    """``2013-05-08T21:20:00.000+0000``: milliseconds, offset without a colon."""
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


def parse_datetime(raw: str) -> dt.datetime | None:
    """A request's ISO datetime (``Z``, ``+00:00`` or ``+0000``); None when it is not one."""
    text = raw.strip().replace(" ", "+")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = text[:-2] + ":" + text[-2:]
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(dt.UTC)


@dataclass(frozen=True)
class Field:
    """One field of an object: its SOQL type, whether the API may write it, its length."""

    type: str  # id, string, picklist, textarea, datetime, date, double, percent, currency,
    #            boolean, reference
    writable: bool = False
    length: int = 0
    createable_only: bool = False


OPPORTUNITY: dict[str, Field] = {
    "Id": Field("id"),
    "IsDeleted": Field("boolean"),
    "Name": Field("string", True, 120),
    "Description": Field("textarea", True, 32000),
    "StageName": Field("picklist", True),
    "Amount": Field("currency", True),
    "Probability": Field("percent", True),
    "ExpectedRevenue": Field("currency"),
    "CloseDate": Field("date", True),
    "Type": Field("picklist", True),
    "NextStep": Field("string", True, 255),
    "LeadSource": Field("picklist", True),
    "IsClosed": Field("boolean"),
    "IsWon": Field("boolean"),
    "ForecastCategoryName": Field("picklist"),
    "AccountId": Field("reference", True),
    "OwnerId": Field("reference", True),
    "CreatedDate": Field("datetime"),
    "CreatedById": Field("reference"),
    "LastModifiedDate": Field("datetime"),
    "LastModifiedById": Field("reference"),
    "SystemModstamp": Field("datetime"),
    EXTERNAL_ID: Field("string", True, 255),
    "CurrencyIsoCode": Field("picklist", True),  # multi-currency orgs only
}
ACCOUNT: dict[str, Field] = {
    "Id": Field("id"),
    "IsDeleted": Field("boolean"),
    "Name": Field("string", True, 255),
    "CreatedDate": Field("datetime"),
    "LastModifiedDate": Field("datetime"),
    "SystemModstamp": Field("datetime"),
}
USER: dict[str, Field] = {
    "Id": Field("id"),
    "Name": Field("string"),
    "FirstName": Field("string"),
    "LastName": Field("string"),
    "Email": Field("string"),
    "Username": Field("string"),
    "IsActive": Field("boolean"),
    "SystemModstamp": Field("datetime"),
}
STAGE: dict[str, Field] = {
    "Id": Field("id"),
    "ApiName": Field("string"),
    "MasterLabel": Field("string"),
    "IsActive": Field("boolean"),
    "IsClosed": Field("boolean"),
    "IsWon": Field("boolean"),
    "DefaultProbability": Field("percent"),
    "ForecastCategoryName": Field("picklist"),
    "SortOrder": Field("double"),
}
ORGANIZATION: dict[str, Field] = {
    "Id": Field("id"),
    "Name": Field("string"),
    "DefaultCurrencyIsoCode": Field("picklist"),
    "OrganizationType": Field("string"),
    "IsSandbox": Field("boolean"),
}
CURRENCY_TYPE: dict[str, Field] = {
    "Id": Field("id"),
    "IsoCode": Field("picklist"),
    "ConversionRate": Field("double"),
    "DecimalPlaces": Field("double"),
    "IsActive": Field("boolean"),
    "IsCorporate": Field("boolean"),
}
#: Relationship name -> (the reference field holding the id, the related object).
RELATIONSHIPS = {"Owner": ("OwnerId", "User"), "Account": ("AccountId", "Account")}
