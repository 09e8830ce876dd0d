"""The Salesforce emulator's state and its write rules (derived fields, deletes; the field
checks of a written body are in ``validation``).

The API's rules are in the package docstring (``sync.emulators.salesforce``).
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from sync.emulators import reference
from sync.emulators.base import Emulator, Table, tables
from sync.emulators.salesforce.common import (
    ACCOUNT,
    CORPORATE_CURRENCY,
    CURRENCIES,
    CURRENCY_TYPE,
    DAILY_API_LIMIT,
    EXTERNAL_ID,
    OPPORTUNITY,
    ORG_ID,
    ORGANIZATION,
    PREFIXES,
    SESSION_SECONDS,
    STAGE,
    STAGE_DEFAULTS,
    USER,
    Field,
    SalesforceError,
    make_id,
    normalise_id,
    truncate_ms,
)
from sync.emulators.salesforce.validation import clean

Row = dict[str, Any]


class SalesforceData(Emulator):
    """State: reference objects, opportunities (deleted ones stay, ``IsDeleted``), the
    delete log, the org and its currencies."""

    multi_currency = False

    def reset_state(self, *, seed: int, opportunities: int) -> None:
        self.multi_currency = False
        self.sessions: dict[str, dt.datetime] = {}
        self.session_seconds = SESSION_SECONDS
        self.api_limit = DAILY_API_LIMIT
        self.api_usage: list[tuple[dt.datetime, int]] = []  # (minute, requests) buckets
        self.collections = dict(
            tables("opportunities", "accounts", "users", "stages", "currencies")
        )
        self.deleted_log: list[tuple[str, dt.datetime]] = []
        #: Crmsync_Id__c value -> ids holding it (an External ID field is indexed)
        self.external_index: dict[str, set[str]] = {}
        self.purged_before: dt.datetime | None = None
        self.id_rng = random.Random(f"salesforce-{seed}")
        self._counters = dict.fromkeys(PREFIXES, 0)
        self.organization: Row = {
            "Id": ORG_ID,
            "Name": "crmsync Emulator Org",
            "DefaultCurrencyIsoCode": CORPORATE_CURRENCY,
            "OrganizationType": "Enterprise Edition",
            "IsSandbox": False,
        }
        self._seed_reference()
        self.add_opportunities(opportunities, seed)

    # -- tables ------------------------------------------------------------------------------
    @property
    def opportunities(self) -> Table:
        table = self.collections["opportunities"]
        assert isinstance(table, Table)
        return table

    def table(self, name: str) -> dict[str, Row]:
        return self.collections[name]

    def schema(self, source: str) -> tuple[dict[str, Field], dict[str, Row]]:
        """(schema, rows) of a queryable object; INVALID_TYPE for the others."""
        if source.lower() == "opportunity":
            schema = dict(OPPORTUNITY)
            if not self.multi_currency:
                schema.pop("CurrencyIsoCode")
            return schema, self.opportunities
        known: dict[str, tuple[dict[str, Field], dict[str, Row]]] = {
            "account": (ACCOUNT, self.table("accounts")),
            "user": (USER, self.table("users")),
            "opportunitystage": (STAGE, self.table("stages")),
            "organization": (ORGANIZATION, {self.org_id: self.organization}),
        }
        if self.multi_currency:
            known["currencytype"] = (CURRENCY_TYPE, self.table("currencies"))
        if source.lower() not in known:
            raise SalesforceError(
                400,
                "INVALID_TYPE",
                f"sObject type '{source}' is not supported. If you are attempting to use a "
                "custom object, be sure to append the '__c' after the entity name.",
            )
        return known[source.lower()]

    def new_id(self, object_type: str) -> str:
        self._counters[object_type] += 1
        return make_id(object_type, self._counters[object_type] + 1000)

    def now(self) -> dt.datetime:
        return truncate_ms(self.clock.now())

    @property
    def org_id(self) -> str:
        return str(self.organization["Id"])

    @property
    def running_user(self) -> str:
        return next(iter(self.table("users")))

    # -- seeding -----------------------------------------------------------------------------
    def _seed_reference(self) -> None:
        now = self.now()
        for name, email in reference.USERS:
            first, last = name.split(" ", 1)
            user_id = self.new_id("User")
            self.table("users")[user_id] = {
                "Id": user_id, "Name": name, "FirstName": first, "LastName": last,
                "Email": email, "Username": email, "IsActive": True, "SystemModstamp": now,
            }  # fmt: skip
        for company in reference.COMPANIES:
            account_id = self.new_id("Account")
            self.table("accounts")[account_id] = {
                "Id": account_id, "IsDeleted": False, "Name": company, "CreatedDate": now,
                "LastModifiedDate": now, "SystemModstamp": now,
            }  # fmt: skip
        for order, (name, closed, won) in enumerate(reference.SALESFORCE_STAGES, 1):
            probability, forecast = STAGE_DEFAULTS[name]
            stage_id = self.new_id("OpportunityStage")
            self.table("stages")[stage_id] = {
                "Id": stage_id, "ApiName": name, "MasterLabel": name, "IsActive": True,
                "IsClosed": closed, "IsWon": won, "DefaultProbability": float(probability),
                "ForecastCategoryName": forecast, "SortOrder": float(order),
            }  # fmt: skip
        for code, rate in CURRENCIES:
            currency_id = self.new_id("CurrencyType")
            self.table("currencies")[currency_id] = {
                "Id": currency_id, "IsoCode": code, "ConversionRate": rate,
                "DecimalPlaces": 2.0, "IsActive": True, "IsCorporate": code == CORPORATE_CURRENCY,
            }  # fmt: skip

    def seed_shared_deals(self, seed: int) -> None:
        """Every :func:`reference.shared_deals` deal with its exact id: this org is then the
        one Ruddr's ``salesforceId`` names (a world without Truto's Salesforce account; by
        default the org holds only its own deals, ``POST /_emulator/salesforce``)."""
        accounts = {a["Name"]: a["Id"] for a in self.table("accounts").values()}
        users = {u["Email"]: u["Id"] for u in self.table("users").values()}
        for deal in reference.shared_deals(seed):
            body = {
                "Name": deal.name,
                "StageName": reference.SALESFORCE_STAGES[deal.stage_index][0],
                "CloseDate": deal.close_date.isoformat(),
                "Amount": deal.amount,
                "AccountId": accounts[deal.company],
                "OwnerId": users[deal.owner_email],
            }
            self.create(body, record_id=deal.salesforce_id)

    def add_opportunities(self, count: int, seed: int) -> None:
        rng = random.Random(f"salesforce-opportunities-{seed}-{len(self.opportunities)}")
        accounts = list(self.table("accounts").values())
        users = list(self.table("users"))
        for _ in range(count):
            account = rng.choice(accounts)
            close = dt.date(2026, 1, 1) + dt.timedelta(days=rng.randrange(0, 365))
            body = {
                "Name": f"{account['Name']} - {rng.choice(reference.DEAL_WORDS)}",
                "StageName": rng.choice(reference.SALESFORCE_STAGES)[0],
                "CloseDate": close.isoformat(),
                "Amount": float(rng.randrange(1, 500) * 500),
                "AccountId": account["Id"],
                "OwnerId": rng.choice(users),
            }
            self.create(body)

    def set_multi_currency(self, enabled: bool) -> None:
        """Enabling stamps every opportunity with the corporate currency, as Salesforce does;
        disabling (impossible in a real org) drops the field, for tests."""
        self.multi_currency = enabled
        for row in self.opportunities.values():
            if enabled:
                row.setdefault("CurrencyIsoCode", CORPORATE_CURRENCY)
            else:
                row.pop("CurrencyIsoCode", None)
        self.opportunities.touch()

    # -- writes ------------------------------------------------------------------------------
    def create(self, body: Any, record_id: str | None = None) -> Row:
        values = clean(body, self.schema("Opportunity")[0], self.table)
        missing = [f for f in ("Name", "StageName", "CloseDate") if values.get(f) is None]
        if missing:
            raise SalesforceError(
                400,
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )
        now = self.now()
        row: Row = {name: None for name in self.schema("Opportunity")[0]}
        row.update(
            Id=record_id or self.new_id("Opportunity"), IsDeleted=False,
            OwnerId=self.running_user, CreatedDate=now, CreatedById=self.running_user,
        )  # fmt: skip
        if self.multi_currency:
            row["CurrencyIsoCode"] = CORPORATE_CURRENCY
        row.update(values)
        self._derive(row, stage_changed=True, probability_given="Probability" in values)
        self._stamp(row, now)
        self.opportunities[row["Id"]] = row
        self._index(row)
        return row

    def update(self, record_id: str, body: Any) -> Row:
        row = self.live(record_id)
        values = clean(body, self.schema("Opportunity")[0], self.table)
        for name in ("Name", "StageName", "CloseDate", "OwnerId"):
            if name in values and values[name] is None:
                raise SalesforceError(
                    400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{name}]", [name]
                )
        stage_changed = "StageName" in values and values["StageName"] != row["StageName"]
        row.update(values)
        self._index(row)
        self._derive(row, stage_changed=stage_changed, probability_given="Probability" in values)
        self._stamp(row, self.now())
        return row

    def delete(self, record_id: str) -> None:
        row = self.live(record_id)
        now = self.now()
        row["IsDeleted"] = True
        self._stamp(row, now)
        self.deleted_log.append((row["Id"], now))

    def live(self, record_id: str) -> Row:
        """The opportunity, not deleted: 404 ``NOT_FOUND`` / ``ENTITY_IS_DELETED`` otherwise."""
        full = normalise_id(record_id)
        row = self.opportunities.get(full or "")
        if row is None:
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        if row["IsDeleted"]:
            raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
        return row

    def by_external_id(self, value: str) -> list[Row]:
        held = (self.opportunities.get(i) for i in sorted(self.external_index.get(value, ())))
        return [
            row
            for row in held
            if row is not None and not row["IsDeleted"] and row[EXTERNAL_ID] == value
        ]

    def _index(self, row: Row) -> None:
        if row.get(EXTERNAL_ID):
            self.external_index.setdefault(row[EXTERNAL_ID], set()).add(row["Id"])

    def set_fields(self, collection: str, record_id: str, fields: dict[str, Any]) -> None:
        super().set_fields(collection, record_id, fields)
        if collection == "opportunities":
            self._index(self.opportunities[record_id])

    def _stamp(self, row: Row, now: dt.datetime) -> None:
        row["LastModifiedDate"] = row["SystemModstamp"] = now
        row["LastModifiedById"] = self.running_user

    def _derive(self, row: Row, *, stage_changed: bool, probability_given: bool) -> None:
        stage = next(s for s in self.table("stages").values() if s["ApiName"] == row["StageName"])
        row["IsClosed"], row["IsWon"] = stage["IsClosed"], stage["IsWon"]
        row["ForecastCategoryName"] = stage["ForecastCategoryName"]
        if stage_changed and not probability_given:
            row["Probability"] = stage["DefaultProbability"]
        amount, probability = row["Amount"], row["Probability"]
        row["ExpectedRevenue"] = (
            None if amount is None or probability is None else round(amount * probability / 100, 2)
        )
