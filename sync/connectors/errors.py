"""Typed errors a connector raises, and the one table that classifies HTTP outcomes.

The engine acts on the class, never on a status code: ``RateLimited`` and ``Retryable`` are
tried again later, ``NotFound`` goes to the delete policy, ``Rejected`` goes to dead letters
with the vendor's own message, ``AuthFailed`` stops the system until credentials change.
``OutcomeUnknown`` marks a write whose request may have been applied (timeout or 5xx after
sending) — for creates the engine must look the record up before trying again.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

#: how much of a record's name or id an error message quotes
RECORD_CHARS = 80


def shorten(text: str, limit: int = RECORD_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was when it is cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


class ConnectorError(Exception):
    """Base of every error a connector raises. ``system`` and ``record`` say where."""

    def __init__(
        self,
        message: str,
        *,
        system: str = "",
        record: str | None = None,
        status: int | None = None,
    ) -> None:
        self.message = message
        self.system = system
        self.record = record
        self.status = status
        # The vendor's reason leads: the record named after it (and shortened) so a deal
        # with a 10,000-character name cannot push the reason out of a stored message.
        where = f"{system}: " if system else ""
        code = f" (HTTP {status})" if status else ""
        what = f" [record {shorten(record)}]" if record else ""
        super().__init__(f"{where}{message}{code}{what}")


class Retryable(ConnectorError):
    """A transient failure (connect error, timeout, 5xx): try again later."""


class OutcomeUnknown(Retryable):
    """A write was sent but its outcome is unknown (timeout / 5xx after sending)."""


class RateLimited(Retryable):
    """The vendor said 429. ``retry_after`` is the vendor's signal in seconds, if it sent one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class NotFound(ConnectorError):
    """The record does not exist (404) — deleted in the vendor, or never there."""


class Rejected(ConnectorError):
    """The vendor refused the request (4xx validation). Carries the vendor's own words."""

    def __init__(
        self, message: str, *, field_errors: Mapping[str, str] | None = None, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.field_errors: dict[str, str] = dict(field_errors or {})


class AuthFailed(ConnectorError):
    """Credentials are missing, wrong, expired or revoked (401/403/423)."""


class DeleteFeedGap(ConnectorError):
    """A vendor's delete feed no longer reaches back to where it was last read (Salesforce's
    delete log after a purge): deletes in between are lost from it, so the engine compares
    the system in full instead."""


class RequestNotSent(httpx.NetworkError):
    """A transport failure whose request was not written in full (the connection failed
    under the write, as httpcore's trace of the attempt says): the vendor cannot have acted on
    it, so it is retried even when it is a create. Raised by the HTTP layer's transport stack
    over the failure httpx reported (a write failure surfaces as the read after it failing)."""


class Action(enum.Enum):
    """What to do with one HTTP outcome (the Airbyte ResponseAction idea)."""

    SUCCESS = "success"
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    NOT_FOUND = "not_found"
    REJECT = "reject"
    AUTH = "auth"
    REFRESH_AUTH = "refresh_auth"


#: status code -> action. Anything 2xx is SUCCESS, 5xx RETRY; other codes not listed REJECT.
STATUS_ACTIONS: Mapping[int, Action] = {
    400: Action.REJECT,
    401: Action.REFRESH_AUTH,
    402: Action.AUTH,
    403: Action.AUTH,
    404: Action.NOT_FOUND,
    405: Action.REJECT,
    408: Action.RETRY,
    409: Action.REJECT,
    410: Action.NOT_FOUND,
    422: Action.REJECT,
    423: Action.AUTH,
    425: Action.RETRY,
    429: Action.RATE_LIMITED,
}


def classify_status(status: int) -> Action:
    """Classify an HTTP status code with the table above."""
    if 200 <= status < 300:
        return Action.SUCCESS
    if status >= 500:
        return Action.RETRY
    return STATUS_ACTIONS.get(status, Action.REJECT)


#: transport exception -> (action, may the request have reached the server?). First match wins,
#: so the "never sent" connect failures come before the timeouts and network errors they
#: subclass. A non-idempotent write is only retried when the answer is ``False``.
EXCEPTION_ACTIONS: Sequence[tuple[type[Exception], Action, bool]] = (
    (RequestNotSent, Action.RETRY, False),
    (httpx.ConnectError, Action.RETRY, False),
    (httpx.ConnectTimeout, Action.RETRY, False),
    (httpx.PoolTimeout, Action.RETRY, False),
    (httpx.TimeoutException, Action.RETRY, True),
    (httpx.NetworkError, Action.RETRY, True),
    (httpx.RemoteProtocolError, Action.RETRY, True),
)


def classify_exception(exc: BaseException) -> tuple[Action, bool] | None:
    """Classify a transport exception with the table above (None: not a transport failure)."""
    for kind, action, maybe_sent in EXCEPTION_ACTIONS:
        if isinstance(exc, kind):
            return action, maybe_sent
    return None
