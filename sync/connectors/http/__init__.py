"""The one HTTP layer: client factory, transport stack, auth flows, redaction and counters;
on the network, a connection pool per thread (``threads``).

Connectors build their client with :func:`build_client` and never retry or sleep themselves.
"""

from __future__ import annotations

from sync.connectors.http.auth import BearerAuth, CloseBasicAuth, ParsaLinkJWTAuth
from sync.connectors.http.client import (
    USER_AGENT,
    build_client,
    reset_epoch_header,
    reset_seconds_header,
    retry_after_header,
)
from sync.connectors.http.redact import redact_headers, redact_url
from sync.connectors.http.stats import REQUEST_STATS, RequestKey, RequestStats
from sync.connectors.http.transport import READ_ONLY, RetryAfter, RetryPolicy, is_idempotent

__all__ = [
    "READ_ONLY",
    "REQUEST_STATS",
    "USER_AGENT",
    "BearerAuth",
    "CloseBasicAuth",
    "ParsaLinkJWTAuth",
    "RequestKey",
    "RequestStats",
    "RetryAfter",
    "RetryPolicy",
    "build_client",
    "is_idempotent",
    "redact_headers",
    "redact_url",
    "reset_epoch_header",
    "reset_seconds_header",
    "retry_after_header",
]
