"""``httpx.Auth`` flows for the vendors: Bearer, Close's Basic, ParsaLink's rotating JWT.

Auth flows run above the transport stack, so their own requests (ParsaLink's login and refresh)
are rate limited, counted and redacted like any other.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Generator
from typing import Any

import httpx
import structlog

log = structlog.get_logger("sync.connectors.http")


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>`` (Ruddr API keys, Truto tokens, ParsaLink ``pk_`` keys)."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class CloseBasicAuth(httpx.BasicAuth):
    """Close: HTTP Basic with the API key as user name and an empty password.

    https://developer.close.com/topics/authentication/
    """

    def __init__(self, api_key: str) -> None:
        super().__init__(api_key, "")


class ParsaLinkJWTAuth(httpx.Auth):
    """ParsaLink e-mail/password login with short-lived access tokens and rotating refresh tokens.

    https://docs.parsalink.io/api-reference/authentication — ``POST /auth/login/ {email,
    password}`` gives ``{access, refresh}``; access tokens live 1 h; ``POST /auth/token/refresh/
    {refresh}`` gives a new access token and, because refresh tokens *rotate on use*, a new
    refresh token: the old one is dead after one use, so only the newest is kept. If a refresh
    fails (expired, or already rotated by another worker), the flow logs in again.

    The access token is refreshed ahead of its ``exp`` claim and again on any 401.
    """

    requires_response_body = True
    #: Refresh this long before the access token's ``exp``.
    leeway = 30.0

    def __init__(
        self,
        base_url: str,
        email: str,
        password: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._email = email
        self._password = password
        self._clock = clock
        self._lock = threading.Lock()
        self.access: str | None = None
        self.refresh: str | None = None
        self._expires_at = 0.0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._needs_token():
            failed = yield from self._renew()
            if failed is not None:
                return  # the login's own 4xx is the answer: the connector raises AuthFailed
        used = self.access
        request.headers["Authorization"] = f"Bearer {used}"
        response = yield request
        if response.status_code != 401:
            return
        if used == self.access:  # nobody else renewed meanwhile
            failed = yield from self._renew()
            if failed is not None:
                return
        request.headers["Authorization"] = f"Bearer {self.access}"
        yield request

    def _needs_token(self) -> bool:
        with self._lock:
            return self.access is None or self._clock() >= self._expires_at - self.leeway

    def _renew(self) -> Generator[httpx.Request, httpx.Response, httpx.Response | None]:
        """Refresh (or log in when there is no refresh token or it is refused).

        Returns None on success, else the failed login response.
        """
        if self.refresh is not None:
            response = yield self._post("/auth/token/refresh/", {"refresh": self.refresh})
            if response.is_success and self._store(response):
                return None
            log.info("parsalink.refresh_failed", status=response.status_code)
        response = yield self._post(
            "/auth/login/", {"email": self._email, "password": self._password}
        )
        if response.is_success and self._store(response):
            return None
        return response

    def _post(self, path: str, body: dict[str, str]) -> httpx.Request:
        return httpx.Request("POST", f"{self._base}{path}", json=body)

    def _store(self, response: httpx.Response) -> bool:
        try:
            body = response.json()
        except ValueError:
            return False
        access = body.get("access") if isinstance(body, dict) else None
        if not isinstance(access, str):
            return False
        with self._lock:
            self.access = access
            self.refresh = body.get("refresh") or self.refresh
            self._expires_at = _jwt_expiry(access) or self._clock() + 3600.0
        return True


def _jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, unverified (only used to refresh before it lapses)."""
    try:
        payload = token.split(".")[1]
        claims: Any = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None
