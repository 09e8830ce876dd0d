"""The Close emulator's answers validate against Close's OpenAPI (tests/specs/close-openapi.yml,
a copy of shared/specs/close-openapi.yml kept in the repository: see tests/specs/README.md).

The spec (the api-evangelist/close mirror of Close's official, "experimental" OpenAPI) is read
once per session with openapi-core. Two defects of the spec are worked around and documented:

- openapi-spec-validator refuses it (``DuplicateOperationIDError``: every resource reuses
  ``list`` / ``get`` / …), so openapi-core's spec check is switched off; response validation
  itself works.
- The 200 schemas of ``GET /status/opportunity/``, ``GET /pipeline/``, ``GET /user/``,
  ``GET /custom_field/opportunity/`` and ``GET /event/`` are ``"Empty response body"`` objects
  that accept anything. Those answers are still run through openapi-core, and additionally
  through the documented shapes below (``SUPPLEMENT``) — written from the docs' descriptions
  (event log format, vendors.md §2.3/§2.5) and reusing the spec's own ``Opportunity`` schema for
  event payloads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import referencing
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.response.exceptions import InvalidData
from referencing.jsonschema import DRAFT202012

from sync.emulators.close import API_KEY, CloseEmulator

SPEC_PATH = Path(__file__).resolve().parents[1] / "specs" / "close-openapi.yml"
SPEC_URI = "urn:close-openapi"
HOST = "https://api.close.com"

Validate = Callable[[httpx.Response], None]


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"{SPEC_URI}#/components/schemas/{name}"}


_ID = {"type": "string", "pattern": "^[a-z]+_[0-9A-Za-z]+$"}
_LIST = {"type": "object", "required": ["data"], "properties": {"data": {"type": "array"}}}
_STATUS = {
    "type": "object",
    "required": ["id", "label", "type", "pipeline_id", "organization_id"],
    "properties": {"id": _ID, "label": {"type": "string"}, "type": _ref("OpportunityStatusType")},
}
_EVENT = {
    "type": "object",
    "required": [
        "id",
        "date_created",
        "date_updated",
        "object_type",
        "object_id",
        "lead_id",
        "action",
        "changed_fields",
        "data",
        "previous_data",
    ],
    "properties": {
        "date_created": {"type": "string", "format": "date-time"},
        "date_updated": {"type": "string", "format": "date-time"},
        "action": {"enum": ["created", "updated", "deleted"]},
        "changed_fields": {"type": "array", "items": {"type": "string"}},
        "data": {"oneOf": [_ref("Opportunity"), {"type": "null"}]},
        "previous_data": {"type": "object"},
    },
}
#: Documented shapes where the spec's 200 schema is empty (see the module docstring).
SUPPLEMENT: dict[str, dict[str, Any]] = {
    "/status/opportunity/": {**_LIST, "properties": {"data": {"items": _STATUS}}},
    "/pipeline/": {
        **_LIST,
        "properties": {
            "data": {
                "items": {
                    "required": ["id", "name", "statuses"],
                    "properties": {"id": _ID, "statuses": {"items": _STATUS}},
                }
            }
        },
    },
    "/user/": {
        **_LIST,
        "properties": {"data": {"items": {"required": ["id", "email", "first_name", "last_name"]}}},
    },
    "/custom_field/opportunity/": {
        **_LIST,
        "properties": {
            "data": {
                "items": {
                    "required": ["id", "name", "type", "accepts_multiple_values"],
                    "properties": {"id": {"type": "string", "pattern": "^cf_"}},
                }
            }
        },
    },
    "/event/": {
        "type": "object",
        "required": ["data", "cursor_next", "cursor_previous"],
        "properties": {
            "data": {"type": "array", "items": _EVENT},
            "cursor_next": {"type": ["string", "null"]},
            "cursor_previous": {"type": ["string", "null"]},
        },
    },
}


@pytest.fixture(scope="session")
def spec_dict() -> dict[str, Any]:
    with SPEC_PATH.open() as handle:
        loaded: dict[str, Any] = yaml.load(
            handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
    return loaded


@pytest.fixture(scope="session")
def openapi(spec_dict: dict[str, Any]) -> OpenAPI:
    # The spec fails openapi-spec-validator (duplicate operationIds), see the module docstring.
    return OpenAPI.from_dict(spec_dict, config=Config(spec_validator_cls=None))


@pytest.fixture(scope="session")
def registry(spec_dict: dict[str, Any]) -> referencing.Registry[Any]:
    empty: referencing.Registry[Any] = referencing.Registry()
    registry: referencing.Registry[Any] = empty.with_resource(
        SPEC_URI, DRAFT202012.create_resource(spec_dict)
    )
    return registry


@pytest.fixture
def check_spec(openapi: OpenAPI, registry: referencing.Registry[Any]) -> Validate:
    """Validate one emulator answer against the spec (and the supplement for its path)."""

    def check(response: httpx.Response) -> None:
        request = response.request
        path = request.url.path
        mock_request = MockRequest(
            HOST,
            request.method.lower(),
            path,
            args=dict(request.url.params),
            headers=dict(request.headers),
            data=request.content or None,
            content_type=request.headers.get("content-type", "application/json"),
        )
        mock_response = MockResponse(
            response.content, status_code=response.status_code, content_type="application/json"
        )
        openapi.validate_response(mock_request, mock_response)
        schema = SUPPLEMENT.get(path.removeprefix("/api/v1"))
        if schema is not None:
            validator = jsonschema.Draft202012Validator(
                schema,
                registry=registry,
                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
            )
            validator.validate(response.json())

    return check


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    emulator = CloseEmulator(seed=11, seed_opportunities=30)
    with httpx.Client(
        transport=emulator.transport(), base_url=f"{HOST}/api/v1", auth=(API_KEY, "")
    ) as http:
        yield http


def _label(client: httpx.Client, label: str) -> str:
    data = client.get("/status/opportunity/").json()["data"]
    return str(next(s["id"] for s in data if s["label"] == label))


def test_opportunity_list_and_filtered_list_validate(
    client: httpx.Client, check_spec: Validate
) -> None:
    """``GET /opportunity/`` answers (plain, filtered, ordered) match ``opportunities_list``."""
    check_spec(client.get("/opportunity/"))
    check_spec(client.get("/opportunity/", params={"status_type": "won", "_order_by": "-value"}))
    check_spec(client.get("/opportunity/", params={"date_updated__gte": "2020-01-01", "_limit": 5}))


def test_opportunity_crud_answers_validate(client: httpx.Client, check_spec: Validate) -> None:
    """Create, get, update (incl. custom fields and a won status) and delete match the spec."""
    lead = client.get("/lead/", params={"query": 'name:"Globex"'}).json()["data"][0]["id"]
    created = client.post(
        "/opportunity/",
        json={
            "lead_id": lead,
            "value": 250000,
            "value_period": "monthly",
            "confidence": 40,
            "custom.cf_OppName0000000000000000000000000000000001": "Globex - Audit",
        },
    )
    check_spec(created)
    url = f"/opportunity/{created.json()['id']}/"
    check_spec(client.get(url))
    check_spec(client.put(url, json={"status_id": _label(client, "Won"), "value": None}))
    check_spec(client.put(url, json={"status_id": _label(client, "Lost")}))
    check_spec(client.delete(url))


def test_untitled_lead_opportunity_validates(client: httpx.Client, check_spec: Validate) -> None:
    """An opportunity on a new "Untitled" lead (null lead name) still matches the spec."""
    check_spec(client.post("/opportunity/", json={}))


def test_supporting_resources_validate(client: httpx.Client, check_spec: Validate) -> None:
    """Statuses, pipelines, users, custom fields and leads (list, get, create) validate."""
    check_spec(client.get("/status/opportunity/"))
    check_spec(client.get("/pipeline/"))
    check_spec(client.get("/user/"))
    check_spec(client.get("/custom_field/opportunity/"))
    leads = client.get("/lead/")
    check_spec(leads)
    check_spec(client.get(f"/lead/{leads.json()['data'][0]['id']}/"))
    check_spec(client.post("/lead/", json={"name": "Initech Labs"}))


def test_event_log_validates_including_deletes(client: httpx.Client, check_spec: Validate) -> None:
    """Event pages — created, updated and deleted events (``data: null``) — validate."""
    created = client.post("/opportunity/", json={}).json()
    client.put(f"/opportunity/{created['id']}/", json={"confidence": 5})
    client.delete(f"/opportunity/{created['id']}/")
    page = client.get("/event/", params={"object_type": "opportunity", "object_id": created["id"]})
    assert [e["action"] for e in page.json()["data"]] == ["deleted", "updated", "created"]
    check_spec(page)


def test_validation_catches_a_wrong_answer(client: httpx.Client, check_spec: Validate) -> None:
    """The validator is not vacuous: a non-integer ``confidence`` is rejected."""
    answer = client.get("/opportunity/", params={"_limit": 1})
    body = answer.json()
    body["data"][0]["confidence"] = "high"
    broken = httpx.Response(200, content=json.dumps(body).encode(), request=answer.request)
    with pytest.raises(InvalidData, match=r"confidence|high"):
        check_spec(broken)


def test_supplement_catches_a_wrong_event_page(client: httpx.Client, check_spec: Validate) -> None:
    """The supplementary event schema rejects a page without ``cursor_next``."""
    client.post("/opportunity/", json={})
    answer = client.get("/event/")
    body = {k: v for k, v in answer.json().items() if k != "cursor_next"}
    broken = httpx.Response(200, content=json.dumps(body).encode(), request=answer.request)
    with pytest.raises(jsonschema.ValidationError):
        check_spec(broken)
