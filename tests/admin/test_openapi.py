"""The admin API's own description: ``/openapi.json`` is a valid OpenAPI 3.1 document built
from the code, it documents every API route, and no request — well-formed or not, generated
by Hypothesis from the document itself — gets a 500 or an answer the document does not list,
nor a body that does not fit the documented schema. Probes: ``/livez`` depends on nothing,
``/readyz`` (and its old name ``/health``) on the database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from starlette.testclient import TestClient

from sync.admin.app import create_app
from sync.config import parse_config
from sync.engine.context import Engine
from sync.runtime.backend import AdminBackend
from sync.store.db import make_engine, upgrade

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "t0ken-for-openapi-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    url = f"sqlite:///{tmp_path_factory.mktemp('openapi') / 'crmsync.db'}"
    upgrade(url)
    config = parse_config((ROOT / "config.yaml").read_text(), env={})
    engine = Engine.from_config(config, make_engine(url))
    backend = AdminBackend(engine, lambda s, f: "run_x", lambda s: None)
    return TestClient(create_app(backend, token=TOKEN), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def document(client: TestClient) -> dict[str, Any]:
    answer = client.get("/openapi.json", headers=AUTH)
    assert answer.status_code == 200
    found: dict[str, Any] = answer.json()
    return found


def test_the_document_is_valid_openapi_and_lists_every_api_route(
    document: dict[str, Any],
) -> None:
    validate(document)
    paths = set(document["paths"])
    assert {"/status", "/runs", "/runs/{run_id}", "/conflicts/{conflict_id}/resolve"} <= paths
    assert {"/livez", "/readyz", "/waiting", "/first-run/approve", "/records"} <= paths
    assert not any(path.startswith("/console") for path in paths)
    resolve = document["paths"]["/conflicts/{conflict_id}/resolve"]["post"]
    assert "unheld" in resolve["description"]  # the docstring's words, not a copy


def test_probes_live_without_dependencies_ready_with_the_database(client: TestClient) -> None:
    assert client.get("/livez").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"
    assert client.get("/health").json() == ready.json()


def test_a_bad_parameter_is_a_json_400_not_a_500(client: TestClient) -> None:
    """`/status?runs=abc` was a plain-text 500."""
    answer = client.get("/status?runs=abc", headers=AUTH)
    assert answer.status_code == 400
    assert "runs" in answer.json()["error"]
    assert client.get("/runs?system=nowhere", headers=AUTH).status_code == 400
    assert client.get("/records?q=", headers=AUTH).status_code == 400
    assert client.get("/runs/nope", headers=AUTH).json() == {"error": "no such run"}


# --------------------------------------------------------------------------- fuzzing

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), TEXT, st.sampled_from(["ruddr", "ours"])
)
BODIES = st.one_of(
    st.dictionaries(st.sampled_from(["system", "full", "take", "settle", "new_account"]), VALUES),
    st.just({"settle": {"A00001": ["rec_x", "rec_y"]}}),
    st.just({"settle": "no"}),
)


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, methods in sorted(document["paths"].items())
        for method, operation in sorted(methods.items())
        # the decisions act on the store for real; their refusals are fuzzed, not their effects
        if not path.startswith(("/first-run/", "/systems/", "/deadletters/replay"))
    ]


def _check(document: dict[str, Any], operation: dict[str, Any], answer: Any, what: str) -> None:
    documented = {str(code) for code in operation["responses"]}
    assert answer.status_code != 500, f"{what}: {answer.text}"
    assert str(answer.status_code) in documented, f"{what}: undocumented {answer.status_code}"
    content = operation["responses"][str(answer.status_code)].get("content", {})
    schema = content.get("application/json", {}).get("schema")
    if schema is not None:
        Draft202012Validator({**schema, "components": document["components"]}).validate(
            answer.json()
        )


def _fill(path: str, params: dict[str, str]) -> str:
    """The path with its parameters percent-encoded, as a client sends them (a raw "?" would
    end the path and ask another route)."""
    for name, value in params.items():
        path = path.replace("{" + name + "}", quote(value, safe=""))
    return path


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_no_request_gets_a_500_or_an_undocumented_answer(
    client: TestClient, document: dict[str, Any], data: st.DataObject
) -> None:
    path, method, operation = data.draw(st.sampled_from(_operations(document)))
    query: dict[str, str] = {}
    in_path: dict[str, str] = {}
    for parameter in operation.get("parameters", []):
        value = data.draw(st.one_of(TEXT, st.integers(-(2**70), 2**70).map(str)))
        if parameter["in"] == "path":
            in_path[parameter["name"]] = value.replace("/", "") or "0"
        elif data.draw(st.booleans()):
            query[parameter["name"]] = value
    url = _fill(path, in_path)
    headers = data.draw(st.sampled_from([AUTH, {}, {"Authorization": "Bearer wrong"}]))
    if method == "get":
        answer = client.get(url, params=query, headers=headers)
    else:
        raw = data.draw(st.one_of(BODIES.map(json.dumps), st.sampled_from(["[1]", "{", ""])))
        answer = client.post(url, params=query, content=raw, headers=headers)
    if answer.status_code == 404 and "no route" in answer.text:
        return  # a path parameter the route's converter refuses (an int route given text)
    _check(document, operation, answer, f"{method.upper()} {url} {query}")
