"""Salesforce sessions: a given access token, or OAuth 2.0 client credentials renewed on 401.

Client credentials (https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm):
``POST {login}/services/oauth2/token`` with ``grant_type=client_credentials``, ``client_id``
and ``client_secret`` answers ``access_token`` and ``instance_url``. A session that expired
answers 401 ``INVALID_SESSION_ID``: a new token is fetched and the request sent once more. The
instance URL can change (My Domain, org moves); requests go to the one the token names.
"""

from __future__ import annotations

import threading
from collections.abc import Generator

import httpx


class SalesforceAuth(httpx.Auth):
    """Bearer a fixed ``token``, or fetch one by client credentials from ``token_url``."""

    requires_response_body = True

    def __init__(
        self,
        *,
        token: str | None = None,
        token_url: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
    ) -> None:
        self._token = token
        self._token_url = token_url
        self._client = (client_id, client_secret)
        self._instance: httpx.URL | None = None
        self._lock = threading.Lock()
        self.renewals = 0

    @property
    def renews(self) -> bool:
        return self._token_url is not None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token is None and self.renews:
            failed = yield from self._renew()
            if failed is not None:
                return
        used = self._token
        self._sign(request)
        response = yield request
        if response.status_code != 401 or not self.renews:
            return
        if used == self._token:  # nobody renewed meanwhile
            failed = yield from self._renew()
            if failed is not None:
                return
        self._sign(request)
        yield request

    def _sign(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = f"Bearer {self._token}"
        instance = self._instance
        if instance is not None and request.url.path.startswith("/services/"):
            request.url = request.url.copy_with(
                scheme=instance.scheme, host=instance.host, port=instance.port
            )

    def _renew(self) -> Generator[httpx.Request, httpx.Response, httpx.Response | None]:
        """Fetch a session; None on success, else the failed token answer (the caller's
        request then fails with that answer: the connector raises ``AuthFailed``)."""
        assert self._token_url is not None
        client_id, client_secret = self._client
        form = {
            "grant_type": "client_credentials",
            "client_id": client_id or "",
            "client_secret": client_secret or "",
        }
        response = yield httpx.Request("POST", self._token_url, data=form)
        try:
            body = response.json()
        except ValueError:
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not response.is_success or not isinstance(token, str):
            return response
        with self._lock:
            self._token = token
            self.renewals += 1
            instance = body.get("instance_url") if isinstance(body, dict) else None
            self._instance = httpx.URL(instance) if isinstance(instance, str) else None
        return None
