"""Truto unified CRM emulator: ``/unified/crm`` over three integrated accounts.

Written from shared/seeds/001 (Truto "Create Opportunities", older doc) and shared/vendors.md §3,
with the unified-API conventions of Truto's own skills repository
(https://github.com/trutohq/truto-skills, ``skills/truto/references/unified-api.md``) and the
querying guide (https://truto.one/docs/api-reference/overview/querying).

Behind the one token (``Bearer truto-test-token``) sit three integrated accounts, one per
integration, with the fixed ids of :data:`sync.emulators.reference.TRUTO_ACCOUNTS`. Each keeps
its records in the *vendor's own shape* (what ``truto_response_format=raw`` and ``remote_data``
show) and maps them to the unified shape on the way out, as Truto does. Collections (for
``POST /_emulator/set``, which sets raw vendor fields): ``salesforce:opportunities``,
``salesforce:accounts``, ``salesforce:users`` and the same for ``capsule:`` and ``close:``.

Unified fields populated per integration (seed 001 lists which are *supported*; the rest is
our choice, and absent fields are omitted from ``unified`` answers as Truto omits unmapped ones):

============== ============================ ========================== ==========================
unified        salesforce (``Opportunity``) capsule (``opportunity``)  close (``opportunity``)
============== ============================ ========================== ==========================
id             ``Id`` (18 chars, ``006…``)  ``id`` (integer, as text)  ``id`` (``oppo_…``)
name           ``Name``                     ``name``                   ``lead_name`` (read only;
                                                                       Close opportunities have
                                                                       no name — a written name
                                                                       is dropped)
description    ``Description``              ``description``            ``note``
amount         ``Amount``                   ``value.amount``           ``value`` / 100 (cents)
currency       ``CurrencyIsoCode`` (multi-  ``value.currency``         —
               currency orgs only)
owner{id}      ``OwnerId`` (``005…``)       ``owner.id``               ``user_id``
account{id}    ``AccountId`` (``001…``)     ``party.id``               ``lead_id``
stage{id,name} ``StageName`` (id = name)    ``milestone``              — (not in seed 001; set
                                                                       ``remote_data.status_id``)
status         open / won / lost from       open / won / lost from     ``status_type``
               ``IsClosed``, ``IsWon``      milestone completion       (``active`` → open)
close_date     ``CloseDate`` at 00:00 UTC   ``expectedCloseOn``        ``date_won`` at 00:00 UTC
last_activity  —                            —                          ``date_updated``
created_at     ``CreatedDate``              ``createdAt``              ``date_created``
updated_at     ``SystemModstamp``           ``updatedAt``              ``date_updated``
tags           —                            ``tags``                   —
custom_fields  ``*__c`` by API name         ``fields`` by field name   ``custom.cf_…`` by cf id
============== ============================ ========================== ==========================

Decisions where the docs leave a gap (the stricter choice, as issue 3 asks):

- Timestamps are ISO 8601 in UTC with milliseconds and ``Z`` (``2026-01-05T10:00:00.123Z``)
  whatever the upstream precision (Capsule has seconds, Close microseconds). Raw objects keep
  the vendor's format: Salesforce ``…T10:00:00.123+0000``, Capsule ``…T10:00:00Z``, Close
  ``…T10:00:00.123456+00:00``. Every write stamps a strictly later server time.
- ``close_date`` must be an RFC 3339 date-time with an offset; Salesforce and Close store a date,
  so the UTC date of the value is kept and answered back as midnight UTC.
- Truto checks only the unified requirements of seed 001 (Close: ``account`` and ``owner``;
  Capsule: ``name`` and ``stage``; Salesforce: ``name``) → **400** ``Validation failed`` with
  ``details.failures``. The upstream then applies its own rules and its error passes through with
  its status in the envelope, its body under ``details.remote_error``: Salesforce also needs
  ``StageName`` and ``CloseDate`` (``REQUIRED_FIELD_MISSING``, 400) and rejects unknown stages,
  owners and accounts; Capsule needs a ``party`` (``account``) and answers 422; Close answers 400
  for an unknown lead or user.
- ``updated_at`` / ``created_at`` filters (``[gt]``, ``[gte]``, ``[lt]``, ``[lte]``, as Truto's SDK
  sends them) only where ``GET /opportunities/meta/list`` declares them in ``query_schema``:
  Salesforce and Close, not Capsule. Any filter or parameter the integration does not declare
  → 400. Salesforce filters go through SOQL, whose date-time literals have whole seconds, so the
  value is truncated to the second (a ``[gt]`` answer may include records of that same second —
  dedupe). Close compares at microseconds against ``date_updated``.
- Order: with an ``updated_at`` filter, ``updated_at`` ascending then id (a record changed during
  the scan shows up again later in the same scan, which an incremental client wants); otherwise
  ``created_at`` ascending then id, which changes under no update, so a full scan misses and
  repeats nothing while records are modified. ``sort_by`` is not offered.
- ``limit``: default 50, 1..100, else 400. ``next_cursor`` is opaque and carries the query it
  was made for (filters of the cursor's request win); ``prev_cursor`` is always null.
- ``truto_response_format``: ``unified`` (default: populated unified fields + ``remote_data``),
  ``raw`` (the vendor object alone), ``normalized`` (every unified field, null when the
  integration does not populate it, no ``remote_data``). ``truto_ignore_remote_data=true`` drops
  ``remote_data``; ``truto_exclude_fields[]=…`` (or comma-separated) drops top-level fields.
- Creates answer **201** with the object unwrapped; PATCH answers 200 with the object; DELETE
  answers 200 ``{"id": …}``.
- ``Idempotency-Key`` on POST/PATCH: the first answer (status and body) is stored per integrated
  account and replayed for the same key; the same key with a different method, path or body
  → **422** (as the IETF ``Idempotency-Key`` header draft specifies).
- Currency (vendors.md §8): Salesforce has ``CurrencyIsoCode`` only in multi-currency orgs.
  The emulated org is multi-currency (``SalesforceIntegration.multi_currency``; corporate
  currency USD): unified ``currency`` reads and writes ``CurrencyIsoCode`` (a 3-letter code,
  else 400 ``INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST``), new deals default to the corporate
  currency. With ``multi_currency`` off the field does not exist: ``currency`` is omitted from
  answers and writing it is Salesforce's ``INVALID_FIELD`` (400).
- ``GET /accounts``, ``/users`` and ``/stages`` (Salesforce ``StageName`` picklist values with
  id = name, Capsule milestones, Close opportunity statuses) list the reference data, 1..100 a
  page like opportunities, in a fixed order.
- Rate limit (off unless enabled): a bucket per integrated account, 10 req/s, burst 20 — Truto
  normalizes the upstream limit into ``ratelimit-limit`` / ``ratelimit-remaining`` /
  ``ratelimit-reset`` (seconds until reset) on every answer; 429 carries the error envelope.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import math
import random
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sync.emulators import reference
from sync.emulators.base import Emulator

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
_BRACKET = re.compile(r"^(\w+)\[(\w*)\]$")
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
#: Salesforce's default probability per standard stage (Setup → Opportunity Stages).
_SF_PROBABILITY = {
    "Prospecting": 10,
    "Qualification": 10,
    "Needs Analysis": 20,
    "Proposal/Price Quote": 75,
    "Negotiation/Review": 90,
    "Closed Won": 100,
    "Closed Lost": 0,
}
_SF_FORECAST = {"Closed Won": "Closed", "Closed Lost": "Omitted", "Negotiation/Review": "Commit"}


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


def _failure(field: str, message: str) -> TrutoError:
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
        raise _failure(field, "must be an ISO 8601 date-time with a time zone offset")
    try:
        return parse_stamp(value.upper())
    except ValueError as exc:
        raise _failure(field, "must be an ISO 8601 date-time with a time zone offset") from exc


def date_as_datetime(value: str | None) -> str | None:
    """A vendor date (``2026-03-01``) as Truto's date-time (``2026-03-01T00:00:00.000Z``)."""
    return f"{value}T00:00:00.000Z" if value else None


def random_id(rng: random.Random, prefix: str, length: int) -> str:
    return prefix + "".join(rng.choice(_ALNUM) for _ in range(length))


def _ref_id(body: Mapping[str, Any], field: str) -> str | None:
    """``{"id": …}`` references (``owner``, ``account``); 400 when malformed."""
    if field not in body or body[field] is None:
        return None
    value = body[field]
    if not isinstance(value, dict) or not isinstance(value.get("id"), str | int):
        raise _failure(field, "must be an object with an id")
    return str(value["id"])


def _amount(body: Mapping[str, Any]) -> float | None:
    value = body.get("amount")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _failure("amount", "must be a number")
    return float(value)


def _text(body: Mapping[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise _failure(field, "must be a string")
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
            raise _failure("custom_fields", "must be an object")
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


def _first_last(name: str) -> tuple[str, str]:
    first, _, last = name.partition(" ")
    return first, last


class SalesforceIntegration(Integration):
    """Salesforce behind Truto: ``Opportunity`` sObjects, SOQL filters on ``SystemModstamp``.

    Raw shape and semantics: vendors.md §4 (``Name``, ``StageName`` and ``CloseDate`` required,
    ``Probability`` defaults from the stage, ``IsClosed`` / ``IsWon`` derived from the stage).
    """

    name = "salesforce"
    required = ("name",)
    filterable = ("updated_at", "created_at")
    #: a multi-currency org has ``CurrencyIsoCode`` on every record (vendors.md §4, §8)
    multi_currency = True
    corporate_currency = "USD"
    populated = (
        "id",
        "name",
        "description",
        "amount",
        "currency",
        "owner",
        "account",
        "stage",
        "status",
        "close_date",
        "created_at",
        "updated_at",
        "custom_fields",
    )
    stages: ClassVar[dict[str, tuple[bool, bool]]] = {
        name: (closed, won) for name, closed, won in reference.SALESFORCE_STAGES
    }

    def seed_reference(self, rng: random.Random) -> None:
        for order, (stage, closed, won) in enumerate(reference.SALESFORCE_STAGES, start=1):
            self.collection("stages")[stage] = {
                "ApiName": stage, "MasterLabel": stage, "IsActive": True, "IsClosed": closed,
                "IsWon": won, "DefaultProbability": _SF_PROBABILITY[stage], "SortOrder": order,
                "ForecastCategoryName": _SF_FORECAST.get(stage, "Pipeline"),
            }  # fmt: skip
        for full_name, email in reference.USERS:
            user_id = random_id(rng, "005", 15)
            first, last = _first_last(full_name)
            stamp = sf_stamp(self.now())
            self.collection("users")[user_id] = {
                "attributes": {
                    "type": "User",
                    "url": f"/services/data/v59.0/sobjects/User/{user_id}",
                },
                "Id": user_id,
                "Username": email,
                "Name": full_name,
                "FirstName": first,
                "LastName": last,
                "Email": email,
                "IsActive": True,
                "CreatedDate": stamp,
                "SystemModstamp": stamp,
            }
        owners = list(self.collection("users"))
        for i, company in enumerate(reference.COMPANIES):
            account_id = random_id(rng, "001", 15)
            stamp = sf_stamp(self.now())
            self.collection("accounts")[account_id] = {
                "attributes": {
                    "type": "Account",
                    "url": f"/services/data/v59.0/sobjects/Account/{account_id}",
                },
                "Id": account_id,
                "Name": company,
                "OwnerId": owners[i % len(owners)],
                "Industry": None,
                "Website": None,
                "CreatedDate": stamp,
                "LastModifiedDate": stamp,
                "SystemModstamp": stamp,
            }

    def seed_shared_deals(self, seed: int) -> None:
        """Every :func:`reference.shared_deals` deal with its exact Salesforce id."""
        accounts = {a["Name"]: a["Id"] for a in self.collection("accounts").values()}
        users = {u["Email"]: u["Id"] for u in self.collection("users").values()}
        for deal in reference.shared_deals(seed):
            stage = reference.SALESFORCE_STAGES[deal.stage_index][0]
            raw = self._new(
                deal.salesforce_id,
                deal.name,
                stage,
                deal.close_date.isoformat(),
                users[deal.owner_email],
                accounts[deal.company],
                deal.amount,
            )
            self.collection("opportunities")[deal.salesforce_id] = raw

    def _new(
        self,
        opp_id: str,
        name: str,
        stage: str,
        close_date: str | None,
        owner: str,
        account: str | None,
        amount: float | None,
    ) -> dict[str, Any]:
        stamp = sf_stamp(self.now())
        raw: dict[str, Any] = {
            "attributes": {
                "type": "Opportunity",
                "url": f"/services/data/v59.0/sobjects/Opportunity/{opp_id}",
            },
            "Id": opp_id,
            "IsDeleted": False,
            "Name": name,
            "Description": None,
            "AccountId": account,
            "OwnerId": owner,
            "Amount": amount,
            "StageName": stage,
            "CloseDate": close_date,
            "Type": None,
            "LeadSource": None,
            "CreatedDate": stamp,
            "LastModifiedDate": stamp,
            "SystemModstamp": stamp,
            "Crmsync_Id__c": None,
            "Tags__c": None,
        }
        if self.multi_currency:
            raw["CurrencyIsoCode"] = self.corporate_currency
        self._derive_stage(raw)
        return raw

    def _derive_stage(self, raw: dict[str, Any], *, reset_probability: bool = True) -> None:
        if raw["StageName"] not in self.stages:  # e.g. a StageName sent in remote_data
            raise self._sf_error(
                f"bad value for restricted picklist field: {raw['StageName']}",
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                ["StageName"],
            )
        closed, won = self.stages[raw["StageName"]]
        raw["IsClosed"], raw["IsWon"] = closed, won
        raw["ForecastCategoryName"] = _SF_FORECAST.get(raw["StageName"], "Pipeline")
        if reset_probability:
            raw["Probability"] = _SF_PROBABILITY.get(raw["StageName"], 10)

    def random_opportunity(self, rng: random.Random) -> dict[str, Any]:
        opp_id = reference.salesforce_id(rng)
        while opp_id in self.collection("opportunities"):
            opp_id = reference.salesforce_id(rng)
        account = rng.choice(list(self.collection("accounts").values()))
        stage = rng.choice(reference.SALESFORCE_STAGES)[0]
        close = dt.date(2026, 1, 1) + dt.timedelta(days=rng.randrange(0, 365))
        return self._new(
            opp_id,
            f"{account['Name']} - {rng.choice(reference.DEAL_WORDS)}",
            stage,
            close.isoformat(),
            rng.choice(list(self.collection("users"))),
            account["Id"],
            float(rng.randrange(1, 500) * 500),
        )

    def record_id(self, raw: Mapping[str, Any]) -> str:
        return str(raw["Id"])

    def remote_error(self, message: str, fields: list[str]) -> TrutoError:
        return self._sf_error(message, "INVALID_CROSS_REFERENCE_KEY", fields)

    def unknown_field_error(self, fields: list[str]) -> TrutoError:
        message = f"No such column '{fields[0]}' on sobject of type Opportunity"
        return self._sf_error(message, "INVALID_FIELD", fields)

    @staticmethod
    def _sf_error(message: str, code: str, fields: list[str]) -> TrutoError:
        remote = [{"message": message, "errorCode": code, "fields": fields}]
        return TrutoError(400, message, {"remote_error": remote})

    def custom_field_names(self) -> tuple[str, ...]:
        return ("Crmsync_Id__c", "Tags__c")

    def _stage_name(self, body: Mapping[str, Any]) -> str | None:
        stage = body.get("stage")
        if stage is None:
            return None
        if not isinstance(stage, dict):
            raise _failure("stage", "must be an object with an id or a name")
        value = stage.get("id") or stage.get("name")
        if value not in self.stages:
            raise self._sf_error(
                f"bad value for restricted picklist field: {value}",
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                ["StageName"],
            )
        return str(value)

    def _fields(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Unified body -> Salesforce fields (only those present in the body)."""
        fields: dict[str, Any] = {}
        if "name" in body:
            fields["Name"] = _text(body, "name")
        if "description" in body:
            fields["Description"] = _text(body, "description")
        if "amount" in body:
            fields["Amount"] = _amount(body)
        if "currency" in body:
            fields["CurrencyIsoCode"] = self._currency(body.get("currency"))
        if "close_date" in body:
            value = body["close_date"]
            fields["CloseDate"] = (
                None if value is None else parse_datetime(value, "close_date").date().isoformat()
            )
        if "stage" in body:
            fields["StageName"] = self._stage_name(body)
        if "owner" in body:
            fields["OwnerId"] = _ref_id(body, "owner")
            self.require_ref("users", fields["OwnerId"], "OwnerId")
        if "account" in body:
            fields["AccountId"] = _ref_id(body, "account")
            self.require_ref("accounts", fields["AccountId"], "AccountId")
        fields.update(self.check_custom_fields(body))
        return fields

    def _currency(self, value: Any) -> str:
        if not self.multi_currency:
            raise self.unknown_field_error(["CurrencyIsoCode"])
        if value is None:  # a multi-currency record always has a currency
            value = self.corporate_currency
        if not (isinstance(value, str) and len(value) == 3 and value.isalpha()):
            raise self._sf_error(
                f"bad value for restricted picklist field: {value}",
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                ["CurrencyIsoCode"],
            )
        return value.upper()

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.check_required(body)
        fields = {**self._fields(body), **dict(body.get("remote_data") or {})}
        missing = [f for f in ("StageName", "CloseDate") if not fields.get(f)]
        if missing:
            raise self._sf_error(
                f"Required fields are missing: [{', '.join(missing)}]",
                "REQUIRED_FIELD_MISSING",
                missing,
            )
        opp_id = reference.salesforce_id(self.emulator.id_rng)
        owner = fields.pop("OwnerId", None) or next(iter(self.collection("users")))
        raw = self._new(
            opp_id,
            fields.pop("Name"),
            fields.pop("StageName"),
            fields.pop("CloseDate"),
            owner,
            fields.pop("AccountId", None),
            None,
        )
        raw.update(fields)
        return raw

    def update(self, raw: dict[str, Any], body: Mapping[str, Any]) -> None:
        fields = {**self._fields(body), **dict(body.get("remote_data") or {})}
        for required in ("Name", "StageName", "CloseDate"):
            if required in fields and not fields[required]:
                raise self._sf_error(
                    f"Required fields are missing: [{required}]",
                    "REQUIRED_FIELD_MISSING",
                    [required],
                )
        stage_changed = fields.get("StageName", raw["StageName"]) != raw["StageName"]
        raw.update(fields)
        self._derive_stage(raw, reset_probability=stage_changed and "Probability" not in fields)
        stamp = sf_stamp(self.now())
        raw["LastModifiedDate"] = raw["SystemModstamp"] = stamp

    def unified(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        status = "won" if raw["IsWon"] else "lost" if raw["IsClosed"] else "open"
        return {
            "id": raw["Id"],
            "name": raw["Name"],
            "description": raw.get("Description"),
            "amount": raw.get("Amount"),
            **({"currency": raw["CurrencyIsoCode"]} if "CurrencyIsoCode" in raw else {}),
            "owner": {"id": raw["OwnerId"]},
            "account": {"id": raw["AccountId"]} if raw.get("AccountId") else None,
            "stage": {"id": raw["StageName"], "name": raw["StageName"]},
            "status": status,
            "close_date": date_as_datetime(raw.get("CloseDate")),
            "created_at": iso_ms(parse_stamp(raw["CreatedDate"])),
            "updated_at": iso_ms(parse_stamp(raw["SystemModstamp"])),
            "custom_fields": {k: raw.get(k) for k in self.custom_field_names()},
        }

    def stamps(self, raw: Mapping[str, Any]) -> tuple[dt.datetime, dt.datetime]:
        return parse_stamp(raw["CreatedDate"]), parse_stamp(raw["SystemModstamp"])

    def unified_stage(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        # A picklist value has no id of its own: Truto uses the API name as the id.
        return {"id": raw["ApiName"], "name": raw["MasterLabel"]}

    def filter_value(self, moment: dt.datetime) -> dt.datetime:
        # SOQL date-time literals carry whole seconds (vendors.md §4.1).
        return moment.replace(microsecond=0)

    def unified_account(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": raw["Id"],
            "name": raw["Name"],
            "owner": {"id": raw["OwnerId"]},
            "created_at": iso_ms(parse_stamp(raw["CreatedDate"])),
            "updated_at": iso_ms(parse_stamp(raw["SystemModstamp"])),
        }

    def unified_user(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": raw["Id"],
            "name": raw["Name"],
            "first_name": raw["FirstName"],
            "last_name": raw["LastName"],
            "emails": [{"email": raw["Email"], "is_primary": True}],
            "is_active": raw["IsActive"],
            "created_at": iso_ms(parse_stamp(raw["CreatedDate"])),
            "updated_at": iso_ms(parse_stamp(raw["SystemModstamp"])),
        }


class CapsuleIntegration(Integration):
    """Capsule CRM v2 behind Truto (https://developer.capsulecrm.com/v2/models/opportunity).

    Integer ids, ``party`` and ``milestone`` required upstream (422 otherwise), ``value`` as
    ``{amount, currency}``, ``expectedCloseOn`` a date, stamps with whole seconds. Truto does not
    offer ``updated_at`` filtering for Capsule opportunities: a client has to scan.
    """

    name = "capsule"
    stage_collection = "milestones"
    required = ("name", "stage")
    populated = (
        "id",
        "name",
        "description",
        "amount",
        "currency",
        "owner",
        "account",
        "stage",
        "status",
        "tags",
        "close_date",
        "created_at",
        "updated_at",
        "custom_fields",
    )

    def _next_id(self) -> int:
        self.emulator.capsule_next_id += self.emulator.id_rng.randrange(1, 40)
        return self.emulator.capsule_next_id

    def seed_reference(self, rng: random.Random) -> None:
        for full_name, email in reference.USERS:
            user_id = str(self._next_id())
            self.collection("users")[user_id] = {
                "id": int(user_id),
                "username": email.split("@")[0],
                "name": full_name,
                "status": "ACTIVE",
                "party": {
                    "id": self._next_id(),
                    "emailAddresses": [{"id": self._next_id(), "type": "Work", "address": email}],
                },
            }
        for i, company in enumerate(reference.COMPANIES):
            party_id = str(self._next_id())
            stamp = capsule_stamp(self.now())
            owner = list(self.collection("users").values())[i % len(reference.USERS)]
            self.collection("accounts")[party_id] = {
                "id": int(party_id),
                "type": "organisation",
                "name": company,
                "owner": {"id": owner["id"], "username": owner["username"], "name": owner["name"]},
                "createdAt": stamp,
                "updatedAt": stamp,
            }
        self.collection("milestones").update(
            {
                str(100 + i): {"id": 100 + i, "name": name, "probability": prob, "complete": done}
                for i, (name, prob, done) in enumerate(reference.CAPSULE_MILESTONES)
            }
        )

    def random_opportunity(self, rng: random.Random) -> dict[str, Any]:
        party = rng.choice(list(self.collection("accounts").values()))
        milestone = rng.choice(list(self.collection("milestones").values()))
        close = dt.date(2026, 1, 1) + dt.timedelta(days=rng.randrange(0, 365))
        return self._new(
            f"{party['name']} - {rng.choice(reference.DEAL_WORDS)}",
            milestone,
            party,
            rng.choice(list(self.collection("users").values())),
            float(rng.randrange(1, 400) * 250),
            close.isoformat(),
        )

    def _new(
        self,
        name: str,
        milestone: Mapping[str, Any],
        party: Mapping[str, Any],
        owner: Mapping[str, Any],
        amount: float | None,
        close_date: str | None,
    ) -> dict[str, Any]:
        stamp = capsule_stamp(self.now())
        return {
            "id": self._next_id(),
            "name": name,
            "description": None,
            "party": {"id": party["id"], "type": "organisation", "name": party["name"]},
            "milestone": {"id": milestone["id"], "name": milestone["name"]},
            "value": {"amount": amount, "currency": "USD"},
            "probability": milestone["probability"],
            "expectedCloseOn": close_date,
            "closedOn": None,
            "lostReason": None,
            "owner": {"id": owner["id"], "username": owner["username"], "name": owner["name"]},
            "team": None,
            "durationBasis": "FIXED",
            "duration": None,
            "tags": [],
            "fields": [],
            "createdAt": stamp,
            "updatedAt": stamp,
            "lastContactedAt": None,
        }

    def record_id(self, raw: Mapping[str, Any]) -> str:
        return str(raw["id"])

    def remote_error(self, message: str, fields: list[str]) -> TrutoError:
        remote = {
            "message": "validation failed",
            "errors": [{"message": message, "resource": "opportunity", "field": f} for f in fields],
        }
        return TrutoError(422, message, {"remote_error": remote})

    def custom_field_names(self) -> tuple[str, ...]:
        return ("crmsync ID",)

    def _milestone(self, body: Mapping[str, Any]) -> dict[str, Any]:
        stage = body.get("stage")
        if not isinstance(stage, dict):
            raise _failure("stage", "must be an object with an id or a name")
        for milestone in self.collection("milestones").values():
            if (
                str(stage.get("id")) == str(milestone["id"])
                or stage.get("name") == milestone["name"]
            ):
                return milestone
        raise self.remote_error("milestone is not valid", ["milestone"])

    def _apply(self, raw: dict[str, Any], body: Mapping[str, Any]) -> None:
        if "name" in body:
            raw["name"] = _text(body, "name")
        if "description" in body:
            raw["description"] = _text(body, "description")
        if "amount" in body:
            raw["value"] = {**raw["value"], "amount": _amount(body)}
        if "currency" in body:
            raw["value"] = {**raw["value"], "currency": _text(body, "currency")}
        if "close_date" in body:
            value = body["close_date"]
            raw["expectedCloseOn"] = (
                None if value is None else parse_datetime(value, "close_date").date().isoformat()
            )
        if "stage" in body:
            milestone = self._milestone(body)
            raw["milestone"] = {"id": milestone["id"], "name": milestone["name"]}
            raw["probability"] = milestone["probability"]
            raw["closedOn"] = self.now().date().isoformat() if milestone["complete"] else None
        if "account" in body:
            raw["party"] = self._party(_ref_id(body, "account"))
        if "tags" in body:
            raw["tags"] = [{"id": t.get("id"), "name": t.get("name")} for t in body["tags"] or []]
        custom = self.check_custom_fields(body)
        if custom:
            kept = [f for f in raw["fields"] if f["definition"]["name"] not in custom]
            raw["fields"] = kept + [
                {
                    "id": self.emulator.id_rng.randrange(10**6),
                    "value": value,
                    "definition": {"id": 900, "name": key},
                }
                for key, value in custom.items()
            ]
        raw.update(dict(body.get("remote_data") or {}))

    def _party(self, ref: str | None) -> dict[str, Any]:
        if ref is None or ref not in self.collection("accounts"):
            raise self.remote_error("party is not valid", ["party"])
        party = self.collection("accounts")[ref]
        return {"id": party["id"], "type": "organisation", "name": party["name"]}

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.check_required(body)
        if _ref_id(body, "account") is None:
            raise self.remote_error("party is required", ["party"])
        milestone = self._milestone(body)
        party = self.collection("accounts").get(str(_ref_id(body, "account")))
        if party is None:
            raise self.remote_error("party is not valid", ["party"])
        owner = next(iter(self.collection("users").values()))
        raw = self._new(str(body["name"]), milestone, party, owner, None, None)
        self._apply(raw, body)
        return raw

    def update(self, raw: dict[str, Any], body: Mapping[str, Any]) -> None:
        self._apply(raw, body)
        raw["updatedAt"] = capsule_stamp(self.now())

    def unified(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        milestone = next(
            m for m in self.collection("milestones").values() if m["id"] == raw["milestone"]["id"]
        )
        status = "open"
        if milestone["complete"]:
            status = "won" if milestone["probability"] == 100 else "lost"
        return {
            "id": str(raw["id"]),
            "name": raw["name"],
            "description": raw.get("description"),
            "amount": raw["value"]["amount"],
            "currency": raw["value"]["currency"],
            "owner": {"id": str(raw["owner"]["id"])} if raw.get("owner") else None,
            "account": {"id": str(raw["party"]["id"])},
            "stage": {"id": str(milestone["id"]), "name": milestone["name"]},
            "status": status,
            "tags": [{"id": t.get("id"), "name": t.get("name")} for t in raw.get("tags", [])],
            "close_date": date_as_datetime(raw.get("expectedCloseOn")),
            "created_at": iso_ms(parse_stamp(raw["createdAt"])),
            "updated_at": iso_ms(parse_stamp(raw["updatedAt"])),
            "custom_fields": {f["definition"]["name"]: f["value"] for f in raw.get("fields", [])},
        }

    def stamps(self, raw: Mapping[str, Any]) -> tuple[dt.datetime, dt.datetime]:
        return parse_stamp(raw["createdAt"]), parse_stamp(raw["updatedAt"])

    def unified_stage(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        return {"id": str(raw["id"]), "name": raw["name"]}

    def unified_account(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": str(raw["id"]),
            "name": raw["name"],
            "owner": {"id": str(raw["owner"]["id"])},
            "created_at": iso_ms(parse_stamp(raw["createdAt"])),
            "updated_at": iso_ms(parse_stamp(raw["updatedAt"])),
        }

    def unified_user(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        first, last = _first_last(raw["name"])
        emails = raw["party"]["emailAddresses"]
        return {
            "id": str(raw["id"]),
            "name": raw["name"],
            "first_name": first,
            "last_name": last,
            "emails": [{"email": e["address"], "is_primary": i == 0} for i, e in enumerate(emails)],
            "is_active": raw["status"] == "ACTIVE",
        }


class CloseIntegration(Integration):
    """Close behind Truto (https://developer.close.com/resources/opportunities/).

    ``lead_id`` and ``user_id`` come from the required ``account`` and ``owner``; ``value`` is in
    cents upstream and in major units in the unified shape; the status can only be chosen through
    ``remote_data.status_id`` (seed 001 offers no unified ``stage`` for Close); new opportunities
    get the first active status. ``date_updated`` has microseconds.
    """

    name = "close"
    stage_collection = "statuses"
    required = ("account", "owner")
    filterable = ("updated_at", "created_at")
    populated = (
        "id",
        "name",
        "description",
        "amount",
        "owner",
        "account",
        "status",
        "last_activity_at",
        "close_date",
        "created_at",
        "updated_at",
        "custom_fields",
    )

    def seed_reference(self, rng: random.Random) -> None:
        org = random_id(rng, "orga_", 43)
        self.emulator.close_org = org
        for full_name, email in reference.USERS:
            user_id = random_id(rng, "user_", 43)
            first, last = _first_last(full_name)
            stamp = close_stamp(self.now())
            self.collection("users")[user_id] = {
                "id": user_id,
                "first_name": first,
                "last_name": last,
                "email": email,
                "image": None,
                "date_created": stamp,
                "date_updated": stamp,
            }
        for company in reference.COMPANIES:
            lead_id = random_id(rng, "lead_", 43)
            stamp = close_stamp(self.now())
            self.collection("accounts")[lead_id] = {
                "id": lead_id,
                "display_name": company,
                "name": company,
                "organization_id": org,
                "date_created": stamp,
                "date_updated": stamp,
            }
        for label, kind in reference.CLOSE_STATUSES:
            status_id = random_id(rng, "stat_", 43)
            self.collection("statuses")[status_id] = {"id": status_id, "label": label, "type": kind}

    def random_opportunity(self, rng: random.Random) -> dict[str, Any]:
        lead = rng.choice(list(self.collection("accounts").values()))
        status = rng.choice(list(self.collection("statuses").values()))
        raw = self._new(lead, rng.choice(list(self.collection("users").values())), status)
        raw["value"] = rng.randrange(1, 500) * 50_000
        raw["value_formatted"] = f"${raw['value'] / 100:,.0f}"
        raw["note"] = rng.choice(reference.DEAL_WORDS)
        return raw

    def _new(
        self, lead: Mapping[str, Any], user: Mapping[str, Any], status: Mapping[str, Any]
    ) -> dict[str, Any]:
        opp_id = random_id(self.emulator.id_rng, "oppo_", 43)
        stamp = close_stamp(self.now())
        user_name = f"{user['first_name']} {user['last_name']}"
        raw: dict[str, Any] = {
            "id": opp_id,
            "organization_id": self.emulator.close_org,
            "lead_id": lead["id"],
            "lead_name": lead["display_name"],
            "contact_id": None,
            "user_id": user["id"],
            "user_name": user_name,
            "note": "",
            "value": None,
            "value_period": "one_time",
            "value_currency": "USD",
            "value_formatted": "",
            "confidence": 0,
            "date_won": None,
            "date_created": stamp,
            "date_updated": stamp,
            "created_by": user["id"],
            "updated_by": user["id"],
        }
        self._set_status(raw, status)
        for cf_id, _, _ in reference.CLOSE_CUSTOM_FIELDS:
            raw[f"custom.{cf_id}"] = None
        return raw

    def _set_status(self, raw: dict[str, Any], status: Mapping[str, Any]) -> None:
        raw.update(
            status_id=status["id"],
            status_label=status["label"],
            status_type=status["type"],
            status_display_name=status["label"],
            pipeline_name=reference.CLOSE_PIPELINE,
        )
        if status["type"] == "won" and not raw.get("date_won"):
            raw["date_won"] = self.now().date().isoformat()

    def record_id(self, raw: Mapping[str, Any]) -> str:
        return str(raw["id"])

    def remote_error(self, message: str, fields: list[str]) -> TrutoError:
        remote = {"errors": [], "field-errors": {f: message for f in fields}}
        return TrutoError(400, message, {"remote_error": remote})

    def custom_field_names(self) -> tuple[str, ...]:
        return tuple(cf_id for cf_id, _, _ in reference.CLOSE_CUSTOM_FIELDS)

    def _apply(self, raw: dict[str, Any], body: Mapping[str, Any]) -> None:
        if "description" in body:
            raw["note"] = _text(body, "description") or ""
        if "name" in body:
            _text(body, "name")  # Close opportunities have no name: validated, then dropped.
        if "amount" in body:
            amount = _amount(body)
            raw["value"] = None if amount is None else round(amount * 100)
            raw["value_formatted"] = "" if amount is None else f"${amount:,.0f}"
        if "close_date" in body:
            value = body["close_date"]
            raw["date_won"] = (
                None if value is None else parse_datetime(value, "close_date").date().isoformat()
            )
        if "created_at" in body:
            raw["date_created"] = close_stamp(parse_datetime(body["created_at"], "created_at"))
        self._apply_refs(raw, body)
        for key, value in self.check_custom_fields(body).items():
            raw[f"custom.{key}"] = value
        remote = dict(body.get("remote_data") or {})
        if "status_id" in remote:
            status = self.collection("statuses").get(str(remote.pop("status_id")))
            if status is None:
                raise self.remote_error("Invalid status_id", ["status_id"])
            self._set_status(raw, status)
        raw.update(remote)

    def _apply_refs(self, raw: dict[str, Any], body: Mapping[str, Any]) -> None:
        if "account" in body:
            lead_id = _ref_id(body, "account")
            if lead_id not in self.collection("accounts"):
                raise self.remote_error(f"Invalid lead_id: {lead_id}", ["lead_id"])
            raw["lead_id"] = lead_id
            raw["lead_name"] = self.collection("accounts")[lead_id]["display_name"]
        if "owner" in body:
            user_id = _ref_id(body, "owner")
            user = self.collection("users").get(str(user_id))
            if user is None:
                raise self.remote_error(f"Invalid user_id: {user_id}", ["user_id"])
            raw["user_id"] = user["id"]
            raw["user_name"] = f"{user['first_name']} {user['last_name']}"

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.check_required(body)
        lead = self.collection("accounts").get(str(_ref_id(body, "account")))
        user = self.collection("users").get(str(_ref_id(body, "owner")))
        if lead is None:
            raise self.remote_error("Invalid lead_id", ["lead_id"])
        if user is None:
            raise self.remote_error("Invalid user_id", ["user_id"])
        first_active = next(
            s for s in self.collection("statuses").values() if s["type"] == "active"
        )
        raw = self._new(lead, user, first_active)
        self._apply(raw, body)
        return raw

    def update(self, raw: dict[str, Any], body: Mapping[str, Any]) -> None:
        self._apply(raw, body)
        raw["date_updated"] = close_stamp(self.now())

    def unified(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        status = "open" if raw["status_type"] == "active" else raw["status_type"]
        updated = iso_ms(parse_stamp(raw["date_updated"]))
        value = raw.get("value")
        return {
            "id": raw["id"],
            "name": raw.get("lead_name"),
            "description": raw.get("note") or None,
            "amount": None if value is None else value / 100,
            "owner": {"id": raw["user_id"]},
            "account": {"id": raw["lead_id"]},
            "status": status,
            "last_activity_at": updated,
            "close_date": date_as_datetime(raw.get("date_won")),
            "created_at": iso_ms(parse_stamp(raw["date_created"])),
            "updated_at": updated,
            "custom_fields": {k: raw.get(f"custom.{k}") for k in self.custom_field_names()},
        }

    def stamps(self, raw: Mapping[str, Any]) -> tuple[dt.datetime, dt.datetime]:
        return parse_stamp(raw["date_created"]), parse_stamp(raw["date_updated"])

    def unified_stage(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        return {"id": raw["id"], "name": raw["label"]}

    def unified_account(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": raw["id"],
            "name": raw["display_name"],
            "created_at": iso_ms(parse_stamp(raw["date_created"])),
            "updated_at": iso_ms(parse_stamp(raw["date_updated"])),
        }

    def unified_user(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": raw["id"],
            "name": f"{raw['first_name']} {raw['last_name']}",
            "first_name": raw["first_name"],
            "last_name": raw["last_name"],
            "emails": [{"email": raw["email"], "is_primary": True}],
            "is_active": True,
            "created_at": iso_ms(parse_stamp(raw["date_created"])),
            "updated_at": iso_ms(parse_stamp(raw["date_updated"])),
        }


INTEGRATIONS: tuple[type[Integration], ...] = (
    SalesforceIntegration,
    CapsuleIntegration,
    CloseIntegration,
)


# -- the emulator ---------------------------------------------------------------------------
class TrutoEmulator(Emulator):
    """Truto's unified CRM API with Salesforce, Capsule and Close integrated accounts."""

    vendor = "truto"
    prefix = "/unified/crm"
    default_rate = 10.0
    default_burst = 20.0

    integrations: dict[str, Integration]
    by_account: dict[str, Integration]
    id_rng: random.Random
    capsule_next_id: int
    close_org: str
    _idempotency: dict[tuple[str, str], tuple[str, int, bytes]]

    # -- state ---------------------------------------------------------------------------
    def reset_state(self, *, seed: int, opportunities: int) -> None:
        self.collections = {}
        self._idempotency = {}
        self.id_rng = random.Random(seed)
        self.capsule_next_id = 11_000_000
        self.close_org = ""
        self.integrations = {cls.name: cls(self) for cls in INTEGRATIONS}
        self.by_account = {i.account_id: i for i in self.integrations.values()}
        for integration in self.integrations.values():
            integration.seed_reference(random.Random(f"truto-{integration.name}-{seed}"))
        salesforce = self.integrations["salesforce"]
        assert isinstance(salesforce, SalesforceIntegration)
        salesforce.seed_shared_deals(seed)
        self.add_opportunities(opportunities, seed)

    def add_opportunities(self, count: int, seed: int) -> None:
        """Random deals, three in five to Salesforce, one each to Capsule and Close."""
        existing = sum(len(i.collection("opportunities")) for i in self.integrations.values())
        rng = random.Random(f"truto-opportunities-{seed}-{existing}")
        order = ("salesforce", "salesforce", "salesforce", "capsule", "close")
        for n in range(count):
            integration = self.integrations[order[n % len(order)]]
            raw = integration.random_opportunity(rng)
            integration.collection("opportunities")[integration.record_id(raw)] = raw

    # -- base hooks ----------------------------------------------------------------------
    def authenticate(self, request: Request) -> Response | None:
        if request.headers.get("authorization") == f"Bearer {TOKEN}":
            return None
        return error_response(401, "Invalid or missing API token")

    def rate_limited_response(self, retry_in: float) -> Response:
        return error_response(429, "Rate limit exceeded. Please try again later.")

    def rate_limit_key(self, request: Request) -> str:
        return request.query_params.get("integrated_account_id", "")

    def rate_limit_headers(self, remaining: float, reset_in: float) -> dict[str, str]:
        return {
            "ratelimit-limit": str(int(self.rate_limit.burst)),
            "ratelimit-remaining": str(max(0, math.floor(remaining))),
            "ratelimit-reset": str(max(1, math.ceil(reset_in))),
        }

    def vendor_routes(self) -> list[BaseRoute]:
        return [
            Route("/opportunities", self._endpoint(self._opportunities), methods=["GET", "POST"]),
            Route("/opportunities/meta/{method}", self._endpoint(self._meta), methods=["GET"]),
            Route(
                "/opportunities/{id}",
                self._endpoint(self._opportunity),
                methods=["GET", "PATCH", "DELETE"],
            ),
            Route("/accounts", self._endpoint(self._reference_list("accounts")), methods=["GET"]),
            Route(
                "/accounts/{id}", self._endpoint(self._reference_one("accounts")), methods=["GET"]
            ),
            Route("/users", self._endpoint(self._reference_list("users")), methods=["GET"]),
            Route("/users/{id}", self._endpoint(self._reference_one("users")), methods=["GET"]),
            Route("/stages", self._endpoint(self._reference_list("stages")), methods=["GET"]),
        ]

    # -- plumbing ------------------------------------------------------------------------
    def _endpoint(self, handler: Callable[[Request, Integration], Any]) -> Callable[[Request], Any]:
        """Resolve ``integrated_account_id`` and turn :class:`TrutoError` into the envelope."""

        async def endpoint(request: Request) -> Response:
            try:
                integration = self._integration(request)
                response: Response = await handler(request, integration)
            except TrutoError as error:
                return error.response()
            return response

        return endpoint

    def _integration(self, request: Request) -> Integration:
        account_id = request.query_params.get("integrated_account_id")
        if not account_id:
            raise TrutoError(
                400,
                "integrated_account_id is required",
                {"failures": [{"field": "integrated_account_id", "message": "is required"}]},
            )
        integration = self.by_account.get(account_id)
        if integration is None:
            raise TrutoError(404, f"Integrated account {account_id} not found")
        return integration

    # -- opportunities -------------------------------------------------------------------
    async def _opportunities(self, request: Request, integration: Integration) -> Response:
        if request.method == "POST":
            return await self._idempotent(request, integration, self._create)
        return self._list_opportunities(request, integration)

    async def _opportunity(self, request: Request, integration: Integration) -> Response:
        record_id = request.path_params["id"]
        if request.method == "PATCH":
            return await self._idempotent(request, integration, self._update)
        raw = self._find(integration, record_id)
        if request.method == "DELETE":
            del integration.collection("opportunities")[record_id]
            return JSONResponse({"id": record_id})
        return JSONResponse(self._shape(integration, "opportunities", raw, request))

    def _find(self, integration: Integration, record_id: str) -> dict[str, Any]:
        raw = integration.collection("opportunities").get(record_id)
        if raw is None:
            raise TrutoError(404, f"Opportunity {record_id} not found")
        return raw

    async def _create(
        self, request: Request, integration: Integration, body: dict[str, Any]
    ) -> Response:
        _check_formats(request)
        raw = integration.create(body)
        integration.collection("opportunities")[integration.record_id(raw)] = raw
        return JSONResponse(self._shape(integration, "opportunities", raw, request), 201)

    async def _update(
        self, request: Request, integration: Integration, body: dict[str, Any]
    ) -> Response:
        _check_formats(request)
        raw = self._find(integration, request.path_params["id"])
        draft = json.loads(json.dumps(raw))  # a failed update leaves the record untouched
        integration.update(draft, body)
        raw.clear()
        raw.update(draft)
        return JSONResponse(self._shape(integration, "opportunities", raw, request))

    async def _idempotent(
        self,
        request: Request,
        integration: Integration,
        handler: Callable[[Request, Integration, dict[str, Any]], Any],
    ) -> Response:
        """Run a write once per ``Idempotency-Key``; replay its first 2xx answer after that."""
        body = await _body(request)
        key = request.headers.get("idempotency-key")
        fingerprint = hashlib.sha256(
            f"{request.method} {request.url.path} {json.dumps(body, sort_keys=True)}".encode()
        ).hexdigest()
        if key:
            stored = self._idempotency.get((integration.name, key))
            if stored is not None:
                if stored[0] != fingerprint:
                    raise TrutoError(
                        422,
                        "Idempotency-Key was already used with a different request",
                        {"idempotency_key": key},
                    )
                return Response(stored[2], stored[1], media_type="application/json")
        response: Response = await handler(request, integration, body)
        if key and 200 <= response.status_code < 300:
            self._idempotency[(integration.name, key)] = (
                fingerprint,
                response.status_code,
                bytes(response.body),
            )
        return response

    def _list_opportunities(self, request: Request, integration: Integration) -> Response:
        limit = _limit(request)
        _check_formats(request)
        query = self._list_query(request, integration)
        rows = []
        for raw in integration.collection("opportunities").values():
            created, updated = integration.stamps(raw)
            if _matches(integration, query["filters"], created, updated):
                stamp = updated if query["mode"] == "updated" else created
                rows.append(((stamp, integration.record_id(raw)), raw))
        rows.sort(key=lambda row: row[0])
        if query["after"] is not None:
            after = (parse_stamp(query["after"][0]), query["after"][1])
            rows = [row for row in rows if row[0] > after]
        page, more = rows[:limit], len(rows) > limit
        next_cursor = None
        if more:
            last_stamp, last_id = page[-1][0]
            next_cursor = _encode_cursor(
                {**query, "after": [last_stamp.isoformat(), last_id], "ia": integration.account_id}
            )
        result = [self._shape(integration, "opportunities", raw, request) for _, raw in page]
        return _list_response(result, next_cursor)

    def _list_query(self, request: Request, integration: Integration) -> dict[str, Any]:
        """Filters and ordering from the request, or from the cursor that carries them."""
        cursor = request.query_params.get("next_cursor")
        if cursor:
            query = _decode_cursor(cursor)
            if query.get("ia") != integration.account_id or "filters" not in query:
                raise TrutoError(400, "next_cursor is not valid for this request")
            return query
        filters: dict[str, dict[str, str]] = {}
        for name, value in request.query_params.multi_items():
            if name in COMMON_PARAMS:
                continue
            field, operator = _filter_name(name)
            if field not in integration.filterable or operator not in OPERATORS:
                raise TrutoError(
                    400,
                    f"Query parameter {name} is not supported for {integration.name} opportunities",
                    {"supported": sorted(_query_schema(integration))},
                )
            filters.setdefault(field, {})[operator] = parse_datetime(value, name).isoformat()
        mode = "updated" if "updated_at" in filters else "created"
        return {"filters": filters, "mode": mode, "after": None}

    async def _meta(self, request: Request, integration: Integration) -> Response:
        method = request.path_params["method"]
        if method not in {"list", "get", "create", "update", "delete"}:
            raise TrutoError(404, f"Method {method} not found for opportunities")
        body_fields = {
            f: {"type": "object" if f in {"owner", "account", "stage"} else "string"}
            for f in integration.populated
            if f not in {"id", "status", "updated_at"}
        }
        return JSONResponse(
            {
                "method": method,
                "schema": {"type": "object", "properties": {f: {} for f in integration.populated}},
                "documentation_link": "https://truto.one/docs/api-reference/unified-crm-api/opportunities",
                "response_mapping": None,
                "query_schema": _query_schema(integration) if method == "list" else {},
                "request_body_schema": (
                    {
                        "type": "object",
                        "properties": body_fields,
                        "required": list(integration.required),
                    }
                    if method in {"create", "update"}
                    else {}
                ),
                "default_query": {},
                "default_body": {},
            }
        )

    # -- accounts and users --------------------------------------------------------------
    def _reference_list(self, kind: str) -> Callable[[Request, Integration], Any]:
        async def handler(request: Request, integration: Integration) -> Response:
            limit = _limit(request)
            _check_formats(request)
            items = list(integration.reference_collection(kind).values())
            start = 0
            if cursor := request.query_params.get("next_cursor"):
                start = int(_decode_cursor(cursor).get("offset", 0))
            page = items[start : start + limit]
            more = start + limit < len(items)
            next_cursor = _encode_cursor({"offset": start + limit}) if more else None
            result = [self._shape(integration, kind, raw, request) for raw in page]
            return _list_response(result, next_cursor)

        return handler

    def _reference_one(self, kind: str) -> Callable[[Request, Integration], Any]:
        async def handler(request: Request, integration: Integration) -> Response:
            raw = integration.reference_collection(kind).get(request.path_params["id"])
            if raw is None:
                raise TrutoError(404, f"{kind[:-1].capitalize()} not found")
            return JSONResponse(self._shape(integration, kind, raw, request))

        return handler

    # -- response formats ----------------------------------------------------------------
    def _shape(
        self, integration: Integration, kind: str, raw: Mapping[str, Any], request: Request
    ) -> dict[str, Any]:
        """``unified`` / ``raw`` / ``normalized``, minus excluded fields and ``remote_data``."""
        fmt, ignore_remote, excluded = _check_formats(request)
        mapper = {
            "opportunities": integration.unified,
            "accounts": integration.unified_account,
            "users": integration.unified_user,
            "stages": integration.unified_stage,
        }[kind]
        if fmt == "raw":
            out = json.loads(json.dumps(raw))
        elif fmt == "normalized":
            unified = mapper(raw)
            names: Iterable[str] = UNIFIED_FIELDS if kind == "opportunities" else unified
            out = {name: unified.get(name) for name in names}
        else:
            out = mapper(raw)
            if not ignore_remote:
                out["remote_data"] = json.loads(json.dumps(raw))
        for name in excluded:
            out.pop(name, None)
        return dict(out)


# -- helpers ----------------------------------------------------------------------------------
async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except json.JSONDecodeError as exc:
        raise TrutoError(400, f"Request body is not valid JSON: {exc.msg}") from exc
    if not isinstance(body, dict):
        raise TrutoError(400, "Request body must be a JSON object")
    if not isinstance(body.get("remote_data") or {}, dict):
        raise _failure("remote_data", "must be an object")
    return body


def _limit(request: Request) -> int:
    value = request.query_params.get("limit")
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise _failure("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return int(value)


def _check_formats(request: Request) -> tuple[str, bool, list[str]]:
    params = request.query_params
    fmt = params.get("truto_response_format", "unified")
    if fmt not in RESPONSE_FORMATS:
        raise _failure("truto_response_format", f"must be one of {', '.join(RESPONSE_FORMATS)}")
    ignore = params.get("truto_ignore_remote_data", "false").lower()
    if ignore not in {"true", "false", "1", "0"}:
        raise _failure("truto_ignore_remote_data", "must be a boolean")
    excluded = params.getlist("truto_exclude_fields[]")
    for value in params.getlist("truto_exclude_fields"):
        excluded += [v.strip() for v in value.split(",") if v.strip()]
    return fmt, ignore in {"true", "1"}, excluded


def _filter_name(name: str) -> tuple[str, str]:
    match = _BRACKET.match(name)
    return (match.group(1), match.group(2)) if match else (name, "")


def _query_schema(integration: Integration) -> dict[str, Any]:
    return {
        field: {
            "type": "string",
            "format": "date-time",
            "description": f"Filter on {field} with the {', '.join(OPERATORS)} operators",
            "operators": list(OPERATORS),
        }
        for field in integration.filterable
    }


def _matches(
    integration: Integration,
    filters: Mapping[str, Mapping[str, str]],
    created: dt.datetime,
    updated: dt.datetime,
) -> bool:
    values = {"created_at": created, "updated_at": updated}
    for field, operators in filters.items():
        actual = values[field]
        for operator, text in operators.items():
            bound = integration.filter_value(parse_stamp(text))
            if not _compare(operator, actual, bound):
                return False
    return True


def _compare(operator: str, actual: dt.datetime, bound: dt.datetime) -> bool:
    if operator == "gt":
        return actual > bound
    if operator == "gte":
        return actual >= bound
    if operator == "lt":
        return actual < bound
    return actual <= bound


def _encode_cursor(state: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError) as exc:
        raise TrutoError(400, "next_cursor is not valid") from exc
    if not isinstance(state, dict):
        raise TrutoError(400, "next_cursor is not valid")
    return state


def _list_response(result: list[dict[str, Any]], next_cursor: str | None) -> JSONResponse:
    return JSONResponse(
        {
            "result": result,
            "next_cursor": next_cursor,
            "prev_cursor": None,
            "result_count": len(result),
        }
    )
