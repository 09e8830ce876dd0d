"""Close (``/api/v1``) emulator: opportunities, their reference data and the event log.

Written from shared/vendors.md §2, shared/seeds/002 (old developer.close.com opportunity page),
shared/seeds/004 (new Fern "Create an opportunity" page) and shared/specs/close-openapi.yml.
Docs: https://developer.close.com/api/resources/opportunities ,
https://developer.close.com/api/overview/pagination ,
https://developer.close.com/topics/rate-limits , https://developer.close.com/resources/event-log .

What the docs say and we do:

- Auth: HTTP Basic with the API key as username and an *empty* password, or ``Bearer <key>``.
- ``value`` is integer cents, ``value_formatted`` ``"$3,000"``, ``value_currency`` the org's USD;
  ``confidence`` int 0–100; ``expected_value = value × confidence / 100``; monthly values × 12
  in ``annualized_value``.
- ``date_won`` is a date in responses, accepts a datetime in requests, is set to today (honouring
  ``x-tz-offset``) when the status becomes a won-type one and it is unset, and is not cleared when
  the status reverts.
- ``status_id`` + ``pipeline_id`` must agree (400); pipeline only → its first status; neither →
  the org's first status. A create without ``lead_id`` creates a new lead (name null, shown as
  "Untitled") — seed 004.
- PUT acts as PATCH. ``custom.cf_…`` keys are flat on the object; null unsets; ``.add`` /
  ``.remove`` on PUT for multi-value fields; the deprecated ``custom.FIELD_NAME`` syntax is refused.
- List: ``_skip`` / ``_limit`` (default 100) with ``has_more``, ``total_results`` and the value
  aggregates of seed 002; ``_order_by`` on the documented fields, ``-`` for descending.
- Event log: ``{data, cursor_next, cursor_previous}``, latest first, ``_cursor`` pages,
  ``_limit`` capped at and defaulting to 50, no ``_skip``, only the documented filter
  combinations, 30 days of retention; deletes have ``data: null``.
- Errors: 400 ``{"errors": [...], "field-errors": {...}}``; 429
  ``{"error": {"rate_reset": <float s>, ...}}`` plus ``Retry-After``; ``ratelimit: limit=N,
  remaining=M, reset=S`` on every answer while rate limiting is on.

Where the docs leave a gap we chose the stricter behaviour:

- Max ``_limit`` is 100 for opportunities and leads (docs: "varies per resource"); max ``_skip``
  is 10,000 ("there is a maximum _skip"); both answered 400. Negative or non-integer → 400.
- Unknown body keys → 400 (the split spec's ``additionalProperties: false``), also read-only ones
  (``date_updated``, ``lead_name``, …); ``custom_fields`` (dict syntax, deprecated) and
  ``attachments`` are refused too. ``date_created`` / ``created_by`` only on create.
- Unknown query parameters → 400, and so are documented ones the emulator does not implement
  (``query`` on opportunities, ``lead_query``, ``lead_saved_search_id``, ``_group_by``): silently
  ignoring a filter would return wrong data, which is worse than a loud refusal.
- ``value`` must be a JSON integer (``300.0`` → 400); ``confidence`` an integer 0..100;
  ``user_id`` / ``lead_id`` must exist; there are no contacts, so ``contact_id`` must be null.
- POST/PUT need ``Content-Type: application/json`` (415 otherwise, a documented Close status).
- Basic auth with a non-empty password is refused. 401 body ``{"error": "..."}``; 404 body
  ``{"error": "<Object> matching query does not exist."}``.
- ``date_lost`` is stamped when the status becomes a lost-type one and cleared when it leaves it.
- Every successful PUT is a write: ``date_updated`` moves on and an ``updated`` event is logged.
- Lead search: ``GET /lead/?query=name:"Acme Corp"`` is a case-insensitive *phrase* match
  (``name:"Acme"`` also finds "Acme Corp"), bare words must all occur in the name — a connector
  must compare names exactly itself.
- Events are not consolidated (each write is its own event). Seeded opportunities predate the
  log: only writes through the API (and their deletes) appear in it.
- The default list order is ``-date_created`` (ties by id); ``_order_by`` ties are broken by id
  too, nulls placed as PostgreSQL does. Paths need Close's trailing slash (no redirect).
- ``GET /organization/{id}/`` (id from ``GET /me/``'s ``organizations``) answers the
  organization with its ``currency`` (USD), which every opportunity's ``value_currency``
  repeats; ``PUT`` changes ``name`` and ``currency`` (spec: "Update an organization's name,
  currency, …"; the response schema is undocumented, so the body is our choice).
- The API key belongs to the first reference user: new opportunities default to that
  ``user_id``, and it is ``created_by`` / ``updated_by`` of every write; ``GET /me/`` returns it.
- The Tags custom field accepts multiple values (a list of strings) so ``.add`` / ``.remove``
  have a field to act on; the other two are single text values.
- A second pipeline "Renewals" (three statuses) exists next to reference ``CLOSE_PIPELINE`` so
  status/pipeline agreement is observable; seeded opportunities only use "Sales".
- Rate limits: 20 requests/s per endpoint group (the observed ``limit=160`` per 8 s window of
  vendors.md §2.4), burst 20, groups ``opportunity_read``, ``opportunity_write``, ``lead``,
  ``event`` and ``other``; ``reset`` is whole seconds until the bucket is full again.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import datetime as dt
import json
import math
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sync.emulators import reference
from sync.emulators.base import Emulator

API_KEY = "close-test-key"
MAX_LIMIT = 100
DEFAULT_LIMIT = 100
MAX_SKIP = 10_000
EVENT_LIMIT = 50
EVENT_RETENTION = dt.timedelta(days=30)
CURRENCY = "USD"

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
VALUE_PERIODS = ("one_time", "monthly", "annual")
STATUS_TYPES = ("active", "won", "lost")
ORDERABLE = (
    "date_won",
    "date_updated",
    "date_created",
    "confidence",
    "user_name",
    "value",
    "annualized_value",
    "annualized_expected_value",
)
#: Keys a create body may carry (spec ``CreateOpportunity`` minus attachments/custom_fields).
CREATE_KEYS = frozenset(
    {
        "confidence",
        "contact_id",
        "created_by",
        "date_created",
        "date_won",
        "lead_id",
        "note",
        "pipeline_id",
        "status_id",
        "user_id",
        "value",
        "value_period",
    }
)
UPDATE_KEYS = CREATE_KEYS - {"created_by", "date_created"}
LEAD_KEYS = frozenset({"name", "description", "url", "status_id"})
#: Documented opportunity list parameters the emulator does not implement (400, see docstring).
UNSUPPORTED_PARAMS = frozenset(
    {"query", "lead_query", "lead_saved_search_id", "_group_by", "status", "status__in"}
)
RANGE_OPS = ("", "__gt", "__gte", "__lt", "__lte")
IN_FILTERS = ("user_id", "status_id", "status_label", "status_type", "value_period")
#: Event filter combinations the event log accepts (``date_updated__*`` goes with any of them).
EVENT_COMBOS = frozenset(
    frozenset(c)
    for c in (
        (),
        ("object_type", "object_id"),
        ("object_type", "action"),
        ("object_id", "action"),
        ("lead_id", "object_type"),
        ("lead_id", "object_type", "action"),
        ("lead_id", "user_id", "object_type"),
        ("lead_id", "user_id", "object_type", "action"),
        ("lead_id", "user_id"),
        ("user_id", "object_id"),
        ("user_id", "object_id", "action"),
        ("user_id", "object_type"),
        ("user_id", "object_type", "action"),
        ("lead_id",),
        ("user_id",),
        ("request_id",),
    )
)
#: Emulator-only second pipeline: (label, type) — see the module docstring.
EXTRA_PIPELINE = ("Renewals", (("Renewal Due", "active"), ("Renewed", "won"), ("Churned", "lost")))
LEAD_STATUSES = ("Potential", "Bad Fit", "Qualified", "Customer")
MULTI_VALUE_FIELDS = frozenset({"cf_Tags00000000000000000000000000000000000003"})
NOTES = (
    "Follow up after the demo.",
    "Budget confirmed by finance.",
    "Waiting on legal review.",
    "Champion changed roles; re-qualify.",
    "",
)
TAGS = ("inbound", "partner", "upsell", "renewal", "enterprise", "smb")


class CloseError(Exception):
    """A vendor error answer raised from deep inside a handler."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


def bad_request(message: str | None = None, **field_errors: str) -> CloseError:
    """Close's 400 body: ``{"errors": [...], "field-errors": {...}}`` (vendors.md §2.4)."""
    return CloseError(400, {"errors": [message] if message else [], "field-errors": field_errors})


def field_error(field: str, message: str) -> CloseError:
    return CloseError(400, {"errors": [], "field-errors": {field: message}})


def not_found(kind: str) -> CloseError:
    return CloseError(404, {"error": f"{kind} matching query does not exist."})


def stamp(moment: dt.datetime) -> str:
    """Close's timestamp: microseconds and ``+00:00`` (``2013-02-01T00:54:51.321000+00:00``)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def iso_or_none(value: dt.date | None) -> str | None:
    if value is None:
        return None
    return stamp(value) if isinstance(value, dt.datetime) else value.isoformat()


def format_cents(cents: int | None) -> str | None:
    """``300000`` → ``"$3,000"``, ``300050`` → ``"$3,000.50"`` (spec examples)."""
    if cents is None:
        return None
    sign, cents = ("-", -cents) if cents < 0 else ("", cents)
    dollars, rest = divmod(cents, 100)
    return f"{sign}${dollars:,}" + (f".{rest:02d}" if rest else "")


def new_id(rng: random.Random, prefix: str, length: int = 43) -> str:
    return prefix + "".join(rng.choice(ALPHABET) for _ in range(length))


def parse_moment(raw: str, tz_offset: dt.timezone) -> dt.datetime:
    """An ISO date or datetime from a request; naive values are in the ``x-tz-offset`` zone."""
    text = raw.strip().replace(" ", "+") if "T" in raw else raw.strip()
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz_offset)
    return moment.astimezone(dt.UTC)


def tz_of(request: Request) -> dt.timezone:
    """The caller's UTC offset from ``x-tz-offset`` (hours; Close's Timezone Offsets page)."""
    try:
        return dt.timezone(dt.timedelta(hours=float(request.headers.get("x-tz-offset", "0"))))
    except ValueError:
        return dt.UTC


def int_param(params: QueryParams, name: str, default: int, maximum: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer.") from None
    if value < 0:
        raise bad_request(f"{name} must be a non-negative integer.")
    if value > maximum:
        raise bad_request(f"{name} must be less than or equal to {maximum}.")
    return value


def project(obj: dict[str, Any], fields: str | None) -> dict[str, Any]:
    """``_fields=a,b``: only the named fields (unknown names are left out)."""
    if not fields:
        return obj
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    return {k: obj[k] for k in wanted if k in obj}


class CloseEmulator(Emulator):
    """Close's REST API under ``/api/v1`` over an in-memory store (see the module docstring)."""

    vendor: ClassVar[str] = "close"
    prefix: ClassVar[str] = "/api/v1"
    default_rate: ClassVar[float] = 20.0
    default_burst: ClassVar[float] = 20.0

    api_key: str = API_KEY

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

    # -- auth and rate limits ---------------------------------------------------------------
    def authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        if not credentials:
            return self._unauthorized("Authentication credentials were not provided.")
        if scheme.lower() == "bearer":
            ok = credentials.strip() == self.api_key
        elif scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return self._unauthorized("Invalid Basic authorization header.")
            ok = decoded == f"{self.api_key}:"
        else:
            return self._unauthorized("Unsupported authorization scheme.")
        return None if ok else self._unauthorized("Invalid API key.")

    def _unauthorized(self, message: str) -> Response:
        return JSONResponse(
            {"error": message}, 401, headers={"WWW-Authenticate": 'Basic realm="Close API"'}
        )

    def rate_limit_key(self, request: Request) -> str:
        """Close limits per endpoint group (vendors.md §2.4); one key, so the group is the key."""
        path = request.url.path.removeprefix(self.prefix)
        if path.startswith("/opportunity/"):
            return "opportunity_read" if request.method == "GET" else "opportunity_write"
        if path.startswith("/lead/"):
            return "lead"
        if path.startswith("/event/"):
            return "event"
        return "other"

    def rate_limit_headers(self, remaining: float, reset_in: float) -> dict[str, str]:
        state = self.rate_limit
        full_in = max(reset_in, (state.burst - remaining) / state.rate)
        return {
            "ratelimit": (
                f"limit={int(state.burst)}, remaining={int(remaining)}, reset={math.ceil(full_in)}"
            )
        }

    def rate_limited_response(self, retry_in: float) -> Response:
        body = {
            "error": {
                "rate_reset": round(retry_in, 3),
                "message": "API call count exceeded for this period",
                "rate_limit": int(self.rate_limit.burst),
                "rate_limit_type": "key",
            }
        }
        return JSONResponse(body, 429, headers={"Retry-After": str(max(1, math.ceil(retry_in)))})

    # -- routes ------------------------------------------------------------------------------
    def vendor_routes(self) -> list[BaseRoute]:
        routes: list[tuple[str, Callable[[Request], Any], list[str]]] = [
            ("/opportunity/", self._list_opportunities, ["GET"]),
            ("/opportunity/", self._create_opportunity, ["POST"]),
            ("/opportunity/{id}/", self._get_opportunity, ["GET"]),
            ("/opportunity/{id}/", self._update_opportunity, ["PUT"]),
            ("/opportunity/{id}/", self._delete_opportunity, ["DELETE"]),
            ("/status/opportunity/", self._list_statuses, ["GET"]),
            ("/pipeline/", self._list_pipelines, ["GET"]),
            ("/lead/", self._list_leads, ["GET"]),
            ("/lead/", self._create_lead, ["POST"]),
            ("/lead/{id}/", self._get_lead, ["GET"]),
            ("/user/", self._list_users, ["GET"]),
            ("/user/{id}/", self._get_user, ["GET"]),
            ("/me/", self._get_me, ["GET"]),
            ("/organization/{id}/", self._get_organization, ["GET"]),
            ("/organization/{id}/", self._update_organization, ["PUT"]),
            ("/custom_field/opportunity/", self._list_custom_fields, ["GET"]),
            ("/custom_field/opportunity/{id}/", self._get_custom_field, ["GET"]),
            ("/event/", self._list_events, ["GET"]),
        ]
        return [Route(path, _wrap(handler), methods=methods) for path, handler, methods in routes]

    # -- rendering -----------------------------------------------------------------------------
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

    def _render_lead(self, lead: dict[str, Any]) -> dict[str, Any]:
        opps = [o for o in self.collections["opportunity"].values() if o["lead_id"] == lead["id"]]
        status = self.collections["lead_status"][lead["status_id"]]
        return {
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

    # -- opportunity handlers ------------------------------------------------------------------
    async def _list_opportunities(self, request: Request) -> Response:
        params = request.query_params
        self._check_params(params)
        limit = int_param(params, "_limit", DEFAULT_LIMIT, MAX_LIMIT)
        skip = int_param(params, "_skip", 0, MAX_SKIP)
        fields = params.get("_fields")
        indexed = self._indexed_page(params, tz_of(request), skip, limit)
        if indexed is not None:
            page, total, sums = indexed
            body: dict[str, Any] = {
                "data": [project(self.render_opportunity(o), fields) for o in page],
                "has_more": skip + limit < total,
                "total_results": total,
                **sums,
            }
            return JSONResponse(body)
        predicate = self._opportunity_filter(params, tz_of(request))
        rendered = [self.render_opportunity(o) for o in self.collections["opportunity"].values()]
        matches = self._sorted([r for r in rendered if predicate(r)], params.get("_order_by"))
        body = {
            "data": [project(r, fields) for r in matches[skip : skip + limit]],
            "has_more": skip + limit < len(matches),
            "total_results": len(matches),
            **aggregates(matches),
        }
        return JSONResponse(body)

    def _indexed_page(
        self, params: QueryParams, tz: dt.timezone, skip: int, limit: int
    ) -> tuple[list[dict[str, Any]], int, dict[str, Any]] | None:
        """The common listing — ordered by ``date_created`` or ``date_updated``, filtered at
        most by a range on that same stamp — from a sorted index: a page costs O(page + log N)
        instead of rendering, filtering and sorting every opportunity (O(N) per page, O(N²)
        per listing). None for any other listing, which takes the general path."""
        order = (params.get("_order_by") or "-date_created").strip()
        key = order.lstrip("-")
        if "," in order or key not in INDEXED_STAMPS:
            return None
        ranges = {key + op for op in RANGE_OPS}
        if any(name not in ranges and name not in LISTING_PARAMS for name in params):
            return None
        index = self._index(key)
        lo, hi = 0, len(index.stamps)
        for op, bound in _range_bounds(params, key, tz):
            lo, hi = index.narrow(op, bound, lo, hi)
        total = max(0, hi - lo)
        if order.startswith("-"):
            positions = range(hi - 1 - skip, max(lo, hi - skip - limit) - 1, -1)
        else:
            positions = range(lo + skip, min(hi, lo + skip + limit))
        opps = self.collections["opportunity"]
        page = [opps[index.ids[i]] for i in positions]
        return page, total, index.aggregates(lo, max(lo, hi))

    def _index(self, key: str) -> StampIndex:
        cached = self._indexes.get(key)
        if cached is None or cached[0] != self._generation:
            opps = list(self.collections["opportunity"].values())
            cached = (self._generation, StampIndex.build(opps, key))
            self._indexes[key] = cached
        return cached[1]

    def _check_params(self, params: QueryParams) -> None:
        known = {"_limit", "_skip", "_fields", "_order_by", "lead_id", "organization_id"}
        known.add("is_stalled")
        known |= {name + suffix for name in IN_FILTERS for suffix in ("", "__in")}
        known |= {
            f"{f}{op}" for f in ("date_created", "date_updated", "date_won") for op in RANGE_OPS
        }
        for name in params:
            if name in UNSUPPORTED_PARAMS:
                raise bad_request(f"The emulator does not implement the '{name}' parameter.")
            if name not in known:
                raise bad_request(f"Unknown query parameter: {name}")

    def _opportunity_filter(
        self, params: QueryParams, tz: dt.timezone
    ) -> Callable[[dict[str, Any]], bool]:
        checks: list[Callable[[dict[str, Any]], bool]] = []
        for name in ("lead_id", "organization_id"):
            if name in params:
                checks.append(_equals(name, params[name]))
        for name in IN_FILTERS:
            if name in params:
                checks.append(_member(name, {params[name]}))
            if f"{name}__in" in params:
                checks.append(_member(name, set(params[f"{name}__in"].split(","))))
        for name in ("status_type", "status_type__in"):
            bad = set(params.get(name, "active").split(",")) - set(STATUS_TYPES)
            if bad:
                raise field_error(name, f"Invalid status type: {', '.join(sorted(bad))}")
        if "is_stalled" in params:
            checks.append(lambda r: str(r["is_stalled"]).lower() == params["is_stalled"].lower())
        for name in ("date_created", "date_updated", "date_won"):
            checks += _range_checks(params, name, tz)
        return lambda r: all(check(r) for check in checks)

    def _sorted(self, rows: list[dict[str, Any]], order_by: str | None) -> list[dict[str, Any]]:
        """Sort by ``_order_by`` (default ``-date_created``), ties broken by id, nulls as in
        PostgreSQL (last ascending, first descending)."""
        keys = [k.strip() for k in (order_by or "-date_created").split(",") if k.strip()]
        for key in keys:
            if key.lstrip("-") not in ORDERABLE:
                raise field_error("_order_by", f"Cannot order by '{key}'.")
        rows = sorted(rows, key=lambda r: r["id"], reverse=keys[0].startswith("-"))
        for key in reversed(keys):
            rows.sort(key=_null_last(key.lstrip("-")), reverse=key.startswith("-"))
        return rows

    async def _get_opportunity(self, request: Request) -> Response:
        opp = self._opportunity(request.path_params["id"])
        return JSONResponse(
            project(self.render_opportunity(opp), request.query_params.get("_fields"))
        )

    def _opportunity(self, opp_id: str) -> dict[str, Any]:
        try:
            return self.collections["opportunity"][opp_id]
        except KeyError:
            raise not_found("Opportunity") from None

    async def _create_opportunity(self, request: Request) -> Response:
        body = await _body(request)
        tz = tz_of(request)
        _reject_unknown(body, CREATE_KEYS, allow_ops=False)
        if body.get("lead_id") is None:
            body.pop("lead_id", None)
        now = self.clock.now()
        status_id = self._resolve_status(body, current=None)
        opp: dict[str, Any] = {
            "id": new_id(self._id_rng, "oppo_"),
            "lead_id": None,
            "status_id": status_id,
            "user_id": self.api_user_id,
            "contact_id": None,
            "value": None,
            "value_period": "one_time",
            "confidence": 0,
            "note": "",
            "date_won": None,
            "date_lost": None,
            "date_created": now,
            "date_updated": now,
            "created_by": self.api_user_id,
            "updated_by": self.api_user_id,
            "custom": {},
        }
        self._apply(opp, body, tz, previous_status=None)
        if opp["lead_id"] is None:  # only after validation: a refused create makes no lead
            opp["lead_id"] = self._untitled_lead(now)
        self.collections["opportunity"][opp["id"]] = opp
        self._generation += 1
        data = self.render_opportunity(opp)
        self._log_event("created", opp, data, None, request)
        return JSONResponse(data)

    async def _update_opportunity(self, request: Request) -> Response:
        opp = self._opportunity(request.path_params["id"])
        body = await _body(request)
        _reject_unknown(body, UPDATE_KEYS, allow_ops=True)
        before = self.render_opportunity(opp)
        draft = {**opp, "custom": dict(opp["custom"])}
        draft["status_id"] = self._resolve_status(body, current=opp["status_id"])
        self._apply(draft, body, tz_of(request), previous_status=opp["status_id"])
        draft["date_updated"] = self.clock.now()
        draft["updated_by"] = self.api_user_id
        opp.update(draft)
        self._generation += 1
        data = self.render_opportunity(opp)
        self._log_event("updated", opp, data, before, request)
        return JSONResponse(data)

    async def _delete_opportunity(self, request: Request) -> Response:
        opp = self._opportunity(request.path_params["id"])
        before = self.render_opportunity(opp)
        del self.collections["opportunity"][opp["id"]]
        self._generation += 1
        self._log_event("deleted", opp, None, before, request)
        return JSONResponse({})

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

    async def _list_events(self, request: Request) -> Response:
        params = request.query_params
        filters = {
            k: params[k]
            for k in ("object_type", "object_id", "action", "lead_id", "user_id", "request_id")
            if k in params
        }
        allowed = {*filters, "_cursor", "_limit", "_fields"}
        allowed |= {f"date_updated{op}" for op in RANGE_OPS}
        for name in params:
            if name not in allowed:
                raise bad_request(f"Unsupported parameter for the event log: {name}")
        if frozenset(filters) not in EVENT_COMBOS:
            raise bad_request("This combination of filters is not supported.")
        limit = min(int_param(params, "_limit", EVENT_LIMIT, 10**9), EVENT_LIMIT) or EVENT_LIMIT
        cutoff = self.clock.peek() - EVENT_RETENTION
        times = _range_checks(params, "date_updated", tz_of(request))
        matches = [
            e
            for e in self.events
            if e["_at"] >= cutoff
            and all(e[k] == v for k, v in filters.items())
            and all(check(e) for check in times)
        ]
        page, cursor_next, cursor_previous = _cursor_page(matches, params.get("_cursor"), limit)
        data = [project(_public_event(e), params.get("_fields")) for e in page]
        return JSONResponse(
            {"data": data, "cursor_next": cursor_next, "cursor_previous": cursor_previous}
        )

    # -- supporting resources --------------------------------------------------------------------
    async def _list_statuses(self, request: Request) -> Response:
        self._only_params(request, {"_fields"})
        data = [self._render_status(s) for s in self.collections["status"].values()]
        fields = request.query_params.get("_fields")
        return JSONResponse({"data": [project(d, fields) for d in data], "has_more": False})

    async def _list_pipelines(self, request: Request) -> Response:
        self._only_params(request, {"_fields"})
        data = []
        for pipeline in self.collections["pipeline"].values():
            statuses = [
                self._render_status(s)
                for s in self.collections["status"].values()
                if s["pipeline_id"] == pipeline["id"]
            ]
            data.append({**pipeline, "organization_id": self.organization_id, "statuses": statuses})
        fields = request.query_params.get("_fields")
        return JSONResponse({"data": [project(d, fields) for d in data], "has_more": False})

    async def _list_leads(self, request: Request) -> Response:
        self._only_params(request, {"_limit", "_skip", "_fields", "query"})
        params = request.query_params
        limit = int_param(params, "_limit", DEFAULT_LIMIT, MAX_LIMIT)
        skip = int_param(params, "_skip", 0, MAX_SKIP)
        match = lead_matcher(params.get("query", ""))
        leads = sorted(
            (ld for ld in self.collections["lead"].values() if match(ld["name"] or "")),
            key=lambda ld: (ld["date_created"], ld["id"]),
            reverse=True,
        )
        data = [
            project(self._render_lead(ld), params.get("_fields"))
            for ld in leads[skip : skip + limit]
        ]
        return JSONResponse(
            {"data": data, "has_more": skip + limit < len(leads), "total_results": len(leads)}
        )

    async def _create_lead(self, request: Request) -> Response:
        body = await _body(request)
        unknown = sorted(set(body) - LEAD_KEYS)
        if unknown:
            raise bad_request(None, **{k: "Unknown field." for k in unknown})
        for key in ("name", "description", "url"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise field_error(key, "Not a valid string.")
        status_id = body.get("status_id") or next(iter(self.collections["lead_status"]))
        if status_id not in self.collections["lead_status"]:
            raise field_error("status_id", "Invalid lead status.")
        lid = self._untitled_lead(self.clock.now())
        lead = self.collections["lead"][lid]
        lead.update(
            name=body.get("name"),
            description=body.get("description") or "",
            url=body.get("url"),
            status_id=status_id,
        )
        return JSONResponse(self._render_lead(lead))

    async def _get_lead(self, request: Request) -> Response:
        lead = self.collections["lead"].get(request.path_params["id"])
        if lead is None:
            raise not_found("Lead")
        return JSONResponse(project(self._render_lead(lead), request.query_params.get("_fields")))

    async def _list_users(self, request: Request) -> Response:
        self._only_params(request, {"_limit", "_skip", "_fields", "_order_by"})
        params = request.query_params
        limit = int_param(params, "_limit", DEFAULT_LIMIT, MAX_LIMIT)
        skip = int_param(params, "_skip", 0, MAX_SKIP)
        users = [self._render_user(u) for u in self.collections["user"].values()]
        data = [project(u, params.get("_fields")) for u in users[skip : skip + limit]]
        return JSONResponse({"data": data, "has_more": skip + limit < len(users)})

    async def _get_user(self, request: Request) -> Response:
        user = self.collections["user"].get(request.path_params["id"])
        if user is None:
            raise not_found("User")
        return JSONResponse(self._render_user(user))

    async def _get_me(self, request: Request) -> Response:
        return JSONResponse(self._render_user(self.collections["user"][self.api_user_id]))

    def _organization(self, request: Request) -> dict[str, Any]:
        if request.path_params["id"] != self.organization_id:
            raise not_found("Organization")
        return {
            "id": self.organization_id,
            "name": self.organization_name,
            "currency": self.currency,
            "memberships": [{"user_id": user_id} for user_id in self.collections["user"]],
            "inactive_memberships": [],
        }

    async def _get_organization(self, request: Request) -> Response:
        return JSONResponse(self._organization(request))

    async def _update_organization(self, request: Request) -> Response:
        """``name`` and ``currency`` (spec: "Update an organization's name, currency, …")."""
        self._organization(request)
        body = await _body(request)
        if "currency" in body:
            code = body["currency"]
            if not (isinstance(code, str) and len(code) == 3 and code.isalpha()):
                raise field_error("currency", "Not a valid currency code.")
            self.currency = code.upper()
        if "name" in body:
            self.organization_name = str(body["name"])
        return JSONResponse(self._organization(request))

    async def _list_custom_fields(self, request: Request) -> Response:
        self._only_params(request, {"_limit", "_skip", "_fields"})
        fields = [self._render_custom_field(f) for f in self.collections["custom_field"].values()]
        wanted = request.query_params.get("_fields")
        return JSONResponse({"data": [project(f, wanted) for f in fields], "has_more": False})

    async def _get_custom_field(self, request: Request) -> Response:
        field = self.collections["custom_field"].get(request.path_params["id"])
        if field is None:
            raise not_found("Custom field")
        return JSONResponse(self._render_custom_field(field))

    def _only_params(self, request: Request, allowed: set[str]) -> None:
        for name in request.query_params:
            if name not in allowed:
                raise bad_request(f"Unknown query parameter: {name}")


# -- module helpers ----------------------------------------------------------------------------
def _wrap(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    """Turn a raised :class:`CloseError` into Close's error answer."""

    async def endpoint(request: Request) -> Response:
        try:
            response: Response = await handler(request)
        except CloseError as exc:
            return JSONResponse(exc.body, exc.status)
        return response

    return endpoint


async def _body(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/json"):
        raise CloseError(415, {"error": "Unsupported media type: send application/json."})
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        raise bad_request("Invalid JSON body.") from None
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object.")
    return body


def _reject_unknown(body: dict[str, Any], allowed: frozenset[str], *, allow_ops: bool) -> None:
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


def _null_last(name: str) -> Callable[[dict[str, Any]], tuple[bool, Any]]:
    return lambda r: (r[name] is None, r[name] if r[name] is not None else 0)


def _equals(name: str, expected: str) -> Callable[[dict[str, Any]], bool]:
    return lambda r: r.get(name) == expected


def _member(name: str, allowed: set[str]) -> Callable[[dict[str, Any]], bool]:
    return lambda r: r.get(name) in allowed


def _range_checks(
    params: QueryParams, name: str, tz: dt.timezone
) -> list[Callable[[dict[str, Any]], bool]]:
    """``name`` / ``name__gt|gte|lt|lte`` over a rendered ISO value (date or datetime)."""
    return [_compare(name, op, bound, tz) for op, bound in _range_bounds(params, name, tz)]


def _range_bounds(params: QueryParams, name: str, tz: dt.timezone) -> list[tuple[str, dt.datetime]]:
    """(operator, parsed bound) of each ``name`` / ``name__gt|gte|lt|lte`` given; a bound that
    is no ISO 8601 date or datetime is Close's 400 for that field."""
    bounds = []
    for op in RANGE_OPS:
        raw = params.get(name + op)
        if raw is None:
            continue
        try:
            bounds.append((op, parse_moment(raw, tz)))
        except ValueError:
            raise field_error(name + op, "Expected an ISO 8601 date or datetime.") from None
    return bounds


def _compare(
    name: str, op: str, bound: dt.datetime, tz: dt.timezone
) -> Callable[[dict[str, Any]], bool]:
    def check(row: dict[str, Any]) -> bool:
        raw = row.get(name)
        if raw is None:
            return False
        value = (
            dt.datetime.fromisoformat(raw)
            if "T" in raw
            else dt.datetime.fromisoformat(raw).replace(tzinfo=tz).astimezone(dt.UTC)
        )
        return {
            "": value == bound,
            "__gt": value > bound,
            "__gte": value >= bound,
            "__lt": value < bound,
            "__lte": value <= bound,
        }[op]

    return check


INDEXED_STAMPS = ("date_created", "date_updated")  # never null: a plain sorted index
LISTING_PARAMS = {"_limit", "_skip", "_fields", "_order_by"}


@dataclass
class StampIndex:
    """Opportunities sorted by one stamp (ties by id, as ``_sorted``), with running sums of
    the value aggregates so any contiguous range's aggregates cost O(periods)."""

    stamps: list[dt.datetime]
    ids: list[str]
    sums: dict[str, list[tuple[int, int, int]]]  # period -> prefix (count, total, expected)

    @classmethod
    def build(cls, opps: list[dict[str, Any]], key: str) -> StampIndex:
        ordered = sorted(opps, key=lambda o: (o[key], o["id"]))
        sums: dict[str, list[tuple[int, int, int]]] = {p: [(0, 0, 0)] for p in VALUE_PERIODS}
        for opp in ordered:
            value = opp["value"]
            expected = 0 if value is None else round(value * opp["confidence"] / 100)
            for period, running in sums.items():
                count, total, exp = running[-1]
                if period == opp["value_period"]:
                    count, total, exp = count + 1, total + (value or 0), exp + expected
                running.append((count, total, exp))
        return cls([o[key] for o in ordered], [o["id"] for o in ordered], sums)

    def narrow(self, op: str, bound: dt.datetime, lo: int, hi: int) -> tuple[int, int]:
        """Positions [lo, hi) further narrowed by ``stamp <op> bound``."""
        left = bisect.bisect_left(self.stamps, bound)
        right = bisect.bisect_right(self.stamps, bound)
        if op in ("", "__gte"):
            lo = max(lo, left)
        if op == "__gt":
            lo = max(lo, right)
        if op in ("", "__lte"):
            hi = min(hi, right)
        if op == "__lt":
            hi = min(hi, left)
        return lo, hi

    def aggregates(self, lo: int, hi: int) -> dict[str, Any]:
        count, total, expected = {}, {}, {}
        for period, running in self.sums.items():
            count[period] = running[hi][0] - running[lo][0]
            total[period] = running[hi][1] - running[lo][1]
            expected[period] = running[hi][2] - running[lo][2]
        return _aggregate_body(count, total, expected)


def aggregates(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The value aggregates every opportunity list answer carries (seed 002)."""
    count = dict.fromkeys(VALUE_PERIODS, 0)
    total = dict.fromkeys(VALUE_PERIODS, 0)
    expected = dict.fromkeys(VALUE_PERIODS, 0)
    for row in rows:
        period = row["value_period"]
        count[period] += 1
        total[period] += row["value"] or 0
        expected[period] += row["expected_value"] or 0
    return _aggregate_body(count, total, expected)


def _aggregate_body(
    count: dict[str, int], total: dict[str, int], expected: dict[str, int]
) -> dict[str, Any]:
    out: dict[str, Any] = {"count_by_value_period": count}
    for period in VALUE_PERIODS:
        out[f"total_value_{period}"] = total[period]
        out[f"expected_value_{period}"] = expected[period]
    out["total_value_annualized"] = total["one_time"] + total["annual"] + 12 * total["monthly"]
    out["expected_value_annualized"] = (
        expected["one_time"] + expected["annual"] + 12 * expected["monthly"]
    )
    return out


def lead_matcher(query: str) -> Callable[[str], bool]:
    """Close lead search, the part a connector needs: ``name:"Acme Corp"`` is a case-insensitive
    phrase match on the name; bare words must all occur in the name."""
    query = query.strip()
    if not query:
        return lambda name: True
    found = re.fullmatch(r'name:(?:"([^"]*)"|(\S+))', query)
    if found:
        phrase = (found.group(1) or found.group(2) or "").lower()
        return lambda name: phrase in name.lower()
    if ":" in query:
        raise bad_request(f"The emulator only supports name searches, not {query!r}.")
    words = [w.lower() for w in query.replace('"', " ").split()]
    return lambda name: all(w in name.lower() for w in words)


def _public_event(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if not k.startswith("_")}


def _encode_cursor(direction: str, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{direction}:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        direction, seq = raw.split(":")
        if direction not in ("next", "prev"):
            raise ValueError(direction)
        return direction, int(seq)
    except (ValueError, binascii.Error):
        raise field_error("_cursor", "Invalid cursor.") from None


def _cursor_page(
    matches: list[dict[str, Any]], cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """Latest first; ``cursor_next`` = older events, ``cursor_previous`` = newer ones."""
    newest_first = sorted(matches, key=lambda e: e["_seq"], reverse=True)
    if cursor is None:
        page = newest_first[:limit]
    else:
        direction, seq = _decode_cursor(cursor)
        if direction == "next":
            page = [e for e in newest_first if e["_seq"] < seq][:limit]
        else:
            page = [e for e in reversed(newest_first) if e["_seq"] > seq][:limit][::-1]
    if not page:
        return [], None, None
    first, last = page[0]["_seq"], page[-1]["_seq"]
    older = any(e["_seq"] < last for e in newest_first)
    newer = any(e["_seq"] > first for e in newest_first)
    return (
        page,
        _encode_cursor("next", last) if older else None,
        _encode_cursor("prev", first) if newer else None,
    )
