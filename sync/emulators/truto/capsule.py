"""Capsule behind Truto: ``opportunity`` objects in Capsule's own shape, mapped to unified."""

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
    capsule_stamp,
    date_as_datetime,
    first_last,
    iso_ms,
    parse_datetime,
    parse_stamp,
    ref_id,
    validation_failure,
)


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
            raise validation_failure("stage", "must be an object with an id or a name")
        for milestone in self.collection("milestones").values():
            if (
                str(stage.get("id")) == str(milestone["id"])
                or stage.get("name") == milestone["name"]
            ):
                return milestone
        raise self.remote_error("milestone is not valid", ["milestone"])

    def _apply(self, raw: dict[str, Any], body: Mapping[str, Any]) -> None:
        if "name" in body:
            raw["name"] = body_text(body, "name")
        if "description" in body:
            raw["description"] = body_text(body, "description")
        if "amount" in body:
            raw["value"] = {**raw["value"], "amount": body_amount(body)}
        if "currency" in body:
            raw["value"] = {**raw["value"], "currency": body_text(body, "currency")}
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
            raw["party"] = self._party(ref_id(body, "account"))
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
        self._apply_remote(raw, dict(body.get("remote_data") or {}))

    def _apply_remote(self, raw: dict[str, Any], remote: dict[str, Any]) -> None:
        """``remote_data`` goes to Capsule as is (seed 001), which checks what it knows: the
        ``owner`` (a user; seed 001 offers no unified ``owner`` write for Capsule) and the
        ``probability`` (a whole percent, kept over the milestone's when sent with it)."""
        if "owner" in remote:
            raw["owner"] = self._owner(remote.pop("owner"))
        if "probability" in remote:
            value = remote.pop("probability")
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
                raise self.remote_error(
                    "probability must be a whole number 0..100", ["probability"]
                )
            raw["probability"] = value
        raw.update(remote)

    def _owner(self, ref: Any) -> dict[str, Any]:
        user_id = ref.get("id") if isinstance(ref, dict) else None
        user = self.collection("users").get(str(user_id))
        if user is None:
            raise self.remote_error("owner is not valid", ["owner"])
        return {"id": user["id"], "username": user["username"], "name": user["name"]}

    def _party(self, ref: str | None) -> dict[str, Any]:
        if ref is None or ref not in self.collection("accounts"):
            raise self.remote_error("party is not valid", ["party"])
        party = self.collection("accounts")[ref]
        return {"id": party["id"], "type": "organisation", "name": party["name"]}

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.check_required(body)
        if ref_id(body, "account") is None:
            raise self.remote_error("party is required", ["party"])
        milestone = self._milestone(body)
        party = self.collection("accounts").get(str(ref_id(body, "account")))
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
        first, last = first_last(raw["name"])
        emails = raw["party"]["emailAddresses"]
        return {
            "id": str(raw["id"]),
            "name": raw["name"],
            "first_name": first,
            "last_name": last,
            "emails": [{"email": e["address"], "is_primary": i == 0} for i, e in enumerate(emails)],
            "is_active": raw["status"] == "ACTIVE",
        }
