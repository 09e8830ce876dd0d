"""The Ruddr emulator's records: seeding, stored opportunities, write stamps and rendering.

The API's rules are in the package docstring (``sync.emulators.ruddr``).
"""

from __future__ import annotations

import datetime as dt
import random
import re
import uuid
from typing import Any

from sync.emulators import reference
from sync.emulators.base import Emulator, tables
from sync.emulators.ruddr.common import (
    DESCRIPTIONS,
    LEAD_SOURCES,
    OPPORTUNITY_TYPES,
    PRACTICES,
    PRIORITIES,
    TAGS,
    WORKSPACE_CURRENCY,
    Record,
    parse_stamp,
    stamp,
)
from sync.emulators.state import add, add_random, json_number, seed_epoch, update_known


class RuddrData(Emulator):
    """Ruddr's workspace: opportunities and the reference records they name."""

    _rng: random.Random

    def reset_state(self, *, seed: int, opportunities: int) -> None:
        self._rng = random.Random(f"ruddr-{seed}")
        self.collections = dict(
            tables(
                "opportunities",
                "companies",
                "clients",
                "members",
                "opportunity-stages",
                "opportunity-pipelines",
                "opportunity-types",
                "opportunity-lead-sources",
                "practices",
                "tags",
                "projects",
            )
        )
        self._seed_reference()
        self._seed_shared_deals(seed)
        self.add_opportunities(opportunities, seed)

    def add_opportunities(self, count: int, seed: int) -> None:
        now = seed_epoch(self.clock.now())
        add_random(
            self.collections["opportunities"],
            count,
            f"ruddr-opps-{seed}",
            lambda rng: self._random_opportunity(rng, now),
        )

    def set_fields(self, collection: str, record_id: str, fields: dict[str, Any]) -> None:
        record = update_known(self.collections[collection], record_id, fields)
        if collection == "opportunities" and "modifiedAt" not in fields:
            self._touch(record)

    # -- reference data --------------------------------------------------------------------
    def _new_id(self, rng: random.Random | None = None) -> str:
        return str(uuid.UUID(int=(rng or self._rng).getrandbits(128), version=4))

    def _seed_reference(self) -> None:
        created = stamp(dt.datetime(2024, 1, 2, 9, 0, tzinfo=dt.UTC))
        for name, email in reference.USERS:
            add(
                self.collections["members"],
                {
                    "id": self._new_id(),
                    "name": name,
                    "email": email,
                    "isActive": True,
                    "createdAt": created,
                },
            )
        for company in reference.COMPANIES:
            client = add(
                self.collections["clients"],
                {"id": self._new_id(), "name": company, "key": slug(company)},
            )
            add(
                self.collections["companies"],
                {
                    "id": self._new_id(),
                    "name": company,
                    "clientId": client["id"],
                    "createdAt": created,
                },
            )
        pipeline = add(
            self.collections["opportunity-pipelines"], {"id": self._new_id(), "name": "Sales"}
        )
        for index, (name, probability, status) in enumerate(reference.RUDDR_STAGES):
            add(
                self.collections["opportunity-stages"],
                {
                    "id": self._new_id(),
                    "name": name,
                    "description": None,
                    "probability": probability,
                    "statusId": status,
                    "isActive": True,
                    "opportunityPipelineId": pipeline["id"],
                    # Distinct stamps so the createdAt-descending list order is stable.
                    "createdAt": stamp(dt.datetime(2024, 1, 2, 9, index, tzinfo=dt.UTC)),
                },
            )
        for collection, names in (
            ("opportunity-types", OPPORTUNITY_TYPES),
            ("opportunity-lead-sources", LEAD_SOURCES),
            ("practices", PRACTICES),
            ("tags", TAGS),
        ):
            for name in names:
                add(self.collections[collection], {"id": self._new_id(), "name": name})

    def _by_name(self, collection: str, key: str, value: str) -> Record:
        return next(r for r in self.collections[collection].values() if r[key] == value)

    def _seed_shared_deals(self, seed: int) -> None:
        """Opportunities linked to Truto's Salesforce deals by the read-only ``salesforceId``."""
        open_stages = [s for s in reference.RUDDR_STAGES if s[2] == "open"]
        now = seed_epoch(self.clock.now())
        for i, deal in enumerate(reference.shared_deals(seed)):
            stage = self._by_name("opportunity-stages", "name", open_stages[deal.stage_index][0])
            created = now - dt.timedelta(days=60 - i, hours=i)
            record = self._opportunity(
                self._new_id(),
                created,
                name=deal.name,
                amount=deal.amount,
                closeDate=deal.close_date.isoformat(),
                companyId=self._by_name("companies", "name", deal.company)["id"],
                ownerId=self._by_name("members", "email", deal.owner_email)["id"],
                opportunityStageId=stage["id"],
                probability=stage["probability"],
                salesforceId=deal.salesforce_id,
                hubspotId=deal.hubspot_id,
            )
            add(self.collections["opportunities"], record)

    def _random_opportunity(self, rng: random.Random, now: dt.datetime) -> Record:
        company = rng.choice(list(self.collections["companies"].values()))
        stage = rng.choice(list(self.collections["opportunity-stages"].values()))
        created = now - dt.timedelta(
            seconds=rng.randrange(3600, 400 * 86400), milliseconds=rng.randrange(1000)
        )
        modified = created + (now - created) * rng.random()
        return self._opportunity(
            self._new_id(rng),
            created,
            modified=modified,
            name=f"{company['name']} - {rng.choice(reference.DEAL_WORDS)} {rng.randrange(1, 99)}",
            companyId=company["id"],
            opportunityStageId=stage["id"],
            probability=stage["probability"],
            amount=float(rng.randrange(1, 400) * 500),
            closeDate=(created.date() + dt.timedelta(days=rng.randrange(14, 365))).isoformat(),
            priorityId=rng.choice((*PRIORITIES, None)),
            description=rng.choice(DESCRIPTIONS),
            ownerId=rng.choice(list(self.collections["members"])) if rng.random() < 0.9 else None,
            opportunityTypeId=rng.choice(list(self.collections["opportunity-types"])),
        )

    def _opportunity(
        self,
        opp_id: str,
        created: dt.datetime,
        modified: dt.datetime | None = None,
        **fields: Any,
    ) -> Record:
        """A stored opportunity: writable fields by id plus server-owned fields."""
        record: Record = {
            "id": opp_id,
            "name": None,
            "companyId": None,
            "opportunityStageId": None,
            "description": None,
            "nextSteps": None,
            "amount": None,
            "isActive": True,
            "probability": 0.0,
            "closeDate": None,
            "priorityId": None,
            "currency": WORKSPACE_CURRENCY,
            "ownerId": None,
            "opportunityLeadSourceId": None,
            "opportunityTypeId": None,
            "tagIds": [],
            "practiceId": None,
            "projects": [],
            "cloudFolderUrl": None,
            "createdAt": stamp(created),
            "openDate": created.date().isoformat(),
            "modifiedAt": stamp(modified or created),
            "timeSpent": 0,
            "salesforceId": None,
            "hubspotId": None,
        }
        record.update(fields)
        return record

    def _touch(self, record: Record) -> None:
        """Stamp a write: strictly later than the previous ``modifiedAt`` at ms precision."""
        now = self.clock.now()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        previous = parse_stamp(record["modifiedAt"])
        record["modifiedAt"] = stamp(max(now, previous + dt.timedelta(milliseconds=1)))

    # -- rendering -------------------------------------------------------------------------
    def _ref(self, collection: str, ref_id: str | None) -> dict[str, Any] | None:
        if ref_id is None:
            return None
        record = self.collections[collection][ref_id]
        return {"id": record["id"], "name": record["name"]}

    def _company_view(self, company: Record) -> dict[str, Any]:
        client = self.collections["clients"].get(company["clientId"] or "")
        return {
            "id": company["id"],
            "name": company["name"],
            "client": None if client is None else dict(client),
        }

    def _render(self, r: Record) -> dict[str, Any]:
        """The full opportunity object of seed 000 (plus ``opportunityPipeline``, §1.2b)."""
        stage = self.collections["opportunity-stages"][r["opportunityStageId"]]
        pipeline = self.collections["opportunity-pipelines"][stage["opportunityPipelineId"]]
        weighted = None if r["amount"] is None else round(r["amount"] * r["probability"], 2)
        return {
            "id": r["id"],
            "name": r["name"],
            "description": r["description"],
            "nextSteps": r["nextSteps"],
            "amount": json_number(r["amount"]),
            "isActive": r["isActive"],
            "probability": json_number(r["probability"]),
            "priorityId": r["priorityId"],
            "createdAt": r["createdAt"],
            "openDate": r["openDate"],
            "closeDate": r["closeDate"],
            "modifiedAt": r["modifiedAt"],
            "currency": r["currency"],
            "cloudFolderUrl": r["cloudFolderUrl"],
            "owner": self._ref("members", r["ownerId"]),
            "opportunityType": self._ref("opportunity-types", r["opportunityTypeId"]),
            "opportunityLeadSource": self._ref(
                "opportunity-lead-sources", r["opportunityLeadSourceId"]
            ),
            "company": self._company_view(self.collections["companies"][r["companyId"]]),
            "practice": self._ref("practices", r["practiceId"]),
            "tags": [self._ref("tags", t) for t in r["tagIds"]],
            "opportunityStage": {
                "id": stage["id"],
                "name": stage["name"],
                "statusId": stage["statusId"],
            },
            "opportunityPipeline": {"id": pipeline["id"], "name": pipeline["name"]},
            "projects": [dict(p) for p in r["projects"]],
            "weightedAmount": json_number(weighted),
            "timeSpent": r["timeSpent"],
            "salesforceId": r["salesforceId"],
            "hubspotId": r["hubspotId"],
        }


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def stage_view(stage: Record) -> dict[str, Any]:
    return {**stage, "probability": json_number(stage["probability"])}
