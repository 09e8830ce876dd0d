"""structlog set-up: readable lines in a terminal, JSON lines otherwise, secrets never logged.

Call :func:`configure_logging` once at start-up (the CLI does). Everything logged — through
``structlog.get_logger()`` or the standard library (httpx, celery, alembic) — goes through the
same processors, so the :func:`redact` processor sees every event before it is written.

Context (run, system, record, task ids) is carried in contextvars: ``bind_run(run_id)`` at the
start of a run and every log line inside it carries ``run_id`` — see structlog's contextvars
guide, https://www.structlog.org/en/stable/contextvars.html.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal, ParamSpec, TextIO, TypeVar

import structlog
from structlog.contextvars import bind_contextvars, bound_contextvars, clear_contextvars
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["console", "json"]
FORMAT_ENV = "CRMSYNC_LOG_FORMAT"
LEVEL_ENV = "CRMSYNC_LOG_LEVEL"
REDACTED = "[REDACTED]"

__all__ = [
    "REDACTED",
    "bind_record",
    "bind_run",
    "bind_system",
    "bind_task",
    "carried",
    "clear_context",
    "configure_logging",
    "current_format",
    "get_logger",
    "log_context",
    "redact",
]

# --------------------------------------------------------------------------- redaction

# Key names (lower-case, without "-" and "_") whose values are secrets wherever they appear.
_SECRET_KEYS = frozenset(
    {
        "authorization",
        "proxyauthorization",
        "cookie",
        "setcookie",
        "credentials",
        "refresh",
        "access",
        "bearer",
        "auth",
        "privatekey",
        "sessionid",
        "signature",
        "xapikey",
    }
)
_SECRET_SUFFIXES = ("token", "secret", "password", "passwd", "apikey", "accesskey")

_NAME = r"[A-Za-z0-9_.\-]*"
# key=value pairs (query strings, form bodies, "token=abc" in messages) with a secret key name.
_PAIR = re.compile(rf"(?P<key>{_NAME})=(?P<value>[^&\s\"',;]+)")
# "key": "value" inside logged JSON text.
_JSON_PAIR = re.compile(
    rf"(?P<q>[\"'])(?P<key>{_NAME})(?P=q)(?P<sep>\s*:\s*)(?P<v>[\"'])[^\"']*(?P=v)"
)
# scheme://userinfo@host — Close puts the API key in the user name (https://key:@api.close.com).
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s\"']+@")
# Authorization header values that end up in text.
_AUTH_SCHEME = re.compile(r"\b(?P<scheme>Bearer|Basic|Token|Bot)\s+[A-Za-z0-9._~+/=\-]+", re.I)


def is_secret_key(key: object) -> bool:
    """Whether a dict key / query parameter / header name holds a secret."""
    if not isinstance(key, str):
        return False
    name = key.lower().replace("-", "").replace("_", "").replace(".", "")
    return name in _SECRET_KEYS or name.endswith(_SECRET_SUFFIXES)


def redact_text(text: str) -> str:
    """Remove credentials from free text: URL user info, ``api_key=…`` pairs, auth schemes."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    text = _PAIR.sub(lambda m: f"{m['key']}={REDACTED}" if is_secret_key(m["key"]) else m[0], text)
    text = _JSON_PAIR.sub(
        lambda m: (
            f"{m['q']}{m['key']}{m['q']}{m['sep']}{m['v']}{REDACTED}{m['v']}"
            if is_secret_key(m["key"])
            else m[0]
        ),
        text,
    )
    return _AUTH_SCHEME.sub(lambda m: f"{m['scheme']} {REDACTED}", text)


def redact_value(value: Any, _depth: int = 0) -> Any:
    """Return ``value`` with secrets removed from nested mappings, lists, pairs and strings."""
    if _depth > 20:  # a self-referencing structure must not hang logging
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if is_secret_key(k) else redact_value(v, _depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, tuple) and len(value) == 2 and is_secret_key(value[0]):
        return (value[0], REDACTED)  # header pairs: [("Authorization", "Bearer …")]
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(item, _depth + 1) for item in value]
    if _looks_like_headers(value):
        return redact_value(dict(value.items()), _depth + 1)
    return value


def _looks_like_headers(value: object) -> bool:
    # httpx.Headers and similar multi-dicts are Mappings only by duck type.
    return callable(getattr(value, "items", None)) and callable(getattr(value, "keys", None))


def redact(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: strip secrets from every key and value of the event."""
    return {
        key: REDACTED if is_secret_key(key) else redact_value(value)
        for key, value in event_dict.items()
    }


# --------------------------------------------------------------------------- context


def bind_run(run_id: object, **extra: object) -> None:
    """Tag every following log line in this context with the run id."""
    bind_contextvars(run_id=str(run_id), **extra)


def bind_system(system: str, **extra: object) -> None:
    """Tag every following log line in this context with the system name."""
    bind_contextvars(system=system, **extra)


def bind_record(record_id: object, **extra: object) -> None:
    """Tag every following log line in this context with the canonical record id."""
    bind_contextvars(record_id=str(record_id), **extra)


def bind_task(task_id: str, task_name: str | None = None, **extra: object) -> None:
    """Tag every following log line with the Celery task id (call it from ``task_prerun``)."""
    bind_contextvars(task_id=task_id, **({"task": task_name} if task_name else {}), **extra)


def clear_context() -> None:
    """Forget every bound id — at the start of each unit of work (task, run)."""
    clear_contextvars()


@contextmanager
def log_context(**values: object) -> Iterator[None]:
    """Bind ids for the duration of a ``with`` block only."""
    with bound_contextvars(**values):
        yield


P = ParamSpec("P")
T = TypeVar("T")


def carried(fn: Callable[P, T], /, **values: object) -> Callable[P, T]:
    """``fn``, to be run on a pool thread with this thread's log context (run, system, task)
    and ``values`` (e.g. ``record_id``) bound: a thread pool's threads do not inherit
    contextvars, so lines logged there would name no run. Make one per submitted call (one
    context cannot run on two threads at once)."""
    context = contextvars.copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        def inner() -> T:
            with bound_contextvars(**values):
                return fn(*args, **kwargs)

        return context.run(inner)

    return run


def get_logger(name: str | None = None, **initial: object) -> Any:
    """A structlog logger (``name`` becomes the ``logger`` key)."""
    return structlog.get_logger(name, **initial) if name else structlog.get_logger(**initial)


# --------------------------------------------------------------------------- configuration

_HANDLER_NAME = "crmsync"
# Libraries that log every request (or every scheduled job, or every task) at INFO: useful when
# debugging, noise otherwise. APScheduler says "Running job"/"executed successfully" twice per
# system per poll; Celery "received"/"succeeded" for every task (failures stay: ERROR; our own
# capture_done / drain_done lines say what a poll or drain did).
_CHATTY = (
    "httpx",
    "httpcore",
    "hpack",
    "urllib3",
    "asyncio",
    "alembic",
    "apscheduler",
    "celery.worker.strategy",
    "celery.app.trace",
)
# Keys libraries add for their own coloured console output (uvicorn's ``color_message``).
_COLOUR_KEYS = ("color_message",)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_configured: LogFormat | None = None


def resolve_format(fmt: str | None, stream: TextIO) -> LogFormat:
    """Explicit choice, else ``$CRMSYNC_LOG_FORMAT``, else console on a TTY and JSON otherwise."""
    choice = fmt or os.environ.get(FORMAT_ENV) or ""
    if choice in ("console", "json"):
        return choice  # type: ignore[return-value]
    if choice:
        raise ValueError(f"log format must be console or json, got {choice!r}")
    return "console" if _isatty(stream) else "json"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def drop_colours(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: no ANSI escape codes in a JSON line (uvicorn colours its messages
    and adds a ``color_message`` copy of each; a log shipper would store the codes verbatim)."""
    for key in _COLOUR_KEYS:
        event_dict.pop(key, None)
    for key, value in event_dict.items():
        if isinstance(value, str) and "\x1b" in value:
            event_dict[key] = _ANSI.sub("", value)
    return event_dict


def current_format() -> LogFormat | None:
    """The format :func:`configure_logging` last chose in this process (None before)."""
    return _configured


def _renderer(fmt: LogFormat, stream: TextIO) -> Processor:
    if fmt == "json":
        return structlog.processors.JSONRenderer(sort_keys=False, default=str)
    return structlog.dev.ConsoleRenderer(
        colors=_isatty(stream), exception_formatter=structlog.dev.plain_traceback
    )


def configure_logging(
    fmt: str | None = None,
    level: str | int | None = None,
    *,
    stream: TextIO | None = None,
) -> LogFormat:
    """Configure structlog and the standard library together; safe to call again.

    Args:
        fmt: ``"console"``, ``"json"`` or ``None`` to decide from ``$CRMSYNC_LOG_FORMAT`` / TTY.
        level: a level name or number; default ``$CRMSYNC_LOG_LEVEL`` or ``INFO``.
        stream: where lines go (default stderr, so stdout stays free for command output).

    Returns:
        The format chosen.
    """
    target = stream if stream is not None else sys.stderr
    chosen = resolve_format(fmt, target)
    numeric = _level(level if level is not None else os.environ.get(LEVEL_ENV, "INFO"))
    shared = _shared_processors()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: structlog.testing.capture_logs() must be able to swap processors.
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Exceptions become text *before* redaction: tracebacks quote URLs and headers too.
            structlog.processors.format_exc_info,
            redact,
            *([drop_colours] if chosen == "json" else []),
            _renderer(chosen, target),
        ],
    )
    _install_handler(formatter, stream, numeric)
    # Python warnings (Celery's SecurityWarning, deprecations) become log lines too: in JSON
    # mode a raw "file.py:893: Warning" line would be the one line a log shipper cannot parse.
    logging.captureWarnings(True)
    global _configured
    _configured = chosen
    return chosen


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}")
    return number


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the call, not at set-up.

    Test runners and CLI runners swap ``sys.stderr``; a handler holding the old one would
    write to a closed file after they restore it.
    """

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _install_handler(formatter: logging.Formatter, stream: TextIO | None, level: int) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream) if stream is not None else _CurrentStderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(level if level <= logging.DEBUG else logging.WARNING)
