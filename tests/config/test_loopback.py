"""A production config cannot point at this machine by accident: `config check` names the
systems on loopback, and CRMSYNC_REMOTE_ONLY makes them a configuration error."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sync.cli.app import app
from sync.config import ConfigError, load_config
from sync.config.loopback import loopback_host, loopback_systems

pytestmark = pytest.mark.usefixtures("restore_logging")
ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config.yaml"
#: every *_BASE_URL the shipped file reads, at the vendors' real addresses
VENDORS = {
    "RUDDR_BASE_URL": "https://www.ruddr.io/api/workspace",
    "CLOSE_BASE_URL": "https://api.close.com/api/v1",
    "PARSALINK_BASE_URL": "https://api.parsalink.io/api",
    "TRUTO_BASE_URL": "https://api.truto.one/unified/crm",
    "SALESFORCE_BASE_URL": "https://crmsync.my.salesforce.com",
    "HUBSPOT_BASE_URL": "https://api.hubapi.com",
}


def _no_dns(host: str) -> list[str]:
    return {"ruddr.internal": ["127.0.0.2"], "api.close.com": ["203.0.113.7"]}.get(host, [])


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://127.0.0.1:8711/api/workspace", "127.0.0.1"),
        ("http://127.3.0.9/api", "127.3.0.9"),
        ("http://[::1]:8712/api/v1", "::1"),
        ("http://localhost:8713/api", "localhost"),
        ("http://ruddr.internal/api", "ruddr.internal (127.0.0.2)"),
        ("https://api.close.com/api/v1", None),
        ("http://emulators:8711/api/workspace", None),
    ],
)
def test_loopback_host_finds_literal_and_resolved_loopback(url: str, host: str | None) -> None:
    """Literal 127.0.0.0/8 and ::1, localhost, and names that resolve there are loopback;
    a vendor's address or another container's name is not."""
    assert loopback_host(url, _no_dns) == host


def test_the_shipped_config_is_all_loopback_until_base_urls_are_set() -> None:
    """With no *_BASE_URL set every shipped system is an emulator on 127.0.0.1; with them set,
    none is."""
    local = loopback_systems(load_config(SHIPPED, env={}))
    assert local and set(local.values()) == {"127.0.0.1"}
    assert loopback_systems(load_config(SHIPPED, env=VENDORS)) == {}


def test_remote_only_refuses_a_forgotten_base_url_with_its_line() -> None:
    """CRMSYNC_REMOTE_ONLY=1 and one *_BASE_URL missing: a ConfigError at that system's
    base_url line that says how to fix it; every other system passes."""
    env = {**VENDORS, "CRMSYNC_REMOTE_ONLY": "1"}
    del env["CLOSE_BASE_URL"]
    with pytest.raises(ConfigError) as caught:
        load_config(SHIPPED, env=env)
    message = str(caught.value)
    assert "systems.close.base_url" in message
    assert "*_BASE_URL" in message and "on this machine (127.0.0.1)" in message
    assert "ruddr" not in message
    assert load_config(SHIPPED, env={**VENDORS, "CRMSYNC_REMOTE_ONLY": "1"}).systems


def test_config_check_names_the_systems_on_loopback() -> None:
    """`crmsync config check` on the shipped file (nothing set) is valid and then names every
    system that resolves to this machine; with the vendors' addresses it says nothing of it."""
    result = CliRunner().invoke(
        app, ["config", "check", str(SHIPPED)], env={"CRMSYNC_LOG_FORMAT": "json"}
    )
    assert result.exit_code == 0, result.stderr
    assert "resolve to this machine (loopback)" in result.stderr
    assert "ruddr → 127.0.0.1" in result.stderr and "close → 127.0.0.1" in result.stderr
    result = CliRunner().invoke(
        app, ["config", "check", str(SHIPPED)], env={**VENDORS, "CRMSYNC_LOG_FORMAT": "json"}
    )
    assert result.exit_code == 0, result.stderr
    assert "loopback" not in result.stderr
