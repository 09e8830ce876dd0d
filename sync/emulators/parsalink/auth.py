"""The ParsaLink emulator's authentication: API key or JWT, login and rotating refresh.

The API's rules are in the package docstring (``sync.emulators.parsalink``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sync.emulators.parsalink.common import (
    ACCESS_TTL,
    REFRESH_TTL,
    REQUIRED,
    Invalid,
    detail,
    json_body,
)
from sync.emulators.parsalink.data import ParsaLinkData


class ParsaLinkAuth(ParsaLinkData):
    """Bearer auth with the workspace API key or an HS256 JWT from ``/auth/login/``."""

    api_key: str
    _secret: bytes
    _token_count: int

    def authenticate(self, request: Request) -> Response | None:
        if request.url.path.startswith(f"{self.prefix}/auth/"):
            return None  # login and refresh are how a client gets a token
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            return unauthorized("Authentication credentials were not provided.")
        token = header[7:].strip()
        if hmac.compare_digest(token, self.api_key) or self._claims(token, "access"):
            return None
        return unauthorized("Given token not valid for any token type", code="token_not_valid")

    def _token(self, user_id: str, kind: str, ttl: dt.timedelta) -> str:
        self._token_count += 1
        now = self.clock.peek()
        claims = {
            "token_type": kind,
            "user_id": user_id,
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            "jti": f"{self._token_count:08d}",
        }
        return _jwt_encode(claims, self._secret)

    def _claims(self, token: str, kind: str) -> dict[str, Any] | None:
        """The claims of a valid, unexpired token of ``kind``, else None."""
        claims = _jwt_decode(token, self._secret)
        if claims is None or claims.get("token_type") != kind:
            return None
        if claims.get("user_id") not in self.collections["users"]:
            return None
        return claims if claims.get("exp", 0) > self.clock.peek().timestamp() else None

    def _token_pair(self, user_id: str) -> dict[str, str]:
        return {
            "access": self._token(user_id, "access", ACCESS_TTL),
            "refresh": self._token(user_id, "refresh", REFRESH_TTL),
        }

    async def _login(self, request: Request) -> Response:
        body = await json_body(request)
        missing = {k: [REQUIRED] for k in ("email", "password") if not body.get(k)}
        if missing:
            raise Invalid(400, missing)
        user = next(
            (u for u in self.collections["users"].values() if u["email"] == body["email"]), None
        )
        if user is None or self._passwords.get(user["email"]) != body["password"]:
            return detail(401, "No active account found with the given credentials")
        keys = ("id", "email", "firstName", "lastName")
        profile = {**{k: user[k] for k in keys}, "workspaceId": self.workspace_id}
        return JSONResponse({**self._token_pair(user["id"]), "user": profile})

    async def _refresh(self, request: Request) -> Response:
        body = await json_body(request)
        token = body.get("refresh")
        if not token or not isinstance(token, str):
            raise Invalid(400, {"refresh": [REQUIRED]})
        claims = self._claims(token, "refresh")
        if claims is None:
            return detail(401, "Token is invalid or expired", code="token_not_valid")
        if claims["jti"] in self._used_refresh:
            return detail(401, "Token is blacklisted", code="token_not_valid")
        self._used_refresh.add(claims["jti"])  # rotation: the old refresh token dies now
        return JSONResponse(self._token_pair(claims["user_id"]))


def unauthorized(message: str, **extra: Any) -> JSONResponse:
    response = detail(401, message, **extra)
    response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt_encode(claims: dict[str, Any], secret: bytes) -> str:
    """An HS256 JWT, like the ``eyJ…`` tokens in ParsaLink's authentication docs."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def _jwt_decode(token: str, secret: bytes) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    expected = hmac.new(secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(_b64(expected), parts[2]):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None
