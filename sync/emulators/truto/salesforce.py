"""Salesforce behind Truto: ``Opportunity`` objects in Salesforce's own shape, mapped to unified.

The records themselves (their raw shape, the stage defaults) are in ``salesforce_raw``."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from typing import Any, ClassVar

from sync.emulators import reference
from sync.emulators.truto import salesforce_raw as sf
from sync.emulators.truto.common import (
    Integration,
    TrutoError,
    body_amount,
    body_text,
    date_as_datetime,
    iso_ms,
    parse_datetime,
    parse_stamp,
    random_id,
    ref_id,
    sf_stamp,
    validation_failure,
)


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
            self.collection("stages")[stage] = sf.stage(order, stage, closed, won)
        for full_name, email in reference.USERS:
            user_id = random_id(rng, "005", 15)
            self.collection("users")[user_id] = sf.user(
                user_id, full_name, email, sf_stamp(self.now())
            )
        owners = list(self.collection("users"))
        for i, company in enumerate(reference.COMPANIES):
            account_id = random_id(rng, "001", 15)
            owner = owners[i % len(owners)]
            account = sf.account(account_id, company, owner, sf_stamp(self.now()))
            self.collection("accounts")[account_id] = account

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
        raw = sf.opportunity(opp_id, name, stage, close_date, owner, account, amount, stamp)
        if self.multi_currency:
            raw["CurrencyIsoCode"] = self.corporate_currency
        self._derive_stage(raw)
        return raw

    def _derive_stage(self, raw: dict[str, Any], *, reset_probability: bool = True) -> None:
        if raw["StageName"] not in self.stages:  # e.g. a StageName sent in remote_data
            raise sf.error(
                f"bad value for restricted picklist field: {raw['StageName']}",
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                ["StageName"],
            )
        closed, won = self.stages[raw["StageName"]]
        raw["IsClosed"], raw["IsWon"] = closed, won
        raw["ForecastCategoryName"] = sf.FORECAST.get(raw["StageName"], "Pipeline")
        if reset_probability:
            raw["Probability"] = sf.PROBABILITY.get(raw["StageName"], 10)

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
        return sf.error(message, "INVALID_CROSS_REFERENCE_KEY", fields)

    def unknown_field_error(self, fields: list[str]) -> TrutoError:
        message = f"No such column '{fields[0]}' on sobject of type Opportunity"
        return sf.error(message, "INVALID_FIELD", fields)

    def custom_field_names(self) -> tuple[str, ...]:
        return ("Crmsync_Id__c", "Tags__c")

    def _check_lengths(self, fields: Mapping[str, Any]) -> None:
        """Salesforce refuses a text longer than its field, quoting the value's start (its
        own wording: ``Opportunity Name: data value too large: … (max length=120)``)."""
        for name, (length, label) in sf.LENGTHS.items():
            text = fields.get(name)
            if isinstance(text, str) and len(text) > length:
                raise sf.error(
                    f"{label}: data value too large: {text[:40]} (max length={length})",
                    "STRING_TOO_LONG",
                    [name],
                )

    def _stage_name(self, body: Mapping[str, Any]) -> str | None:
        stage = body.get("stage")
        if stage is None:
            return None
        if not isinstance(stage, dict):
            raise validation_failure("stage", "must be an object with an id or a name")
        value = stage.get("id") or stage.get("name")
        if value not in self.stages:
            raise sf.error(
                f"bad value for restricted picklist field: {value}",
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                ["StageName"],
            )
        return str(value)

    def _fields(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Unified body -> Salesforce fields (only those present in the body)."""
        fields: dict[str, Any] = {}
        if "name" in body:
            fields["Name"] = body_text(body, "name")
        if "description" in body:
            fields["Description"] = body_text(body, "description")
        if "amount" in body:
            fields["Amount"] = body_amount(body)
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
            fields["OwnerId"] = ref_id(body, "owner")
            self.require_ref("users", fields["OwnerId"], "OwnerId")
        if "account" in body:
            fields["AccountId"] = ref_id(body, "account")
            self.require_ref("accounts", fields["AccountId"], "AccountId")
        fields.update(self.check_custom_fields(body))
        return fields

    def _currency(self, value: Any) -> str:
        if not self.multi_currency:
            raise self.unknown_field_error(["CurrencyIsoCode"])
        if value is None:  # a multi-currency record always has a currency
            value = self.corporate_currency
        if not (isinstance(value, str) and len(value) == 3 and value.isalpha()):
            raise sf.error(
                f"bad value for restricted picklist field: {value}",
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                ["CurrencyIsoCode"],
            )
        return value.upper()

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.check_required(body)
        fields = {**self._fields(body), **dict(body.get("remote_data") or {})}
        self._check_lengths(fields)
        missing = [f for f in ("StageName", "CloseDate") if not fields.get(f)]
        if missing:
            raise sf.error(
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
                raise sf.error(
                    f"Required fields are missing: [{required}]",
                    "REQUIRED_FIELD_MISSING",
                    [required],
                )
        self._check_lengths(fields)
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

    def update_account(self, raw: dict[str, Any], body: Mapping[str, Any]) -> None:
        """A rename: ``Account.Name`` (string(255), required). The opportunities under it
        show it through their ``AccountId``; whether their ``SystemModstamp`` moves is not
        documented (``rename_touches_deals``)."""
        if "name" in body:
            name = body["name"]
            if not isinstance(name, str) or not name.strip():
                raise sf.error(
                    "Required fields are missing: [Name]", "REQUIRED_FIELD_MISSING", ["Name"]
                )
            if len(name) > 255:
                raise sf.error("Account Name: data value too large", "STRING_TOO_LONG", ["Name"])
            raw["Name"] = name
        stamp = sf_stamp(self.now())
        raw["LastModifiedDate"] = raw["SystemModstamp"] = stamp
        if self.emulator.rename_touches_deals:
            for deal in self.collection("opportunities").values():
                if deal.get("AccountId") == raw["Id"]:
                    deal["LastModifiedDate"] = deal["SystemModstamp"] = stamp

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
