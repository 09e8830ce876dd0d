"""The value types config.yaml's settings are read as: durations (``30s``, ``1h30m``, at most a
year, with the floors of ``poll_every`` and ``reconcile_every``) and the http, database and
broker URLs. Each raises the pydantic error whose text becomes a problem's "expected …", so
the models in ``models`` only name these types."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}


#: the longest duration any setting takes (a year): beyond it a value is a typo, and far beyond
#: it a timedelta cannot even hold it
MAX_DURATION = dt.timedelta(days=365)


def parse_duration(value: object) -> dt.timedelta:
    """Read ``"30s"``, ``"2m"``, ``"1h30m"``, ``"1d"`` or a number of seconds as a timedelta,
    between zero and :data:`MAX_DURATION`."""
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and _is_duration_text(value.strip()):
        text = value.strip()
        seconds = sum(
            float(m.group(1)) * _DURATION_UNITS[m.group(2)] for m in _DURATION_PART.finditer(text)
        )
    else:
        raise PydanticCustomError("duration", 'a duration like "30s", "2m", "24h" or "1d"')
    if seconds != seconds or seconds < 0:  # NaN, or negative
        raise PydanticCustomError("duration", "a duration that is not negative")
    if seconds > MAX_DURATION.total_seconds():  # also inf: checked before timedelta overflows
        raise PydanticCustomError("duration", "a duration of at most 365d")
    return dt.timedelta(seconds=seconds)


def _at_least(minimum: dt.timedelta, *, zero_allowed: bool = False) -> Any:
    expected = "a duration of at least {minimum}"
    if zero_allowed:
        expected = "0s (off) or " + expected

    def check(value: dt.timedelta) -> dt.timedelta:
        if value < minimum and not (zero_allowed and not value):
            raise PydanticCustomError("duration", expected, {"minimum": format_duration(minimum)})
        return value

    return AfterValidator(check)


def _is_duration_text(text: str) -> bool:
    return bool(text) and _DURATION_PART.sub("", text) == ""


def format_duration(value: dt.timedelta) -> str:
    """Write a timedelta the way config.yaml spells it (``90s`` -> ``"1m30s"``)."""
    millis = round(value.total_seconds() * 1000)
    if millis == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    if millis:
        parts.append(f"{millis}ms")
    return "".join(parts)


Duration = Annotated[
    dt.timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
#: how often to poll a vendor: polling more than once a second only burns its rate limit
PollInterval = Annotated[Duration, _at_least(dt.timedelta(seconds=1))]
#: a full read of every system, or 0 for none scheduled: more often than once a minute a
#: reconcile would not finish before the next one is due
ReconcileInterval = Annotated[Duration, _at_least(dt.timedelta(minutes=1), zero_allowed=True)]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PydanticCustomError("url", "an http(s) URL like https://api.example.com/v1")
    return value.rstrip("/")


def _database_url(value: str) -> str:
    scheme = value.split(":", 1)[0] if "://" in value else ""
    dialect = scheme.split("+", 1)[0]
    if dialect not in ("sqlite", "postgresql"):
        raise PydanticCustomError(
            "url",
            'a database URL like "sqlite:///crmsync.db" or "postgresql+psycopg://user@host/db"',
        )
    return value


def _broker_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if urlsplit(value).scheme not in ("redis", "rediss", "amqp", "amqps"):
        raise PydanticCustomError("url", 'a broker URL like "redis://127.0.0.1:6379/0" or empty')
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
DatabaseUrl = Annotated[str, AfterValidator(_database_url)]
BrokerUrl = Annotated[str | None, AfterValidator(_broker_url)]
