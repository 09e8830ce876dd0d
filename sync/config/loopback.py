"""Which systems a configuration points at this machine (loopback), and the guard that makes
that an error in production.

The shipped config.yaml defaults every ``base_url`` to a local emulator
(``${RUDDR_BASE_URL:-http://127.0.0.1:8711/...}``), so it syncs out of the box. A production
deployment that forgets one ``*_BASE_URL`` would silently sync against an address on its own
host. Two defences: ``crmsync config check`` names every system that resolves to loopback,
and with ``CRMSYNC_REMOTE_ONLY=1`` (set by every production file in deploy/) such a system is
a configuration error, so no process starts.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from sync.config.models import Config

REMOTE_ONLY_ENV = "CRMSYNC_REMOTE_ONLY"
_TRUE = frozenset({"1", "true", "yes", "on"})
#: (host) -> the addresses it resolves to; the default asks the system resolver
Resolver = Callable[[str], list[str]]


def remote_only(env: Mapping[str, str]) -> bool:
    return env.get(REMOTE_ONLY_ENV, "").strip().lower() in _TRUE


def _is_loopback_address(text: str) -> bool:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def system_resolver(host: str) -> list[str]:
    """Every address ``host`` resolves to (empty when it does not resolve)."""
    try:
        return [str(info[4][0]) for info in socket.getaddrinfo(host, None)]
    except (OSError, UnicodeError):
        return []


def loopback_host(url: str, resolve: Resolver | None = None) -> str | None:
    """The loopback address ``url`` points at, or None. Without ``resolve`` only literal
    addresses and ``localhost`` names count (no DNS: this runs at every start)."""
    host = urlsplit(url).hostname or ""
    if _is_loopback_address(host):
        return host
    if host == "localhost" or host.endswith(".localhost"):
        return host
    if resolve is not None:
        for address in resolve(host):
            if _is_loopback_address(address):
                return f"{host} ({address})"
    return None


def loopback_systems(config: Config, resolve: Resolver | None = None) -> dict[str, str]:
    """System name -> the loopback host its ``base_url`` points at, for those that do."""
    found = {}
    for name, system in config.systems.items():
        host = loopback_host(str(system.base_url), resolve)
        if host is not None:
            found[name] = host
    return found


def remote_only_problems(config: Config) -> list[tuple[tuple[str, ...], str, str]]:
    """(key path, expected, found) for every system on loopback (``CRMSYNC_REMOTE_ONLY``)."""
    return [
        (
            ("systems", name, "base_url"),
            f"a vendor's address ({REMOTE_ONLY_ENV} is set: this is production)",
            f"{config.systems[name].base_url}, on this machine ({host}): set this system's "
            f"*_BASE_URL to the vendor's address",
        )
        for name, host in loopback_systems(config).items()
    ]
