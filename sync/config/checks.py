"""The rules no single model can check, because they compare sections: systems named under
``mapping``, ``conflicts.priority`` and ``prefer`` must exist (each once), conflict fields must
be canonical, credentials must be the keys their connector reads, and the currency settings
must agree (``sync.money_config``). Each check yields (key path, expected, found); the loader
places it at the key's line."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

from sync.config.reader import KeyPath
from sync.model import CANONICAL_FIELDS
from sync.money_config import cross_checks as currency_checks

#: the credentials each connector reads (``make_auth``); any other key is a typo
CREDENTIAL_KEYS: dict[str, tuple[str, ...]] = {
    "ruddr": ("token",),
    "close": ("api_key",),
    "parsalink": ("api_key", "email", "password"),  # an API key, or a JWT login
    "truto": ("token",),
    "salesforce": ("client_id", "client_secret", "token_url", "token"),
    "hubspot": ("token",),
}


def cross_checks(data: Mapping[str, Any]) -> Iterator[tuple[KeyPath, str, str]]:
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
