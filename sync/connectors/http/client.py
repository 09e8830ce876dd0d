"""``build_client``: the one httpx client factory every connector uses."""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import httpx

from sync import __version__
from sync.connectors.http.stats import REQUEST_STATS, RequestStats
from sync.connectors.http.threads import ThreadTransports
from sync.connectors.http.transport import (
    InstrumentTransport,
    RateLimitTransport,
    RetryAfter,
    RetryPolicy,
    RetryTransport,
    WriteWatchTransport,
)
from sync.connectors.ratelimit import RateLimiter
from sync.timefmt import parse_http_date

USER_AGENT = f"crmsync/{__version__}"


class _NoCookies(httpx.Cookies):
    """Cookies that keep nothing: no vendor API we call authenticates by cookie, and httpx
    copying every response into a urllib cookie request cost ~10 % of its time per call."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class Client(httpx.Client):
    """``httpx.Client`` with two costs per request taken out: the cookie jar (above), and
    joining a relative URL to ``base_url``, which httpx does by parsing the URL twice (a
    quarter of building a request). Here a relative URL is joined as text and parsed once,
    and the few URLs sent again and again (a collection's POST, a list) are parsed once."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        pass  # keeps nothing (``httpx.Client.__init__`` sets an empty jar)

    def request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        if isinstance(url, str) and "://" not in url:
            url = _joined(str(self.base_url), url)
        return super().request(method, url, **kwargs)


_NO_COOKIES = _NoCookies()


@lru_cache(maxsize=512)
def _joined(base: str, url: str) -> httpx.URL:
    """``url`` (relative) under ``base``, as httpx's own merge makes it: the base's path (which
    httpx keeps ending in ``/``; an empty one prints as nothing), then the URL's without its
    leading slashes."""
    return httpx.URL(base.removesuffix("/") + "/" + url.lstrip("/"))


#: Connections of one thread's pool (:mod:`sync.connectors.http.threads`): a thread sends one
#: request at a time, so one is kept alive; a few more only if a response were held open. An
#: idle connection is dropped after 4 s, before a server does: uvicorn (the emulators) and
#: Node close theirs after 5 s, and a request written as the server closes the connection
#: fails with its outcome unknown (the 30 s this was let the emulators close first).
POOL_LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=1, keepalive_expiry=4)


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process, shared by every system's client: building one loads the
    CA bundle (~20 ms of CPU), which each engine paid once per system — every CLI command and
    every worker's first task."""
    return httpx.create_ssl_context()


def _network_transport() -> httpx.BaseTransport:
    """One thread's connection pool to a vendor."""
    return httpx.HTTPTransport(verify=_tls(), limits=POOL_LIMITS, retries=0)


def build_client(
    *,
    system: str,
    base_url: str,
    auth: httpx.Auth | None,
    timeout: float,
    limiter: RateLimiter | None,
    retry: RetryPolicy,
    retry_after: RetryAfter,
    transport: httpx.BaseTransport | None = None,
    headers: Mapping[str, str] | None = None,
    stats: RequestStats | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` for one system: base URL, auth, timeouts, pool, User-Agent, and the
    retry -> rate limit -> instrument -> write watch transport stack around ``transport``
    (default: the network, a connection pool per thread).

    ``timeout`` is the read/write/pool timeout; connecting gets at most 10 s of it.
    ``retry_after`` reads the vendor's wait signal off a 429/503 (seconds, or None).
    """
    inner = transport or ThreadTransports(_network_transport)
    stack: httpx.BaseTransport = InstrumentTransport(
        WriteWatchTransport(inner), system=system, stats=stats or REQUEST_STATS
    )
    stack = RateLimitTransport(stack, system=system, limiter=limiter)
    stack = RetryTransport(
        stack, system=system, policy=retry, limiter=limiter, retry_after=retry_after
    )
    return Client(
        base_url=base_url,
        auth=auth,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
        transport=stack,
        follow_redirects=False,
    )


# -- vendor wait signals, in seconds from now ------------------------------------------------


def retry_after_header(response: httpx.Response) -> float | None:
    """RFC 9110 ``Retry-After``: delay-seconds or an HTTP-date."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    when = parse_http_date(value)
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def reset_epoch_header(response: httpx.Response, name: str) -> float | None:
    """A header holding the Unix time the window resets (ParsaLink's ``X-RateLimit-Reset``)."""
    value = response.headers.get(name)
    if value is None:
        return None
    try:
        return max(0.0, float(value) - time.time())
    except ValueError:
        return None


def reset_seconds_header(response: httpx.Response, name: str) -> float | None:
    """A header holding seconds until the window resets (Truto's ``ratelimit-reset``)."""
    value = response.headers.get(name)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
