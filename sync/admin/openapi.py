"""``/openapi.json`` and ``/docs``: the admin API's OpenAPI 3.1 document, built from the routes
and their docstrings (Starlette's :class:`SchemaGenerator`), and a page that reads it.

The shapes the endpoints answer are named once here (``components``); the refusals every
route can give (a missing token, a missing CSRF token, an oversized body, a bad parameter) are
added to each operation here too, so no docstring repeats them.
"""

from __future__ import annotations

import html
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.schemas import SchemaGenerator

from sync.admin.auth import OPEN_PATHS

_ERR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_S: dict[str, Any] = {"type": "string"}
_NS: dict[str, Any] = {"type": ["string", "null"]}
_NI: dict[str, Any] = {"type": ["integer", "null"]}
_OBJ: dict[str, Any] = {"type": "object"}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_RUN = _obj(
    ["id", "kind", "status", "counts"],
    id=_S,
    kind=_S,
    system=_NS,
    status=_S,
    started_at=_S,
    finished_at=_NS,
    counts=_OBJ,
    error=_NS,
)
SCHEMAS: dict[str, Any] = {
    "Error": _obj(["error"], error=_S),
    "Probe": _obj(["status"], status={"type": "string", "enum": ["ok", "unavailable"]}),
    "Queued": _obj(["run_id", "status"], run_id=_S, status={"const": "queued"}),
    "Run": _RUN,
    "RunDetail": {"allOf": [_ref("Run"), _obj(["touched"], touched={"type": "array"})]},
    "System": _obj(
        ["system", "health", "pending", "conflicts", "dead_letters"],
        system=_S,
        health={"type": "string", "enum": ["never", "error", "stale", "ok"]},
        cursor=_NS,
        last_poll_at=_NS,
        lag_seconds={"type": ["number", "null"]},
        last_error=_NS,
        pending={"type": "integer"},
        conflicts={"type": "integer"},
        dead_letters={"type": "integer"},
        healed=_NI,
        held=_NS,
        held_deletes={"type": "integer"},
        budget={
            "type": ["object", "null"],
            "description": "What the vendor's rate-limit headers last said is left (null: "
            "it reports none). reset_at: when the allowance is whole again, if it says; "
            "window: its period when it names one (Salesforce: day).",
            "required": ["remaining", "limit", "seen_at"],
            "properties": {
                "remaining": {"type": "number"},
                "limit": {"type": "number"},
                "reset_at": _NS,
                "window": _NS,
                "seen_at": _S,
            },
        },
        pace={
            "type": "object",
            "description": "The poll interval as configured and as the system's full "
            "listings allow (a scan system's stretches), why, and how late a change may be read.",
            "required": ["poll_every_seconds", "interval_seconds", "stretched"],
            "properties": {
                "poll_every_seconds": {"type": "number"},
                "interval_seconds": {"type": "number"},
                "stretched": {"type": "boolean"},
                "reason": _NS,
                "expected_lag_seconds": {"type": "number"},
                "listing_seconds": {"type": ["number", "null"]},
                "listing_requests": _NI,
                "estimated": {"type": "boolean"},
            },
        },
    ),
    "Status": _obj(
        ["systems", "runs"],
        systems={"type": "array", "items": {"$ref": "#/components/schemas/System"}},
        runs={"type": "array", "items": {"$ref": "#/components/schemas/Run"}},
    ),
    "Conflict": _obj(
        ["id", "record_id", "field", "status"],
        id={"type": "integer"},
        record_id=_S,
        field=_S,
        policy=_S,
        ours={},
        ours_system=_NS,
        theirs={},
        theirs_system=_NS,
        winner=_NS,
        status=_S,
        reason=_NS,
    ),
    "DeadLetter": _obj(
        ["id", "system", "direction", "op", "error", "status"],
        id={"type": "integer"},
        record_id=_NS,
        system=_S,
        direction=_S,
        op=_S,
        external_id=_NS,
        error=_S,
        status=_S,
        payload={},
    ),
    "Replayed": _obj(
        ["replayed", "rereads"], replayed={"type": "array"}, rereads={"type": "array"}
    ),
    "ReplayedOne": _obj(
        ["id", "system", "direction", "reread"],
        id={"type": "integer"},
        system=_S,
        direction=_S,
        reread=_NS,
    ),
    "Deal": _obj(
        ["record_id", "fields", "copies", "journal"],
        record_id=_S,
        fields=_OBJ,
        held={"type": "array"},
        copies={"type": "array"},
        journal={"type": "array"},
    ),
    "RunList": _obj(["runs"], runs={"type": "array", "items": _ref("Run")}),
    "ConflictList": _obj(["conflicts"], conflicts={"type": "array", "items": _ref("Conflict")}),
    "DeadLetterList": _obj(
        ["dead_letters"], dead_letters={"type": "array", "items": _ref("DeadLetter")}
    ),
    "DealList": _obj(["deals"], deals={"type": "array", "items": _OBJ}),
    "History": _obj(["record_id", "history"], record_id=_S, history={"type": "array"}),
    "FirstRunState": _obj(["state"], state=_S),
    "SystemDone": _obj(["system"], system=_S),
    "Object": _OBJ,
    "LetterStatus": {"type": "string", "enum": ["open", "replayed", "resolved"], "default": "open"},
    "Approval": _obj(
        [], settle={"type": "object", "additionalProperties": {"type": "array", "items": _S}}
    ),
    "ResyncBody": _obj([], system=_NS, full={"type": "boolean"}),
    "SystemBody": _obj([], system=_NS),
    "Take": _obj(["take"], take={"type": "string", "description": "a system name, or ours"}),
    "Rebind": _obj([], new_account={"type": "boolean"}),
    "Waiting": _obj(
        ["first_run", "held_systems", "parked"],
        first_run=_OBJ,
        held_systems={"type": "array"},
        parked={"type": "array"},
    ),
}


def _schema(value: Any) -> Any:
    """A docstring's ``schema: Name`` names a component; anything else is inline."""
    return _ref(value) if isinstance(value, str) else value


def _expand(operation: dict[str, Any]) -> None:
    """Docstrings write ``schema: X`` where OpenAPI wants ``content: {application/json:
    {schema: X}}`` (responses, request bodies) and name components by their bare names."""
    for parameter in operation.get("parameters", []):
        if "schema" in parameter:
            parameter["schema"] = _schema(parameter["schema"])
    parts = [*operation.get("responses", {}).values()]
    if "requestBody" in operation:
        parts.append(operation["requestBody"])
    for part in parts:
        if "schema" in part:
            part["content"] = {"application/json": {"schema": _schema(part.pop("schema"))}}


def _with_refusals(path: str, method: str, operation: dict[str, Any]) -> None:
    """Add the refusals every route can give to one operation's responses."""
    responses = operation.setdefault("responses", {})
    has_params = bool(operation.get("parameters")) or "requestBody" in operation
    if has_params or method == "post":
        responses.setdefault(400, {"description": "a bad parameter or body", **_ERR})
    if path in OPEN_PATHS:
        return
    responses.setdefault(401, {"description": "no valid token or session", **_ERR})
    if method == "post":
        responses.setdefault(403, {"description": "a signed-in session without CSRF token", **_ERR})
        responses.setdefault(413, {"description": "the body is too large", **_ERR})


def document(request: Request) -> dict[str, Any]:
    generator = SchemaGenerator(
        {
            "openapi": "3.1.0",
            "info": {
                "title": "crmsync admin API",
                "version": "1",
                "description": "Operate a running crmsync: health, runs, conflicts, dead "
                "letters, deals and what waits for a person. Send `Authorization: Bearer "
                "$CRMSYNC_ADMIN_TOKEN` (or sign in to the console).",
            },
            "components": {
                "schemas": SCHEMAS,
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            },
            "security": [{"bearer": []}],
        }
    )
    schema: dict[str, Any] = generator.get_schema(routes=request.app.routes)
    said = {
        (info.path, info.http_method): (info.func.__doc__ or "").split("---")[0].strip()
        for info in generator.get_endpoints(request.app.routes)
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            operation.setdefault("description", " ".join(said.get((path, method), "").split()))
            _expand(operation)
            _with_refusals(path, method, operation)
    return schema


def openapi_json(request: Request) -> JSONResponse:
    return JSONResponse(document(request))


def docs_page(request: Request) -> HTMLResponse:
    """A readable page of the same document: every operation, its parameters and answers."""
    schema = document(request)
    parts = [
        f"<h1>{html.escape(schema['info']['title'])}</h1>",
        f"<p>{html.escape(schema['info']['description'])}</p>",
        '<p>The machine-readable document: <a href="/openapi.json">/openapi.json</a>.</p>',
    ]
    for path, operations in sorted(schema.get("paths", {}).items()):
        for method, op in operations.items():
            params = (
                ", ".join(f"{p['name']} ({p['in']})" for p in op.get("parameters", [])) or "none"
            )
            answers = ", ".join(
                f"{code} {html.escape(str(r.get('description', '')))}"
                for code, r in sorted(op.get("responses", {}).items(), key=lambda i: str(i[0]))
            )
            parts.append(
                f"<section><h2><code>{method.upper()} {html.escape(path)}</code> — "
                f"{html.escape(op.get('summary', ''))}</h2>"
                f"<p>{html.escape(op.get('description', ''))}</p>"
                f"<p><b>Parameters:</b> {html.escape(params)}</p>"
                f"<p><b>Answers:</b> {answers}</p></section>"
            )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>crmsync admin API'
        '</title><link rel="stylesheet" href="/console/static/console.css"></head>'
        f'<body><main class="docs">{"".join(parts)}</main></body></html>'
    )
    return HTMLResponse(page)
