"""Secret redaction for everything the HTTP layer logs: URLs (user info, query) and headers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

MASK = "***"

#: Query parameter or header names whose values are secrets: names containing one of the
#: first group, or equal to one of the second (``key=``, OAuth's ``code=``).
_SECRET_NAME = re.compile(
    r"token|secret|passw|api[-_]?key|auth|signature|session|cookie|credential"
    r"|^(?:key|code|sig|access|refresh)$",
    re.IGNORECASE,
)
#: Headers that are secret whatever they are called like.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def is_secret_name(name: str) -> bool:
    """Whether a query parameter or header called ``name`` carries a secret."""
    return name.lower() in _SECRET_HEADERS or bool(_SECRET_NAME.search(name))


def redact_url(url: str | httpx.URL) -> str:
    """The URL with user info and secret-looking query values replaced by ``***``."""
    parts = urlsplit(str(url))
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if is_secret_name(k) else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def redact_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | httpx.Headers,
) -> dict[str, str]:
    """Headers as a plain dict with every secret value replaced by ``***``."""
    items = headers.items() if isinstance(headers, Mapping | httpx.Headers) else headers
    return {name: MASK if is_secret_name(name) else value for name, value in items}
