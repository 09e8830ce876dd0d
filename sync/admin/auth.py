"""Who may use the admin API and the console: a bearer token (scripts, the CLI) or a signed
session cookie (a person in a browser, signed in with the same token).

The session cookie holds ``expiry.nonce.signature`` — an HMAC of the admin token, so it works
on every replica of the admin process and dies when the token is rotated. It is ``HttpOnly``
(no script reads it), ``SameSite=Strict`` (no other site's page sends it) and ``Secure`` when
the request came over HTTPS. Every request that changes something and is authenticated by the
cookie must also carry the session's CSRF token (``X-CSRF-Token`` header, or a ``csrf`` form
field), an HMAC of the same nonce: a page of another origin can neither read it nor guess it.
A bearer request needs none: a browser never adds that header on its own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

COOKIE = "crmsync_session"
#: a signed-in session lasts a working day; signing in again is cheap
SESSION_SECONDS = 12 * 3600
#: paths anyone may reach: probes, the sign-in page and what it needs
OPEN_PATHS = frozenset(
    {
        "/health",
        "/livez",
        "/readyz",
        "/console/login",
        "/console/static/console.css",
        "/console/static/console.js",
    }
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Session:
    nonce: str
    csrf: str


class Sessions:
    """Issues and checks session cookies and CSRF tokens, keyed on the admin token."""

    def __init__(self, token: str) -> None:
        self._key = hashlib.sha256(b"crmsync-console\0" + token.encode()).digest()
        self._token = token.encode()
        #: nonces signed out in this process (other replicas see the cookie cleared)
        self._ended: set[str] = set()

    def token_ok(self, given: str) -> bool:
        return hmac.compare_digest(given.strip().encode(), self._token)

    def _sign(self, *parts: str) -> str:
        return hmac.new(self._key, "\0".join(parts).encode(), hashlib.sha256).hexdigest()

    def issue(self, now: float | None = None) -> str:
        expiry = str(int((now or time.time()) + SESSION_SECONDS))
        nonce = secrets.token_urlsafe(18)
        return f"{expiry}.{nonce}.{self._sign('session', expiry, nonce)}"

    def check(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session of a valid, unexpired cookie, else None."""
        if not cookie or cookie.count(".") != 2:
            return None
        expiry, nonce, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign("session", expiry, nonce)):
            return None
        if not expiry.isdigit() or int(expiry) < (now or time.time()) or nonce in self._ended:
            return None
        return Session(nonce, self._sign("csrf", nonce))

    def end(self, cookie: str | None) -> None:
        found = self.check(cookie)
        if found is not None:
            self._ended.add(found.nonce)


def set_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def _wants_html(request: Request) -> bool:
    return request.url.path.startswith("/console") or request.url.path in ("/", "/docs")


class AdminAuth(BaseHTTPMiddleware):
    """Refuses every request but the open paths without the bearer token or a session; a
    cookie-authenticated request that changes something also needs the CSRF token."""

    def __init__(self, app: Any, sessions: Sessions) -> None:
        super().__init__(app)
        self.sessions = sessions

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path in OPEN_PATHS:
            return await call_next(request)
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme or given:
            if scheme.lower() == "bearer" and self.sessions.token_ok(given):
                return await call_next(request)
            return _refuse()
        session = self.sessions.check(request.cookies.get(COOKIE))
        if session is None:
            if _wants_html(request) and request.method in SAFE_METHODS:
                return RedirectResponse("/console/login", status_code=303)
            return _refuse()
        if request.method not in SAFE_METHODS and not await _csrf_ok(request, session):
            return JSONResponse(
                {"error": "this action needs the page's CSRF token: reload the page and retry"},
                status_code=403,
            )
        request.state.session = session
        return await call_next(request)


async def _csrf_ok(request: Request, session: Session) -> bool:
    given = request.headers.get("x-csrf-token", "")
    if not given and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        from urllib.parse import parse_qs

        given = (parse_qs((await request.body()).decode("utf-8", "replace")).get("csrf") or [""])[0]
    return bool(given) and hmac.compare_digest(given.encode(), session.csrf.encode())


def _refuse() -> JSONResponse:
    return JSONResponse(
        {"error": "a valid bearer token (or a signed-in session) is required"},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="crmsync"'},
    )
