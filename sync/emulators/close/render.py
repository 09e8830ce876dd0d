"""The Close emulator's rendering: stored records as the API's objects (spec schemas).

The API's rules are in the package docstring (``sync.emulators.close``).
"""

from __future__ import annotations

from typing import Any

from sync.emulators.close.common import format_cents, iso_or_none, project, stamp
from sync.emulators.close.data import CloseData


class CloseRendering(CloseData):
    """The store's records as the spec's ``Opportunity``, ``Lead``, ``User``… objects."""

    def render_opportunity(self, opp: dict[str, Any]) -> dict[str, Any]:
        """The ``Opportunity`` schema of the spec, with derived values and flat custom keys."""
        status = self.collections["status"][opp["status_id"]]
        pipeline = self.collections["pipeline"][status["pipeline_id"]]
        lead = self.collections["lead"][opp["lead_id"]]
        value, confidence = opp["value"], opp["confidence"]
        annualized = (
            None if value is None else value * (12 if opp["value_period"] == "monthly" else 1)
        )
        out: dict[str, Any] = {
            "id": opp["id"],
            "organization_id": self.organization_id,
            "lead_id": lead["id"],
            "lead_name": lead["name"],
            "status_id": status["id"],
            "status_label": status["label"],
            "status_type": status["type"],
            "status_display_name": status["label"],
            "pipeline_id": pipeline["id"],
            "pipeline_name": pipeline["name"],
            "user_id": opp["user_id"],
            "user_name": self._user_name(opp["user_id"]),
            "contact_id": opp["contact_id"],
            "contact_name": None,
            "value": value,
            "value_formatted": format_cents(value),
            "value_currency": self.currency,
            "value_period": opp["value_period"],
            "expected_value": None if value is None else round(value * confidence / 100),
            "annualized_value": annualized,
            "annualized_expected_value": (
                None if annualized is None else round(annualized * confidence / 100)
            ),
            "confidence": confidence,
            "note": opp["note"],
            "date_won": iso_or_none(opp["date_won"]),
            "date_lost": iso_or_none(opp["date_lost"]),
            "date_created": stamp(opp["date_created"]),
            "date_updated": stamp(opp["date_updated"]),
            "created_by": opp["created_by"],
            "created_by_name": self._user_name(opp["created_by"]),
            "updated_by": opp["updated_by"],
            "updated_by_name": self._user_name(opp["updated_by"]),
            "attachments": [],
            "integration_links": [],
            "is_stalled": False,
            "stall_status": None,
        }
        for cf_id in sorted(opp["custom"]):
            out[f"custom.{cf_id}"] = opp["custom"][cf_id]
        return out

    def _user_name(self, user_id: str | None) -> str | None:
        user = self.collections["user"].get(user_id or "")
        return f"{user['first_name']} {user['last_name']}" if user else None

    def _render_status(self, status: dict[str, Any]) -> dict[str, Any]:
        pipeline = self.collections["pipeline"][status["pipeline_id"]]
        return {
            "id": status["id"],
            "label": status["label"],
            "type": status["type"],
            "pipeline_id": pipeline["id"],
            "pipeline_name": pipeline["name"],
            "organization_id": self.organization_id,
        }

    def _render_lead(self, lead: dict[str, Any], fields: str | None = None) -> dict[str, Any]:
        """The lead, projected to ``_fields``. Its opportunities (every deal scanned, each of
        its own rendered) only when asked for: a reference listing of a few leads over 500,000
        deals otherwise takes longer than a client waits."""
        if fields and "opportunities" not in {f.strip() for f in fields.split(",")}:
            opps: list[dict[str, Any]] = []
        else:
            opps = [
                o for o in self.collections["opportunity"].values() if o["lead_id"] == lead["id"]
            ]
        status = self.collections["lead_status"][lead["status_id"]]
        rendered = {
            "id": lead["id"],
            "name": lead["name"],
            "display_name": lead["name"] or "Untitled",
            "description": lead["description"],
            "url": lead["url"],
            "status_id": status["id"],
            "status_label": status["label"],
            "organization_id": self.organization_id,
            "html_url": f"https://app.close.com/lead/{lead['id']}/",
            "contact_ids": [],
            "contacts": [],
            "addresses": [],
            "opportunities": [self.render_opportunity(o) for o in opps],
            "tasks": [],
            "primary_email": None,
            "primary_phone": None,
            "date_created": stamp(lead["date_created"]),
            "date_updated": stamp(lead["date_updated"]),
            "created_by": lead["created_by"],
            "created_by_name": self._user_name(lead["created_by"]),
            "updated_by": lead["updated_by"],
            "updated_by_name": self._user_name(lead["updated_by"]),
        }
        return project(rendered, fields)

    def _render_user(self, user: dict[str, Any]) -> dict[str, Any]:
        return {
            **user,
            "date_created": stamp(user["date_created"]),
            "date_updated": stamp(user["date_updated"]),
            "organizations": [self.organization_id],
        }

    def _render_custom_field(self, field: dict[str, Any]) -> dict[str, Any]:
        return {
            **field,
            "description": None,
            "editable_with_roles": [],
            "organization_id": self.organization_id,
            "created_by": None,
            "updated_by": None,
            "date_created": stamp(field["date_created"]),
            "date_updated": stamp(field["date_updated"]),
        }
