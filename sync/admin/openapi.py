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
_OBJ: dict[str, Any] = {"type": "object"}
# The property types a shape names by a word; ``[word]`` is an array of that type, or of the
# component named ``word``.
_TYPES: dict[str, dict[str, Any]] = {
    "str": _S,
    "str?": _NS,
    "int": {"type": "integer"},
    "int?": {"type": ["integer", "null"]},
    "num": {"type": "number"},
    "num?": {"type": ["number", "null"]},
    "bool": {"type": "boolean"},
    "obj": _OBJ,
    "list": {"type": "array"},
    "any": {},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _type(word: str) -> dict[str, Any]:
    if word.startswith("[") and word.endswith("]"):
        item = word[1:-1]
        return {"type": "array", "items": _TYPES[item] if item in _TYPES else _ref(item)}
    return _TYPES[word]


def _shape(spec: str, **named: Any) -> dict[str, Any]:
    """An object schema from ``spec``'s words, ``name[!][:type]`` in property order: ``!``
    marks a required property, ``type`` is a word of ``_TYPES`` (or ``[word]``), and a name
    without one takes its schema from the keyword argument of that name."""
    required: list[str] = []
    props: dict[str, Any] = {}
    for word in spec.split():
        name, _, kind = word.partition(":")
        if name.endswith("!"):
            name = name[:-1]
            required.append(name)
        props[name] = _type(kind) if kind else named.pop(name)
    if named:
        raise ValueError(f"shape {spec!r} does not list {sorted(named)}")
    return {"type": "object", "required": required, "properties": props}


def _described(spec: str, description: str, *, nullable: bool = False) -> dict[str, Any]:
    """A :func:`_shape` with a description (and maybe null), its keys in the order the
    document has always served them."""
    shape = _shape(spec)
    return {
        "type": ["object", "null"] if nullable else "object",
        "description": description,
        "required": shape["required"],
        "properties": shape["properties"],
    }


_BUDGET = _described(
    "remaining!:num limit!:num reset_at:str? window:str? seen_at!:str",
    "What the vendor's rate-limit headers last said is left (null: it reports none). reset_at: "
    "when the allowance is whole again, if it says; window: its period when it names one "
    "(Salesforce: day).",
    nullable=True,
)
_PACE = _described(
    "poll_every_seconds!:num interval_seconds!:num stretched!:bool reason:str? "
    "expected_lag_seconds:num listing_seconds:num? listing_requests:int? estimated:bool",
    "The poll interval as configured and as the system's full listings allow (a scan system's "
    "stretches), why, and how late a change may be read.",
)
SCHEMAS: dict[str, Any] = {
    "Error": _shape("error!:str"),
    "Probe": _shape("status!", status={"type": "string", "enum": ["ok", "unavailable"]}),
    "Queued": _shape("run_id!:str status!", status={"const": "queued"}),
    "Run": _shape(
        "id!:str kind!:str system:str? status!:str started_at:str finished_at:str? "
        "counts!:obj error:str?"
    ),
    "RunDetail": {"allOf": [_ref("Run"), _shape("touched!:list")]},
    "System": _shape(
        "system!:str health! cursor:str? last_poll_at:str? lag_seconds:num? last_error:str? "
        "pending!:int conflicts!:int dead_letters!:int healed:int? held:str? "
        "held_deletes:int budget pace",
        health={"type": "string", "enum": ["never", "error", "stale", "ok"]},
        budget=_BUDGET,
        pace=_PACE,
    ),
    "Status": _shape("systems!:[System] runs!:[Run]"),
    "Conflict": _shape(
        "id!:int record_id!:str field!:str policy:str ours:any ours_system:str? theirs:any "
        "theirs_system:str? winner:str? status!:str reason:str?"
    ),
    "DeadLetter": _shape(
        "id!:int record_id:str? system!:str direction!:str op!:str external_id:str? "
        "error!:str status!:str payload:any"
    ),
    "Replayed": _shape("replayed!:list rereads!:list"),
    "ReplayedOne": _shape("id!:int system!:str direction!:str reread!:str?"),
    "Deal": _shape("record_id!:str fields!:obj held:list copies!:list journal!:list"),
    "RunList": _shape("runs!:[Run]"),
    "ConflictList": _shape("conflicts!:[Conflict]"),
    "DeadLetterList": _shape("dead_letters!:[DeadLetter]"),
    "DealList": _shape("deals!:[obj]"),
    "History": _shape("record_id!:str history!:list"),
    "FirstRunState": _shape("state!:str"),
    "SystemDone": _shape("system!:str"),
    "Object": _OBJ,
    "LetterStatus": {"type": "string", "enum": ["open", "replayed", "resolved"], "default": "open"},
    "Approval": _shape("settle", settle={"type": "object", "additionalProperties": _type("[str]")}),
    "ResyncBody": _shape("system:str? full:bool"),
    "SystemBody": _shape("system:str?"),
    "Take": _shape("take!", take={"type": "string", "description": "a system name, or ours"}),
    "Rebind": _shape("new_account:bool"),
    "Waiting": _shape("first_run!:obj held_systems!:list parked!:list"),
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
