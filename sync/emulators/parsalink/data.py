"""The ParsaLink emulator's records: users, accounts, seeded opportunities and rendering.

The API's rules are in the package docstring (``sync.emulators.parsalink``).
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from ulid import ULID

from sync.emulators import reference
from sync.emulators.base import Emulator, tables
from sync.emulators.parsalink.common import (
    CLOSED_STAGES,
    DEMO_EMAIL,
    DEMO_PASSWORD,
    LOSS_REASONS,
    SOURCES,
    STAGE_PROBABILITY,
    STAGES,
    SUMMARY_FIELDS,
    Record,
    stamp,
)
from sync.emulators.state import add, add_random, json_number, seed_epoch, update_known


class ParsaLinkData(Emulator):
    """ParsaLink's workspace: users (with their passwords), accounts and opportunities."""

    full_list_objects: bool
    _rng: random.Random
    _used_refresh: set[str]

    def reset_state(self, *, seed: int, opportunities: int) -> None:
        self._rng = random.Random(f"parsalink-{seed}")
        self._used_refresh = set()
        self._passwords: dict[str, str] = {}
        self.collections = dict(tables("opportunities", "accounts", "users"))
        self.workspace_id = self._new_id("ws_", dt.datetime(2024, 1, 2, tzinfo=dt.UTC))
        self._seed_reference()
        self.add_opportunities(opportunities, seed)

    def _rep_ids(self) -> list[str]:
        return [uid for uid, u in self.collections["users"].items() if u.get("email") != DEMO_EMAIL]

    def add_opportunities(self, count: int, seed: int) -> None:
        now = seed_epoch(self.clock.now())
        add_random(
            self.collections["opportunities"],
            count,
            f"parsalink-opps-{seed}",
            lambda rng: self._random_opportunity(rng, now),
        )

    def set_fields(self, collection: str, record_id: str, fields: dict[str, Any]) -> None:
        record = update_known(self.collections[collection], record_id, fields)
        if "updatedAt" not in fields:
            record["updatedAt"] = stamp(self.clock.now())

    # -- reference data --------------------------------------------------------------------
    def _new_id(self, prefix: str, moment: dt.datetime, rng: random.Random | None = None) -> str:
        """``prefix`` + a ULID whose time part is ``moment`` and random part comes from the seed."""
        millis = int(moment.timestamp() * 1000).to_bytes(6, "big")
        return prefix + str(ULID.from_bytes(millis + (rng or self._rng).randbytes(10)))

    def _seed_reference(self) -> None:
        created = dt.datetime(2024, 1, 2, 9, 0, tzinfo=dt.UTC)
        people = [*reference.USERS, ("Parsa Demo", DEMO_EMAIL)]
        for index, (name, email) in enumerate(people):
            first, _, last = name.partition(" ")
            moment = created + dt.timedelta(minutes=index)
            user = add(
                self.collections["users"],
                {
                    "id": self._new_id("usr_", moment),
                    "email": email,
                    "firstName": first,
                    "lastName": last,
                    "role": "admin" if index == 0 else "member",
                    "isActive": True,
                    "createdAt": stamp(moment),
                },
            )
            self._passwords[user["email"]] = DEMO_PASSWORD
        for index, company in enumerate(reference.COMPANIES):
            moment = created + dt.timedelta(hours=1, minutes=index)
            add(
                self.collections["accounts"],
                {
                    "id": self._new_id("acc_", moment),
                    "name": company,
                    "createdAt": stamp(moment),
                    "updatedAt": stamp(moment),
                },
            )

    def _random_opportunity(self, rng: random.Random, now: dt.datetime) -> Record:
        account = rng.choice(list(self.collections["accounts"].values()))
        stage = rng.choice(STAGES)
        created = now - dt.timedelta(seconds=rng.randrange(3600, 400 * 86400))
        updated = created + (now - created) * rng.random()
        closed = stage in CLOSED_STAGES
        return self._opportunity(
            self._new_id("opp_", created, rng),
            created,
            updated,
            name=f"{account['name']} — {rng.choice(reference.DEAL_WORDS)} {rng.randrange(1, 99)}",
            accountId=account["id"],
            value=rng.randrange(1, 400) * 500,
            stage=stage,
            probability=STAGE_PROBABILITY[stage],
            closeDate=(created.date() + dt.timedelta(days=rng.randrange(14, 365))).isoformat(),
            closedDate=updated.date().isoformat() if closed else None,
            lossReason=rng.choice(LOSS_REASONS) if stage == "closed_lost" else None,
            # sales reps only: the API's own demo user owns no deals (other vendors lack it)
            assignedTo=rng.choice(self._rep_ids()) if rng.random() < 0.9 else None,
            source=rng.choice(SOURCES),
        )

    def _opportunity(
        self, opp_id: str, created: dt.datetime, updated: dt.datetime | None = None, **fields: Any
    ) -> Record:
        record: Record = {
            "id": opp_id,
            "name": None,
            "accountId": None,
            "value": None,
            "stage": "prospecting",
            "probability": 0,
            "closeDate": None,
            "closedDate": None,
            "lossReason": None,
            "assignedTo": None,
            "source": None,
            "contactIds": [],
            "description": None,
            "createdAt": stamp(created),
            "updatedAt": stamp(updated or created),
        }
        record.update(fields)
        return record

    # -- rendering -------------------------------------------------------------------------
    def _render(self, r: Record) -> dict[str, Any]:
        """The full object of seed 003's "Get an Opportunity"."""
        account = self.collections["accounts"][r["accountId"]]
        user = self.collections["users"].get(r["assignedTo"] or "")
        return {
            "id": r["id"],
            "name": r["name"],
            "accountId": r["accountId"],
            "accountName": account["name"],
            "value": json_number(r["value"]),
            "stage": r["stage"],
            "probability": r["probability"],
            "closeDate": r["closeDate"],
            "closedDate": r["closedDate"],
            "lossReason": r["lossReason"],
            "assignedTo": r["assignedTo"],
            "assignedToName": None if user is None else f"{user['firstName']} {user['lastName']}",
            "source": r["source"],
            "contactIds": list(r["contactIds"]),
            "description": r["description"],
            "createdAt": r["createdAt"],
            "updatedAt": r["updatedAt"],
        }

    def _render_summary(self, r: Record) -> dict[str, Any]:
        """The list item of seed 003's "List Opportunities" example."""
        full = self._render(r)
        return full if self.full_list_objects else {k: full[k] for k in SUMMARY_FIELDS}
