"""The Truto emulator's request reading and response formats (unified / raw / normalized).

The unified API's rules are in the package docstring (``sync.emulators.truto``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request

from sync.emulators.truto.common import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    RESPONSE_FORMATS,
    UNIFIED_FIELDS,
    Integration,
    TrutoError,
    validation_failure,
)


def shape(
    integration: Integration, kind: str, raw: Mapping[str, Any], request: Request
) -> dict[str, Any]:
    """``unified`` / ``raw`` / ``normalized``, minus excluded fields and ``remote_data``."""
    fmt, ignore_remote, excluded = check_formats(request)
    mapper = {
        "opportunities": integration.unified,
        "accounts": integration.unified_account,
        "users": integration.unified_user,
        "stages": integration.unified_stage,
    }[kind]
    if fmt == "raw":
        out = json.loads(json.dumps(raw))
    elif fmt == "normalized":
        unified = mapper(raw)
        names: Iterable[str] = UNIFIED_FIELDS if kind == "opportunities" else unified
        out = {name: unified.get(name) for name in names}
    else:
        out = mapper(raw)
        if not ignore_remote:
            out["remote_data"] = json.loads(json.dumps(raw))
    for name in excluded:
        out.pop(name, None)
    return dict(out)


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except json.JSONDecodeError as exc:
        raise TrutoError(400, f"Request body is not valid JSON: {exc.msg}") from exc
    if not isinstance(body, dict):
        raise TrutoError(400, "Request body must be a JSON object")
    if not isinstance(body.get("remote_data") or {}, dict):
        raise validation_failure("remote_data", "must be an object")
    return body


def page_limit(request: Request) -> int:
    value = request.query_params.get("limit")
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise validation_failure("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return int(value)


def check_formats(request: Request) -> tuple[str, bool, list[str]]:
    params = request.query_params
    fmt = params.get("truto_response_format", "unified")
    if fmt not in RESPONSE_FORMATS:
        raise validation_failure(
            "truto_response_format", f"must be one of {', '.join(RESPONSE_FORMATS)}"
        )
    ignore = params.get("truto_ignore_remote_data", "false").lower()
    if ignore not in {"true", "false", "1", "0"}:
        raise validation_failure("truto_ignore_remote_data", "must be a boolean")
    excluded = params.getlist("truto_exclude_fields[]")
    for value in params.getlist("truto_exclude_fields"):
        excluded += [v.strip() for v in value.split(",") if v.strip()]
    return fmt, ignore in {"true", "1"}, excluded
