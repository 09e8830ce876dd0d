"""The Close emulator's seeded data: users, pipelines and statuses, leads, custom fields, deals.

The API's rules are in the package docstring (``sync.emulators.close``).
"""

from __future__ import annotations

import datetime as dt
import random
import re
from typing import Any

from sync.emulators import reference
from sync.emulators.base import Emulator
from sync.emulators.close.common import (
    CURRENCY,
    EXTRA_PIPELINE,
    LEAD_STATUSES,
    MULTI_VALUE_FIELDS,
    NOTES,
    TAGS,
    VALUE_PERIODS,
    new_id,
    parse_moment,
)
from sync.emulators.close.listing import (
    StampIndex,
)


class CloseData(Emulator):
    """The in-memory store and its seed; ``CloseEmulator`` adds the API on top."""

    # -- reference data ---------------------------------------------------------------------
    def reset_state(self, *, seed: int, opportunities: int) -> None:
        rng = random.Random(seed)
        self._id_rng = random.Random(f"close-ids-{seed}")
        self.events: list[dict[str, Any]] = []
        self._event_seq = 0
        self._generation = 0  # bumped by every opportunity write: invalidates the indexes
        self._indexes: dict[str, tuple[int, StampIndex]] = {}
        self.organization_id = new_id(rng, "orga_")
        self.organization_name = "Example Inc"
        #: the organization's one currency: every opportunity's ``value_currency``
        self.currency = CURRENCY
        born = dt.datetime(2024, 1, 2, 9, 0, tzinfo=dt.UTC)
        self.collections = {
            "user": {},
            "pipeline": {},
            "status": {},
            "lead_status": {},
            "lead": {},
            "custom_field": {},
            "opportunity": {},
        }
        self._seed_users(rng, born)
        self._seed_pipelines(rng)
        self._seed_leads(rng, born)
        self._seed_custom_fields(born)
        if opportunities:
            self.add_opportunities(opportunities, seed)

    def _seed_users(self, rng: random.Random, born: dt.datetime) -> None:
        for name, email in reference.USERS:
            first, last = name.split(" ", 1)
            uid = new_id(rng, "user_")
            self.collections["user"][uid] = {
                "id": uid,
                "email": email,
                "first_name": first,
                "last_name": last,
                "image": None,
                "date_created": born,
                "date_updated": born,
            }
        self.api_user_id = next(iter(self.collections["user"]))

    def _seed_pipelines(self, rng: random.Random) -> None:
        for name, statuses in (
            (reference.CLOSE_PIPELINE, reference.CLOSE_STATUSES),
            EXTRA_PIPELINE,
        ):
            pid = new_id(rng, "pipe_", 22)
            self.collections["pipeline"][pid] = {"id": pid, "name": name}
            for label, kind in statuses:
                sid = new_id(rng, "stat_")
                self.collections["status"][sid] = {
                    "id": sid,
                    "label": label,
                    "type": kind,
                    "pipeline_id": pid,
                }
        for label in LEAD_STATUSES:
            sid = new_id(rng, "stat_")
            self.collections["lead_status"][sid] = {"id": sid, "label": label}

    def _seed_leads(self, rng: random.Random, born: dt.datetime) -> None:
        status_id = next(iter(self.collections["lead_status"]))
        for name in reference.COMPANIES:
            lid = new_id(rng, "lead_")
            slug = re.sub(r"[^a-z0-9]+", "", name.lower())
            self.collections["lead"][lid] = {
                "id": lid,
                "name": name,
                "description": "",
                "url": f"https://www.{slug}.example.com",
                "status_id": status_id,
                "date_created": born,
                "date_updated": born,
                "created_by": self.api_user_id,
                "updated_by": self.api_user_id,
            }

    def _seed_custom_fields(self, born: dt.datetime) -> None:
        for cf_id, name, kind in reference.CLOSE_CUSTOM_FIELDS:
            self.collections["custom_field"][cf_id] = {
                "id": cf_id,
                "name": name,
                "type": kind,
                "accepts_multiple_values": cf_id in MULTI_VALUE_FIELDS,
                "date_created": born,
                "date_updated": born,
            }

    def add_opportunities(self, count: int, seed: int) -> None:
        rng = random.Random(f"close-opps-{seed}-{len(self.collections['opportunity'])}")
        now = self.clock.now()
        sales = self._pipeline_by_name(reference.CLOSE_PIPELINE)
        statuses = [s for s in self.collections["status"].values() if s["pipeline_id"] == sales]
        leads = [ld for ld in self.collections["lead"].values() if ld["name"]]
        users = list(self.collections["user"])
        for _ in range(count):
            opp = self._random_opportunity(rng, now, statuses, leads, users)
            self.collections["opportunity"][opp["id"]] = opp
        self._generation += 1

    def _random_opportunity(
        self,
        rng: random.Random,
        now: dt.datetime,
        statuses: list[dict[str, Any]],
        leads: list[dict[str, Any]],
        users: list[str],
    ) -> dict[str, Any]:
        status = rng.choice(statuses)
        lead = rng.choice(leads)
        created = now - dt.timedelta(seconds=rng.randrange(86_400, 180 * 86_400))
        updated = created + (now - created) * rng.random()
        confidence = {"won": 100, "lost": 0}.get(status["type"], rng.choice(range(10, 95, 5)))
        date_won = None
        if status["type"] == "won":
            date_won = (updated - dt.timedelta(days=rng.randrange(0, 5))).date()
        elif rng.random() < 0.6:
            date_won = (now + dt.timedelta(days=rng.randrange(7, 200))).date()
        custom: dict[str, Any] = {
            reference.CLOSE_CUSTOM_FIELDS[0][0]: (
                f"{lead['name']} - {rng.choice(reference.DEAL_WORDS)}"
            )
        }
        if rng.random() < 0.4:
            custom[reference.CLOSE_CUSTOM_FIELDS[2][0]] = sorted(rng.sample(TAGS, 2))
        user = rng.choice(users)
        return {
            "id": new_id(rng, "oppo_"),
            "lead_id": lead["id"],
            "status_id": status["id"],
            "user_id": user,
            "contact_id": None,
            "value": rng.randrange(5, 500) * 10_000,
            "value_period": rng.choices(VALUE_PERIODS, weights=(6, 3, 1))[0],
            "confidence": confidence,
            "note": rng.choice(NOTES),
            "date_won": date_won,
            "date_lost": updated if status["type"] == "lost" else None,
            "date_created": created,
            "date_updated": updated,
            "created_by": user,
            "updated_by": user,
            "custom": custom,
        }

    def _pipeline_by_name(self, name: str) -> str:
        return next(
            str(p["id"]) for p in self.collections["pipeline"].values() if p["name"] == name
        )

    def set_fields(self, collection: str, record_id: str, fields: dict[str, Any]) -> None:
        """Set read-only fields; timestamps arrive as ISO strings and are stored as datetimes."""
        parsed = dict(fields)
        for key in ("date_created", "date_updated", "date_lost"):
            if isinstance(parsed.get(key), str):
                parsed[key] = parse_moment(parsed[key], dt.UTC)
        if isinstance(parsed.get("date_won"), str):
            parsed["date_won"] = dt.date.fromisoformat(parsed["date_won"][:10])
        self.collections[collection][record_id].update(parsed)
        self._generation += 1
