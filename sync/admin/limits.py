"""What the admin API refuses before it does any work: oversized bodies, deeply nested JSON,
ids no store can hold, malformed query parameters, weak tokens.

Every refusal is a JSON 4xx with a message a person can act on; none of them reads more of a
request than it needs to say no (a 50 MB body is refused at its ``Content-Length``, or at the
first chunk past the limit when it is streamed without one).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: the largest request body the API reads; its bodies are a few small JSON fields
MAX_BODY_BYTES = 1024 * 1024
#: the deepest JSON nesting a body may have (its bodies are flat objects)
MAX_JSON_DEPTH = 32
#: ids are 64-bit integers in every store we support
MAX_ID = 2**63 - 1
#: the shortest admin token accepted: anything shorter can be guessed
MIN_TOKEN_CHARS = 16


class RequestRefused(Exception):
    """A request the API will not act on: answered ``status`` with ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def token_problem(token: str, env: str) -> str | None:
    """Why ``token`` cannot protect the admin API, or None when it can."""
    token = token.strip()
    hint = f"(e.g. `export {env}=$(openssl rand -hex 32)`)"
    if not token:
        return f"the admin API needs a bearer token: set {env} to a long random value {hint}"
    if len(token) < MIN_TOKEN_CHARS:
        return (
            f"{env} is {len(token)} characters; the admin API needs at least "
            f"{MIN_TOKEN_CHARS} so it cannot be guessed {hint}"
        )
    return None


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes is answered 413 without being read whole."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await _send_json(send, 413, self._message())
            return
        seen, started = 0, False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise RequestRefused(self._message(), 413)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except Exception:
            # The refusal surfaces from whichever task read the body (wrapped in a task
            # group's error by a middleware): answer it here, where it always arrives.
            if seen <= self.limit or started:
                raise
            await _send_json(send, 413, self._message())

    def _message(self) -> str:
        return f"the request body is larger than {self.limit} bytes"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
        continue
    return None


async def _send_json(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object; :class:`RequestRefused` (400) for anything else."""
    if not raw:
        return {}
    depth = json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise RequestRefused(f"the body nests JSON deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise RequestRefused(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestRefused("the body must be a JSON object")
    return data


def json_depth(raw: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in ``raw``, outside strings (no parsing, no recursion:
    a 100,000-deep array would overflow the JSON decoder's stack)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    return deepest  # enough to refuse: stop reading
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def record_id(value: int, what: str) -> int:
    """``value`` as a store id; an id no store can hold is simply not there (404)."""
    if not 0 < value <= MAX_ID:
        raise RequestRefused(f"no {what} {value}", 404)
    return value


def int_param(params: Any, name: str, default: int, *, low: int, high: int) -> int:
    """Query parameter ``name`` as an int in ``[low, high]``; 400 naming it otherwise."""
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RequestRefused(f"?{name} must be a whole number, got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise RequestRefused(f"?{name} must be between {low} and {high}, got {value}")
    return value


def choice_param(params: Any, name: str, default: str, choices: tuple[str, ...]) -> str:
    """Query parameter ``name`` as one of ``choices``; 400 listing them otherwise."""
    raw = params.get(name, default)
    if raw not in choices:
        raise RequestRefused(f"?{name} must be one of {', '.join(choices)}, got {raw[:40]!r}")
    return str(raw)
