"""Close behind Truto: ``opportunity`` objects in Close's own shape, mapped to unified."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from typing import Any

from sync.emulators import reference
from sync.emulators.truto.common import (
    Integration,
    TrutoError,
    body_amount,
    body_text,
    close_stamp,
    date_as_datetime,
    first_last,
    iso_ms,
    parse_datetime,
    parse_stamp,
    random_id,
    ref_id,
)


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
            first, last = first_last(full_name)
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
        # the deal's name in the "Opportunity Name" field, as the Close emulator seeds it
        raw[f"custom.{reference.CLOSE_CUSTOM_FIELDS[0][0]}"] = f"{lead['name']} - {raw['note']}"
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
        # Seed 001 lists no unified description (and no name) on Close writes: validated, then
        # dropped, as Truto leaves out what its Close mapping does not write. Close's own
        # ``note`` is written through remote_data.
        for field in ("name", "description"):
            if field in body:
                body_text(body, field)
        if "amount" in body:
            amount = body_amount(body)
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
            lead_id = ref_id(body, "account")
            if lead_id not in self.collection("accounts"):
                raise self.remote_error(f"Invalid lead_id: {lead_id}", ["lead_id"])
            raw["lead_id"] = lead_id
            raw["lead_name"] = self.collection("accounts")[lead_id]["display_name"]
        if "owner" in body:
            user_id = ref_id(body, "owner")
            user = self.collection("users").get(str(user_id))
            if user is None:
                raise self.remote_error(f"Invalid user_id: {user_id}", ["user_id"])
            raw["user_id"] = user["id"]
            raw["user_name"] = f"{user['first_name']} {user['last_name']}"

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.check_required(body)
        lead = self.collection("accounts").get(str(ref_id(body, "account")))
        user = self.collection("users").get(str(ref_id(body, "owner")))
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
