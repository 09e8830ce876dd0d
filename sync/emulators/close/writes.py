"""The Close emulator's writes: field validation, status and won/lost dates, the event log.

The API's rules are in the package docstring (``sync.emulators.close``).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from sync.emulators.close.common import (
    VALUE_PERIODS,
    bad_request,
    field_error,
    new_id,
    parse_moment,
    stamp,
)
from sync.emulators.close.render import CloseRendering


class CloseWrites(CloseRendering):
    """How a create or update body becomes a stored opportunity, and the event it logs."""

    api_key: str

    def _resolve_status(self, body: dict[str, Any], current: str | None) -> str:
        """Status + pipeline agreement, per seed 004's ``pipeline_id`` / ``status_id`` notes."""
        statuses = self.collections["status"]
        status_id, pipeline_id = body.get("status_id"), body.get("pipeline_id")
        if status_id is not None and status_id not in statuses:
            raise field_error("status_id", "Invalid opportunity status.")
        if pipeline_id is not None and pipeline_id not in self.collections["pipeline"]:
            raise field_error("pipeline_id", "Pipeline does not exist.")
        if status_id is not None:
            if pipeline_id is not None and statuses[status_id]["pipeline_id"] != pipeline_id:
                raise field_error("status_id", "Status does not belong to the given pipeline.")
            return str(status_id)
        if pipeline_id is not None:
            if current is not None and statuses[current]["pipeline_id"] == pipeline_id:
                return current
            return next(str(s["id"]) for s in statuses.values() if s["pipeline_id"] == pipeline_id)
        return current or next(iter(statuses))

    def _untitled_lead(self, now: dt.datetime) -> str:
        """Close creates a lead when ``lead_id`` is missing (seed 004: shown as "Untitled")."""
        lid = new_id(self._id_rng, "lead_")
        self.collections["lead"][lid] = {
            "id": lid,
            "name": None,
            "description": "",
            "url": None,
            "status_id": next(iter(self.collections["lead_status"])),
            "date_created": now,
            "date_updated": now,
            "created_by": self.api_user_id,
            "updated_by": self.api_user_id,
        }
        return lid

    def _apply(
        self,
        opp: dict[str, Any],
        body: dict[str, Any],
        tz: dt.timezone,
        previous_status: str | None,
    ) -> None:
        """Validate and write the plain fields, the custom fields and the won/lost dates."""
        for key, value in body.items():
            if key.startswith("custom."):
                self._apply_custom(opp["custom"], key, value)
            elif key not in ("status_id", "pipeline_id"):
                opp[key] = self._validate(key, value, tz)
        self._status_dates(opp, body, tz, previous_status)

    def _validate(self, key: str, value: Any, tz: dt.timezone) -> Any:
        validator = FIELD_VALIDATORS.get(key)
        if validator is not None:
            return validator(value)
        if key in ("lead_id", "user_id", "created_by"):
            collection = "lead" if key == "lead_id" else "user"
            if not isinstance(value, str) or value not in self.collections[collection]:
                raise field_error(key, f"Object does not exist: {value!r}")
            return value
        if key == "contact_id":
            if value is not None:
                raise field_error(key, f"Contact does not exist: {value!r}")
            return None
        return self._validate_date(key, value, tz)

    def _validate_date(self, key: str, value: Any, tz: dt.timezone) -> Any:
        if value is None and key == "date_won":
            return None
        if not isinstance(value, str):
            raise field_error(key, "Expected an ISO 8601 date or datetime.")
        try:
            moment = parse_moment(value, tz)
        except ValueError:
            raise field_error(key, "Expected an ISO 8601 date or datetime.") from None
        if key == "date_won":
            # A datetime is accepted (seed 004) and reduced to the date it names.
            return dt.datetime.fromisoformat(value.strip()).date()
        return moment

    def _status_dates(
        self, opp: dict[str, Any], body: dict[str, Any], tz: dt.timezone, previous: str | None
    ) -> None:
        statuses = self.collections["status"]
        new_type = statuses[opp["status_id"]]["type"]
        old_type = statuses[previous]["type"] if previous else None
        becomes_won = new_type == "won" and old_type != "won"
        if becomes_won and opp["date_won"] is None and "date_won" not in body:
            opp["date_won"] = self.clock.peek().astimezone(tz).date()
        if new_type == "lost" and old_type != "lost":
            opp["date_lost"] = self.clock.peek()
        elif new_type != "lost":
            opp["date_lost"] = None

    def _apply_custom(self, custom: dict[str, Any], key: str, value: Any) -> None:
        """``custom.cf_ID`` (set / null unsets), ``custom.cf_ID.add`` / ``.remove`` (multi)."""
        cf_id, _, op = key.removeprefix("custom.").partition(".")
        field = self.collections["custom_field"].get(cf_id)
        if field is None:
            raise field_error(key, "Unknown custom field (use custom.FIELD_ID with a valid id).")
        multi = field["accepts_multiple_values"]
        if op:
            if not multi:
                raise field_error(key, "add/remove requires a field that accepts multiple values.")
            _check_text(key, value)
            current = list(custom.get(cf_id) or [])
            if op == "add" and value not in current:
                current.append(value)
            elif op == "remove" and value in current:
                current.remove(value)
            custom[cf_id] = current
            if not current:
                custom.pop(cf_id)
            return
        if value is None:
            custom.pop(cf_id, None)
        elif multi:
            if not isinstance(value, list):
                raise field_error(key, "This field accepts multiple values; send a list.")
            for item in value:
                _check_text(key, item)
            custom[cf_id] = list(value)
        else:
            _check_text(key, value)
            custom[cf_id] = value

    # -- events ----------------------------------------------------------------------------------
    def _log_event(
        self,
        action: str,
        opp: dict[str, Any],
        data: dict[str, Any] | None,
        before: dict[str, Any] | None,
        request: Request,
    ) -> None:
        """One event per write, as the event log records it (vendors.md §2.5)."""
        now = opp["date_updated"] if data is not None else self.clock.now()
        if action == "updated" and before is not None and data is not None:
            changed = sorted(k for k in {*before, *data} if before.get(k) != data.get(k))
            previous = {k: before.get(k) for k in changed}
        else:
            changed, previous = [], (before or {})
        self._event_seq += 1
        self.events.append(
            {
                "_seq": self._event_seq,
                "_at": now,
                "id": new_id(self._id_rng, "ev_", 22),
                "date_created": stamp(now),
                "date_updated": stamp(now),
                "organization_id": self.organization_id,
                "user_id": self.api_user_id,
                "request_id": new_id(self._id_rng, "req_", 22),
                "api_key_id": new_id(random.Random(self.api_key), "api_", 22),
                "oauth_client_id": None,
                "oauth_scope": None,
                "object_type": "opportunity",
                "object_id": opp["id"],
                "lead_id": opp["lead_id"],
                "action": action,
                "changed_fields": changed,
                "meta": {"request_method": request.method, "request_path": request.url.path},
                "data": data,
                "previous_data": previous,
            }
        )


def reject_unknown(body: dict[str, Any], allowed: frozenset[str], *, allow_ops: bool) -> None:
    """``additionalProperties: false`` + ``patternProperties: ^custom\\.`` (vendors.md §2.2)."""
    errors = {}
    for key in body:
        if key.startswith("custom."):
            parts = key.split(".")
            ops_ok = allow_ops and len(parts) == 3 and parts[2] in ("add", "remove")
            if not parts[1].startswith("cf_") or not (len(parts) == 2 or ops_ok):
                errors[key] = "Use custom.FIELD_ID with a custom field id."
        elif key not in allowed:
            errors[key] = "Unknown field."
    if errors:
        raise bad_request(None, **errors)


def _int_field(
    name: str, low: int | None, high: int | None, nullable: bool
) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise field_error(name, "Must be an integer.")
        if (low is not None and value < low) or (high is not None and value > high):
            raise field_error(name, f"Must be between {low} and {high}.")
        return value

    return check


def _value_period(value: Any) -> Any:
    if value not in VALUE_PERIODS:
        raise field_error("value_period", f"Must be one of {', '.join(VALUE_PERIODS)}.")
    return value


def _note(value: Any) -> Any:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise field_error("note", "Not a valid string.")
    return value


FIELD_VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "value": _int_field("value", None, None, nullable=True),
    "confidence": _int_field("confidence", 0, 100, nullable=False),
    "value_period": _value_period,
    "note": _note,
}


def _check_text(key: str, value: Any) -> None:
    if not isinstance(value, str):
        raise field_error(key, "Not a valid string.")
