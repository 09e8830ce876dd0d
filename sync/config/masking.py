"""Hiding secrets in what crmsync shows: URL passwords and secret-looking query parameters,
and values under secret-looking keys (connector options). Used by ``Config.masked`` (``crmsync
config check``), by problems that quote a value, and by the CLI when it names a database."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sync.config.reader import looks_secret

MASK = "***"


def mask_secrets(value: Any) -> Any:
    """``value`` with every value under a secret-looking key masked, at any depth (connector
    options are free-form, so a key there may well hold one)."""
    if isinstance(value, Mapping):
        return {
            k: (MASK if looks_secret(k) and v not in (None, "") else mask_secrets(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets(item) for item in value]
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


def mask_url(url: str) -> str:
    """Hide the secret part of a URL's user info and keep everything else.

    Database and broker URLs keep the user name (``crm:***@db``); HTTP URLs lose the whole
    user info, because APIs such as Close take the key as the user name (``https://key:@…``).
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL after all: show none of it
        return MASK
    query = _mask_query(parts.query)
    userinfo, at, host = parts.netloc.rpartition("@")  # not .port: a bad port would raise
    if not at:  # (urlunsplit would turn sqlite:///x into sqlite:/x: keep the text)
        return url if query == parts.query else url.replace(parts.query, query, 1)
    parts = parts._replace(query=query)
    if parts.scheme in ("http", "https") or ":" not in userinfo:
        masked = MASK
    else:
        masked = f"{userinfo.split(':', 1)[0]}:{MASK}"
    return urlunsplit(parts._replace(netloc=f"{masked}@{host}"))


def _mask_query(query: str) -> str:
    """``?api_key=abc&x=1`` -> ``?api_key=***&x=1``: some APIs take the key in the URL."""
    if not query:
        return query
    pairs = []
    for pair in query.split("&"):
        key, sep, value = pair.partition("=")
        pairs.append(f"{key}{sep}{MASK}" if sep and value and looks_secret(key) else pair)
    return "&".join(pairs)
