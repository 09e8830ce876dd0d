"""The HubSpot emulator's state: the portal, pipelines, owners, companies and deals, the
writes every endpoint shares, and the search index that lags the writes.

The API's rules are in the package docstring (``sync.emulators.hubspot``).
"""

from __future__ import annotations

import copy
import datetime as dt
import random
from typing import Any

from sync.emulators import reference
from sync.emulators.base import Emulator, Table, tables
from sync.emulators.hubspot import properties
from sync.emulators.hubspot.common import (
    DEFAULT_INDEX_LAG,
    HubSpotError,
    PropertyProblem,
    epoch_ms,
    invalid_properties,
    not_found,
    stamp,
)

Deal = dict[str, Any]
ID_PROPERTY = reference.HUBSPOT_ID_PROPERTY


class HubSpotData(Emulator):
    """State and writes; :class:`~sync.emulators.hubspot.app.HubSpotEmulator` adds the HTTP."""

    index_lag: float = DEFAULT_INDEX_LAG

    def reset_state(self, *, seed: int, opportunities: int) -> None:
        made = tables("deals", "companies", "owners")
        self.collections = dict(made)
        self.deals: Table = made["deals"]
        self.pipelines: list[dict[str, Any]] = []
        self.portal_id = 146_000_000 + seed
        self.company_currency = "USD"
        self.additional_currencies: list[str] = []
        self.index: dict[str, Deal] = {}  # what search sees
        # the live deal holding each value of the unique id property, and each deal's value:
        # a create's uniqueness check was a scan of every deal (O(n²) for a load: at 10,000
        # deals, batch creates timed out)
        self.holders: dict[str, str] = {}
        self.held: dict[str, str] = {}
        self.pending: list[tuple[dt.datetime, str, Deal | None]] = []  # not yet indexed
        self._next_id = 20_000_000_000 + seed * 1000
        self._seed_reference(seed)
        self._seed_shared(seed)
        self.add_opportunities(opportunities, seed)

    def add_opportunities(self, count: int, seed: int) -> None:
        """Seeded deals are in the index at once: they predate the emulator's clock."""
        self._add_random(count, seed)
        for _, deal_id, snapshot in self.pending:
            self._index_one(deal_id, snapshot)
        self.pending.clear()

    # -- reference data ---------------------------------------------------------------------
    def _seed_reference(self, seed: int) -> None:
        made = self.clock.now() - dt.timedelta(days=400)
        self.pipelines = [
            _pipeline("default", "Sales Pipeline", 0, reference.HUBSPOT_STAGES, made),
            _pipeline(
                str(self.portal_id * 10 + 1),
                "Renewals",
                1,
                (
                    ("renewaldue", "Renewal Due", 0.5, False),
                    ("renewed", "Renewed", 1.0, True),
                    ("churned", "Churned", 0.0, True),
                ),
                made,
            ),
        ]
        for i, (name, email) in enumerate(reference.USERS):
            first, _, last = name.partition(" ")
            owner_id = str(70_000_000 + seed * 100 + i)
            self.collections["owners"][owner_id] = {
                "id": owner_id,
                "email": email,
                "firstName": first,
                "lastName": last,
                "userId": 9_000_000 + i,
                "userIdIncludingInactive": 9_000_000 + i,
                "type": "PERSON",
                "createdAt": stamp(made),
                "updatedAt": stamp(made),
                "archived": False,
                "teams": [],
            }
        for name in reference.COMPANIES:
            self.new_company({"name": name, "domain": _domain(name)}, made)

    def new_company(self, props: dict[str, str], moment: dt.datetime) -> dict[str, Any]:
        company_id = self.new_id()
        company = {"id": company_id, "props": dict(props), "created": moment, "updated": moment}
        self.collections["companies"][company_id] = company
        return company

    def rename_company(self, company: dict[str, Any], props: dict[str, str]) -> None:
        """A company's properties updated (``name`` among them): its own stamp moves; its
        deals' ``hs_lastmodifieddate`` only with ``rename_touches_deals`` (HubSpot does not
        say, as no vendor does)."""
        now = self.clock.now()
        company["props"].update(props)
        company["updated"] = now
        if self.rename_touches_deals:
            for deal in self.collections["deals"].values():
                if company["id"] in deal["companies"]:
                    deal["updated"] = now
                    self.reindex(deal)

    def new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def _seed_shared(self, seed: int) -> None:
        """The deals Ruddr's ``hubspotId`` names (``reference.shared_deals``)."""
        open_stages = [s for s in reference.HUBSPOT_STAGES if not s[3]]
        owners = {o["email"]: o["id"] for o in self.collections["owners"].values()}
        now = self.clock.now()
        for i, deal in enumerate(reference.shared_deals(seed)):
            if deal.hubspot_id is None:
                continue
            closes = dt.datetime.combine(deal.close_date, dt.time(), dt.UTC)
            props = {
                "dealname": deal.name,
                "pipeline": "default",
                "dealstage": open_stages[deal.stage_index][0],
                "amount": f"{deal.amount:g}",
                "closedate": str(epoch_ms(closes)),
                "hubspot_owner_id": owners[deal.owner_email],
            }
            created = now - dt.timedelta(days=60 - i, hours=i)
            self._store(deal.hubspot_id, props, created, [self.company_named(deal.company)])

    def _add_random(self, count: int, seed: int) -> None:
        rng = random.Random(f"hubspot-{seed}-{len(self.collections['deals'])}")
        companies = list(self.collections["companies"].values())
        owners = list(self.collections["owners"])
        now = self.clock.now()
        for _ in range(count):
            company = rng.choice(companies)
            stage = rng.choice(reference.HUBSPOT_STAGES)
            closes = now + dt.timedelta(days=rng.randrange(-60, 240))
            props = {
                "dealname": f"{company['props']['name']} - {rng.choice(reference.DEAL_WORDS)}",
                "pipeline": "default",
                "dealstage": stage[0],
                "amount": str(rng.randrange(5, 500) * 1000),
                "closedate": str(
                    epoch_ms(closes.replace(hour=0, minute=0, second=0, microsecond=0))
                ),
                "hubspot_owner_id": rng.choice(owners),
            }
            created = now - dt.timedelta(days=rng.randrange(1, 300), seconds=rng.randrange(86400))
            self._store(self.new_id(), props, created, [company["id"]])

    def company_named(self, name: str) -> str:
        companies = self.collections["companies"].values()
        return str(next(c["id"] for c in companies if c["props"]["name"] == name))

    # -- what the property checks ask ---------------------------------------------------------
    def stage(self, pipeline: str, stage_id: str) -> dict[str, Any] | None:
        for candidate in self.pipelines:
            if candidate["id"] == pipeline:
                return next((s for s in candidate["stages"] if s["id"] == stage_id), None)
        return None

    def pipeline_ids(self) -> list[str]:
        return [p["id"] for p in self.pipelines]

    def owner_ids(self) -> set[str]:
        return set(self.collections["owners"])

    def currencies(self) -> list[str]:
        return [self.company_currency, *self.additional_currencies]

    # -- deals ------------------------------------------------------------------------------
    def _store(
        self, deal_id: str, props: dict[str, str], created: dt.datetime, companies: list[str]
    ) -> Deal:
        deal: Deal = {
            "id": deal_id,
            "props": {k: v for k, v in props.items() if v != ""},
            "created": created,
            "updated": created,
            "archived": False,
            "archived_at": None,
            "companies": list(companies),
        }
        self.collections["deals"][deal_id] = deal
        self.reindex(deal)
        return deal

    def find(self, key: str, id_property: str | None = None, *, archived: bool = False) -> Deal:
        """A deal by its id or by a unique property's value (``idProperty``); 404 otherwise.
        ``archived``: only an archived deal is found (``archived=true``)."""
        deal = self.lookup(key, id_property)
        if deal is None or deal["archived"] != archived:
            raise not_found()
        return deal

    def lookup(self, key: str, id_property: str | None) -> Deal | None:
        deals = self.collections["deals"]
        if id_property in (None, "", "hs_object_id"):
            return deals.get(key)
        prop = properties.DEFINITIONS.get(str(id_property))
        if prop is None or not prop.unique:
            raise HubSpotError(
                400,
                f"Property {id_property} is not a unique identifier property",
                "VALIDATION_ERROR",
            )
        if id_property == ID_PROPERTY:
            found = deals.get(self.holders.get(key, ""))
            if found is None or found["archived"] or found["props"].get(ID_PROPERTY) != key:
                return None
            return found
        return next(
            (
                d
                for d in deals.values()
                if not d["archived"] and d["props"].get(str(id_property)) == key
            ),
            None,
        )

    def create_deal(self, values: dict[str, Any], companies: list[str]) -> Deal:
        clean, problems = properties.check(self, values)
        if not clean.get("dealname"):
            problems.append(PropertyProblem("dealname", "REQUIRED", "dealname is required"))
        if problems:
            raise invalid_properties(problems)
        self._unique(clean, None)
        clean.setdefault("pipeline", "default")
        return self._store(self.new_id(), clean, self.clock.now(), companies)

    def update_deal(self, deal: Deal, values: dict[str, Any]) -> Deal:
        clean, problems = properties.check(self, values, current=deal["props"])
        if problems:
            raise invalid_properties(problems)
        self._unique(clean, deal["id"])
        for name, value in clean.items():
            if value == "":
                deal["props"].pop(name, None)
            else:
                deal["props"][name] = value
        deal["updated"] = self.clock.now()  # every accepted write is a modification
        self.reindex(deal)
        return deal

    def archive_deal(self, deal: Deal) -> None:
        now = self.clock.now()
        deal["archived"], deal["archived_at"], deal["updated"] = True, now, now
        self.deals.touch()
        self.reindex(deal)

    def _unique(self, clean: dict[str, str], own_id: str | None) -> None:
        value = clean.get(ID_PROPERTY)
        if not value:
            return
        holder = self.lookup(value, ID_PROPERTY)
        if holder is not None and holder["id"] != own_id:
            raise HubSpotError(
                409,
                f"A deal with {ID_PROPERTY}={value} already exists. Existing ID: {holder['id']}",
                "CONFLICT",
                context={"id": [holder["id"]]},
            )

    def render(
        self, deal: Deal, wanted: list[str] | None, associations: list[str] | None = None
    ) -> dict[str, Any]:
        """``SimplePublicObject`` (``WithAssociations`` when asked for)."""
        props = properties.derived(self, deal, self.company_currency)
        out: dict[str, Any] = {
            "id": deal["id"],
            "properties": properties.project(props, wanted),
            "createdAt": stamp(deal["created"]),
            "updatedAt": stamp(deal["updated"]),
            "archived": deal["archived"],
        }
        if deal["archived"]:
            out["archivedAt"] = stamp(deal["archived_at"])
        if associations and "companies" in associations and deal["companies"]:
            out["associations"] = {
                "companies": {
                    "results": [{"id": c, "type": "deal_to_company"} for c in deal["companies"]]
                }
            }
        return out

    # -- the search index ---------------------------------------------------------------------
    def reindex(self, deal: Deal) -> None:
        """Search sees the write ``index_lag`` seconds later (at once when the lag is 0)."""
        self._hold(deal)
        snapshot = None if deal["archived"] else copy.deepcopy(deal)
        if self.index_lag <= 0:
            self._index_one(deal["id"], snapshot)
        else:
            due = self.clock.peek() + dt.timedelta(seconds=self.index_lag)
            self.pending.append((due, deal["id"], snapshot))

    def _hold(self, deal: Deal) -> None:
        """Keep ``holders`` true after a write: what the deal held before is let go, what it
        holds now (a live deal only) is its own."""
        before = self.held.pop(deal["id"], None)
        if before is not None and self.holders.get(before) == deal["id"]:
            del self.holders[before]
        value = deal["props"].get(ID_PROPERTY)
        if value and not deal["archived"]:
            self.holders[value] = deal["id"]
            self.held[deal["id"]] = value

    def indexed(self) -> list[Deal]:
        """The deals search sees now."""
        now = self.clock.peek()
        due = [entry for entry in self.pending if entry[0] <= now or self.index_lag <= 0]
        self.pending = [entry for entry in self.pending if entry not in due]
        for _, deal_id, snapshot in due:
            self._index_one(deal_id, snapshot)
        return list(self.index.values())

    def _index_one(self, deal_id: str, snapshot: Deal | None) -> None:
        if snapshot is None:
            self.index.pop(deal_id, None)
        else:
            self.index[deal_id] = snapshot

    def set_fields(self, collection: str, record_id: str, fields: dict[str, Any]) -> None:
        """``POST /_emulator/set``: on a deal, ``fields`` are properties set behind the API's
        back (e.g. a stamp); elsewhere, the base's plain update."""
        if collection != "deals":
            super().set_fields(collection, record_id, fields)
            return
        deal = self.collections["deals"][record_id]
        deal["props"].update({k: str(v) for k, v in fields.items()})
        self.deals.touch()
        self.reindex(deal)


def _pipeline(
    pipeline_id: str,
    label: str,
    order: int,
    stages: tuple[tuple[str, str, float, bool], ...],
    made: dt.datetime,
) -> dict[str, Any]:
    at = stamp(made)
    return {
        "id": pipeline_id,
        "label": label,
        "displayOrder": order,
        "archived": False,
        "createdAt": at,
        "updatedAt": at,
        "stages": [
            {
                "id": stage_id,
                "label": stage_label,
                "displayOrder": position,
                "metadata": {"probability": f"{probability:.1f}", "isClosed": str(closed).lower()},
                "archived": False,
                "createdAt": at,
                "updatedAt": at,
                "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
            }
            for position, (stage_id, stage_label, probability, closed) in enumerate(stages)
        ],
    }


def _domain(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum()) + ".example.com"
