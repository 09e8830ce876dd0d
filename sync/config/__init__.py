"""Typed configuration: pydantic models of config.yaml and a loader whose errors point at lines.

Shape of config.yaml::

    store:   {url: "${CRMSYNC_DATABASE_URL:-sqlite:///crmsync.db}"}
    broker:  {url: "${CRMSYNC_BROKER_URL:-}"}       # empty: embedded mode
    sync:    {lookback: 2m, reconcile_every: 24h, batch_size: 100}
    conflicts:
      default: latest            # latest | manual | {prefer: [system, ...]}
      skew: 5s                   # clock-skew tolerance for `latest`
      priority: [ruddr, close, parsalink, truto_salesforce]
      fields: {description: manual, amount: {prefer: [ruddr]}}
    systems:
      ruddr:
        type: ruddr              # ruddr | close | parsalink | truto
        base_url: ${RUDDR_BASE_URL:-http://127.0.0.1:8711/api/workspace}
        credentials: {token: "${RUDDR_TOKEN:-ruddr-test-token}"}
        poll_every: 30s
        rate_limit: {rate: 20, burst: 60}
        capture: scan            # scan | incremental (default: what the vendor supports)
        deletes: unlink          # propagate | unlink | ignore
        create: true             # may crmsync create deals in this system?
        auto_create_companies: false
        options: {}              # connector options (Truto: integrated_account_id)
    mapping: {...}               # see sync.mapping.spec

Rules the loader enforces (and the README's configuration reference repeats):

- ``${VAR}`` and ``${VAR:-default}`` are replaced from the environment in every string value;
  ``$$`` is a literal ``$``. An unset ``${VAR}`` without a default is an error.
- Everything under a system's ``credentials`` must come from the environment: each value is one
  whole ``${VAR}`` or ``${VAR:-default}`` — a literal, or literal text around a reference, is an
  error (the fallback is allowed so the shipped file works against the local emulators out of
  the box). Each connector type takes its own keys (:data:`CREDENTIAL_KEYS`).
- ``CRMSYNC_DATABASE_URL`` overrides ``store.url`` and ``CRMSYNC_BROKER_URL`` ``broker.url``.
- Unknown keys are rejected, and so are unknown names where names are expected (canonical
  fields under ``conflicts.fields``, systems in ``priority`` / ``prefer`` — each once — and
  canonical stages, see :func:`sync.mapping.spec.stage_vocabulary_problems`).
- Durations are written ``500ms``, ``30s``, ``2m``, ``24h``, ``1d`` or combined (``1h30m``),
  from ``0s`` to ``365d``; ``poll_every`` is at least ``1s``, ``reconcile_every`` ``0s`` (off)
  or at least ``1m``.
- YAML aliases may add at most ``MAX_ALIAS_VALUES`` values (``sync.config_reader``).
- Secrets never appear in :meth:`Config.masked_yaml` nor in a problem: credentials, URL
  passwords and secret-looking query parameters, and options whose key looks like a secret.
- Every problem is reported at once, each as
  ``config.yaml:14 systems.close.poll_every: expected a duration like "30s", got "soon"``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from sync.config_reader import ConfigError as ConfigError  # re-exported: callers catch it here
from sync.config_reader import ConfigProblem as ConfigProblem
from sync.config_reader import KeyPath, Reader, found_text, looks_secret
from sync.config_reader import format_key_path as format_key_path
from sync.mapping.spec import MappingSpec, stage_vocabulary_problems
from sync.model import CANONICAL_FIELDS
from sync.money_config import CurrencyConfig, RatesConfig
from sync.money_config import cross_checks as currency_checks

SystemType = Literal["ruddr", "close", "parsalink", "truto"]
DeletePolicy = Literal["propagate", "unlink", "ignore"]

DEFAULT_PATH = "config.yaml"
CONFIG_ENV = "CRMSYNC_CONFIG"
DATABASE_URL_ENV = "CRMSYNC_DATABASE_URL"
BROKER_URL_ENV = "CRMSYNC_BROKER_URL"
MASK = "***"

# --------------------------------------------------------------------------- value types

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

# --------------------------------------------------------------------------- models


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreConfig(_Strict):
    url: DatabaseUrl = "sqlite:///crmsync.db"


class BrokerConfig(_Strict):
    url: BrokerUrl = None


MatchField = Literal["name", "company", "owner", "stage", "close_date", "amount", "currency"]


def _name_and_company() -> list[MatchField]:
    return ["name", "company"]


class MatchConfig(_Strict):
    """How a guided first run matches deals that already exist in several systems (no id in
    common): ``fields`` must agree once normalised (case, whitespace, punctuation, company
    suffixes); ``tie_breakers`` split a group that holds two deals of one system."""

    fields: list[MatchField] = Field(default_factory=_name_and_company, min_length=1)
    tie_breakers: list[MatchField] = Field(default_factory=list)
    #: name similarity (0..1) above which two unmatched deals are reported as a near-miss
    near_miss: float = Field(default=0.85, gt=0, le=1)


def _share(value: object) -> object:
    """``10%`` or ``0.1``: a share of a system's deals."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100
        except ValueError:
            raise PydanticCustomError("share", 'a share like "10%" or 0.1') from None
    return value


Share = Annotated[float, BeforeValidator(_share), Field(ge=0, le=1)]


class DeleteGuardConfig(_Strict):
    """The mass-delete guard: one capture that would delete or unlink more than ``max_share``
    of a system's linked deals, or more than ``max_count``, holds the system until an operator
    confirms or discards (``crmsync deletes``). Fewer than ``min_count`` never trip it (a small
    system losing 1 of 5 deals is an ordinary delete, not a broken account)."""

    max_share: Share = 0.10
    max_count: int = Field(default=50, ge=0)
    min_count: int = Field(default=3, ge=1)
    enabled: bool = True


class SyncConfig(_Strict):
    lookback: Duration = dt.timedelta(minutes=2)
    reconcile_every: ReconcileInterval = dt.timedelta(hours=24)
    batch_size: int = Field(default=100, gt=0, le=10_000)
    # canonical fields that identify a deal when no external id does (e.g. [name, company]),
    # compared exactly, at every capture; ``match`` is the normalised rule of the first run
    natural_key: list[str] = Field(default_factory=list)
    match: MatchConfig = Field(default_factory=MatchConfig)
    #: guided: creates wait for ``crmsync match --approve`` when two or more systems already
    #: held deals at their first read; automatic: the proposed matches are applied unattended;
    #: waive: no first-run matching (creates start once every system was read)
    first_run: Literal["guided", "automatic", "waive"] = "guided"
    #: default for every system; ``systems.NAME.delete_guard`` overrides it
    delete_guard: DeleteGuardConfig = Field(default_factory=DeleteGuardConfig)


class PreferPolicy(_Strict):
    prefer: list[str] = Field(min_length=1)


_POLICY_EXPECTED = '"latest", "manual" or {prefer: [system, ...]}'


def _one_policy_error(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # A union reports one error per member; people want one sentence about the field.
    try:
        return handler(value)
    except ValidationError as exc:
        raise PydanticCustomError("policy", _POLICY_EXPECTED) from exc


Policy = Annotated[Literal["latest", "manual"] | PreferPolicy, WrapValidator(_one_policy_error)]


class ConflictConfig(_Strict):
    default: Policy = "latest"
    skew: Duration = dt.timedelta(seconds=5)
    priority: list[str] = Field(default_factory=list)
    fields: dict[str, Policy] = Field(default_factory=dict)


class RateLimitConfig(_Strict):
    rate: float = Field(gt=0)  # requests per second
    burst: float | None = Field(default=None, gt=0)


class SystemConfig(_Strict):
    type: SystemType
    base_url: HttpUrl
    credentials: dict[str, str] = Field(default_factory=dict)
    poll_every: PollInterval = dt.timedelta(seconds=30)
    rate_limit: RateLimitConfig | None = None
    capture: Literal["scan", "incremental"] | None = None
    deletes: DeletePolicy = "unlink"
    create: bool = True
    auto_create_companies: bool = False
    timeout: float = Field(default=30.0, gt=0, le=3600)
    #: pushes in flight at once to this system (each waits on the vendor; the rate limit
    #: still bounds requests per second)
    concurrency: int = Field(default=8, gt=0, le=64)
    options: dict[str, Any] = Field(default_factory=dict)
    #: how the system holds currencies (sync.money_config; defaults per vendor type)
    currency: CurrencyConfig = Field(default_factory=CurrencyConfig)
    delete_guard: DeleteGuardConfig | None = None  # default: sync.delete_guard


class Config(_Strict):
    store: StoreConfig = Field(default_factory=StoreConfig)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    conflicts: ConflictConfig = Field(default_factory=ConflictConfig)
    systems: dict[str, SystemConfig]
    mapping: MappingSpec = Field(default_factory=dict)
    #: the rates ``currency.foreign: convert`` uses (sync.money_config.RatesConfig)
    currency_rates: RatesConfig | None = None

    def masked(self) -> dict[str, Any]:
        """The resolved configuration as plain data: credentials, URL passwords and connector
        options whose key looks like a secret masked."""
        data = self.model_dump(mode="json", by_alias=True)
        for system in data["systems"].values():
            system["credentials"] = {key: MASK for key in system["credentials"]}
            system["base_url"] = mask_url(system["base_url"])
            system["options"] = mask_secrets(system["options"])
        # Mappings are long; only what differs from the defaults says anything.
        data["mapping"] = {
            name: spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
            for name, spec in self.mapping.items()
        }
        data["store"]["url"] = mask_url(data["store"]["url"])
        if data["broker"]["url"]:
            data["broker"]["url"] = mask_url(data["broker"]["url"])
        return data

    def masked_yaml(self) -> str:
        """:meth:`masked` as YAML, in the file's key order (for ``crmsync config check``)."""
        return yaml.safe_dump(self.masked(), sort_keys=False, allow_unicode=True)


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


# --------------------------------------------------------------------------- validation


_EXPECTED_BY_TYPE = {
    "missing": "this required key",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "none_required": "nothing",
}


def _pydantic_problems(reader: Reader, data: Any, exc: ValidationError) -> Iterator[ConfigProblem]:
    """One problem per key path: a union's alternatives become one "expected a or b"."""
    grouped: dict[KeyPath, list[tuple[str, str]]] = {}
    for error in exc.errors(include_url=False):
        kind = error["type"]
        path = _data_path(
            data, tuple(error["loc"]), keep_last=kind in ("missing", "extra_forbidden")
        )
        if kind == "extra_forbidden":
            expected, found = _known_keys_hint(path), f'unknown key "{path[-1]}"'
        elif kind == "missing":
            expected, found = _EXPECTED_BY_TYPE[kind], "nothing"
        else:
            expected, found = _expected(error), _shown(path, error.get("input"))
        grouped.setdefault(path, []).append((expected, found))
    for path, alternatives in grouped.items():
        if path in reader.reported:  # e.g. an unset ${VAR} also fails the URL check
            continue
        expected = " or ".join(dict.fromkeys(e for e, _ in alternatives))
        location = reader.sources.get(path, f"{reader.location}:{reader.line_of(path)}")
        yield ConfigProblem(location, path, expected, alternatives[0][1])


def _shown(path: KeyPath, value: object) -> str:
    """What a problem says it found, never a secret: values under secret-looking keys are not
    shown and URLs lose their passwords."""
    if any(looks_secret(part) for part in path if isinstance(part, str)):
        return "a value (not shown: it may be a secret)"
    if isinstance(value, str) and "://" in value:
        return found_text(mask_url(value))
    return found_text(value)


def _data_path(data: Any, loc: KeyPath, *, keep_last: bool) -> KeyPath:
    """``loc`` without the entries pydantic adds for union members (``str``, ``list[str]``)."""
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        found, child = _child(node, part)
        if found or (keep_last and i == len(loc) - 1):
            path.append(part)
            node = child
    return tuple(path)


def _child(node: Any, part: str | int) -> tuple[bool, Any]:
    if isinstance(node, Mapping) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, None


def _expected(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "literal_error":
        return "one of " + str(ctx.get("expected", "")).replace("'", "")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = next(iter(ctx.values()), "")
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # "greater than 0", not "greater than 0.0"
        words = {
            "greater_than": "greater than",
            "greater_than_equal": "at least",
            "less_than": "less than",
            "less_than_equal": "at most",
        }[kind]
        return f"a number {words} {bound}"
    if kind == "too_short":
        return "a non-empty list"
    return _EXPECTED_BY_TYPE.get(kind, str(error["msg"]))


def _known_keys_hint(path: KeyPath) -> str:
    known = _allowed_keys(path[:-1])
    if not known:
        return "no key here"
    close = difflib.get_close_matches(str(path[-1]), known, n=1)
    listed = ", ".join(known)
    return f'"{close[0]}" (known keys: {listed})' if close else f"one of {listed}"


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            models = [a for a in typing.get_args(tp) if isinstance(a, type) and a is not type(None)]
            tp = next((a for a in models if issubclass(a, BaseModel)), models[0] if models else tp)
            if typing.get_origin(tp) in (Union, types.UnionType):
                return tp
        else:
            return tp


def _allowed_keys(path: KeyPath) -> list[str]:
    """The keys a mapping at ``path`` accepts, read off the models (for "did you mean")."""
    tp: Any = Config
    for part in path:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = _model_field(tp, str(part))
            if field is None:
                return []
            tp = field.annotation
        elif typing.get_origin(tp) in (dict, list):
            tp = typing.get_args(tp)[-1]
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [field.alias or name for name, field in tp.model_fields.items()]
    return []


def _model_field(model: type[BaseModel], key: str) -> Any:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field
    return None


# --------------------------------------------------------------------------- cross checks


#: the credentials each connector reads (``make_auth``); any other key is a typo
CREDENTIAL_KEYS: dict[str, tuple[str, ...]] = {
    "ruddr": ("token",),
    "close": ("api_key",),
    "parsalink": ("api_key", "email", "password"),  # an API key, or a JWT login
    "truto": ("token",),
}


def _cross_checks(data: Mapping[str, Any]) -> Iterator[tuple[KeyPath, str, str]]:
    systems = data.get("systems")
    known = set(systems) if isinstance(systems, Mapping) else set()
    system_list = ", ".join(sorted(known)) or "(none configured)"
    expect_system = f"a system named under systems: ({system_list})"
    mapping = data.get("mapping")
    if isinstance(mapping, Mapping):
        # Unknown canonical fields are caught by SystemMapping itself (extra keys forbidden).
        for system in mapping:
            if system not in known:
                yield ("mapping", system), expect_system, f'"{system}"'
    if isinstance(systems, Mapping):
        for name, system in systems.items():
            yield from _credential_keys(name, system)
    conflicts = data.get("conflicts")
    if isinstance(conflicts, Mapping):
        yield from _named_systems(conflicts.get("priority"), ("conflicts", "priority"), known)
        yield from _conflict_fields(conflicts.get("fields"))
        for key, policy in _policies(conflicts):
            if isinstance(policy, Mapping):
                prefer_path = (*key, "prefer")
                yield from _named_systems(policy.get("prefer"), prefer_path, known)
    yield from currency_checks(data)


def _did_you_mean(name: str, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    listed = f"{what}: {', '.join(known)}"
    return f'"{close[0]}" ({listed})' if close else f"one of {', '.join(known)}"


def _credential_keys(name: str, system: Any) -> Iterator[tuple[KeyPath, str, str]]:
    if not isinstance(system, Mapping) or not isinstance(system.get("credentials"), Mapping):
        return
    allowed = CREDENTIAL_KEYS.get(str(system.get("type")))
    if allowed is None:  # an unknown type is reported at `type`
        return
    for key in system["credentials"]:
        if key not in allowed:
            what = f"{system['type']} credentials"
            yield (
                ("systems", name, "credentials", key),
                _did_you_mean(str(key), list(allowed), what),
                f'unknown key "{key}"',
            )


def _conflict_fields(fields: Any) -> Iterator[tuple[KeyPath, str, str]]:
    if not isinstance(fields, Mapping):
        return
    for field in fields:
        if field not in CANONICAL_FIELDS:
            expected = _did_you_mean(str(field), list(CANONICAL_FIELDS), "canonical fields")
            yield ("conflicts", "fields", field), expected, f'unknown field "{field}"'


def _policies(conflicts: Mapping[str, Any]) -> Iterator[tuple[KeyPath, Any]]:
    yield ("conflicts", "default"), conflicts.get("default")
    fields = conflicts.get("fields")
    if isinstance(fields, Mapping):
        for field, policy in fields.items():
            yield ("conflicts", "fields", field), policy


def _named_systems(
    names: Any, path: KeyPath, known: set[str]
) -> Iterator[tuple[KeyPath, str, str]]:
    if not isinstance(names, list):
        return
    listed = ", ".join(sorted(known)) or "(none configured)"
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not isinstance(name, str):
            continue
        if name not in known:
            yield (*path, i), f"a system named under systems: ({listed})", f'"{name}"'
        elif name in seen:  # an order: a second mention means nothing, the list is confused
            yield (*path, i), "each system once", f'"{name}" again (first at [{seen[name]}])'
        seen.setdefault(name, i)


# --------------------------------------------------------------------------- loading


def default_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the config lives when no path is given: ``$CRMSYNC_CONFIG`` or ./config.yaml."""
    env = os.environ if env is None else env
    return Path(env.get(CONFIG_ENV) or DEFAULT_PATH)


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate a config file; raise :class:`ConfigError` listing every
    problem (file, line, key path, expected, found)."""
    env = os.environ if env is None else env
    file = Path(path) if path is not None else default_path(env)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError([ConfigProblem(str(file), (), "a readable config file", reason)]) from exc
    return parse_config(text, location=str(file), env=env)


def parse_config(
    text: str, location: str = DEFAULT_PATH, env: Mapping[str, str] | None = None
) -> Config:
    """Validate config text; ``location`` is the file name used in error messages."""
    reader = Reader(location, os.environ if env is None else env)
    data = reader.read(text)
    if reader.problems and data is None:
        raise ConfigError(reader.problems)
    if not isinstance(data, dict):
        reader.problem((), "a mapping of sections (store, systems, mapping, …)", found_text(data))
        raise ConfigError(reader.problems)
    reader.apply_overrides(data, {DATABASE_URL_ENV: "store", BROKER_URL_ENV: "broker"})
    problems = list(reader.problems)
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(reader, data, exc))
    checks = list(_cross_checks(data))
    if config is not None:
        checks.extend(stage_vocabulary_problems(config.mapping))
    for path, expected, found in checks:
        problems.append(ConfigProblem(f"{location}:{reader.line_of(path)}", path, expected, found))
    if problems or config is None:
        raise ConfigError(_in_file_order(problems))
    return config


def _in_file_order(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    def line(problem: ConfigProblem) -> int:
        _, _, number = problem.location.rpartition(":")
        return int(number) if number.isdigit() else 0

    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=line)
