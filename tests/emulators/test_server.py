"""The emulators served over real HTTP: ``running()``, ``build_all()`` and ``serve()``."""

from __future__ import annotations

import datetime as dt
import email.utils
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sync.emulators import reference
from sync.emulators.server import SPECS, Served, available, build_all, running

#: A list path per vendor that every emulator answers with its default credentials.
LIST_PATHS = {
    "ruddr": "/opportunities",
    "close": "/opportunity/",
    "parsalink": "/opportunities/",
    "truto": f"/opportunities?integrated_account_id={reference.TRUTO_ACCOUNTS['salesforce']}",
    "salesforce": "/services/data/v59.0/query?q=SELECT+Id+FROM+Opportunity",
    "hubspot": "/crm/v3/objects/deals",
}


def installed(name: str) -> bool:
    """Whether the emulator module of ``name`` exists in this tree."""
    return importlib.util.find_spec(SPECS[name].module) is not None


EMULATORS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            not installed(name), reason=f"{SPECS[name].module} is not written yet"
        ),
    )
    for name in SPECS
]


@pytest.fixture(scope="module")
def served() -> Iterator[dict[str, Served]]:
    """Every installed emulator on a free port, served by uvicorn from a background thread."""
    with running(seed=5, seed_opportunities=10) as servers:
        yield servers


def free_port_base() -> int:
    """A port base whose emulator ports (base+1..base+7) are free right now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1] - 1
        if base + 7 >= 65535:
            continue
        try:
            for offset in range(1, 8):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError("no seven free consecutive ports")


@pytest.mark.parametrize("name", EMULATORS)
def test_each_emulator_answers_its_credentials_over_http(
    served: dict[str, Served], name: str
) -> None:
    """With its default credentials a vendor list call over real HTTP answers 200."""
    item = served[name]
    response = httpx.get(item.base_url + LIST_PATHS[name], headers=item.headers, timeout=10)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("name", EMULATORS)
def test_a_request_without_auth_gets_the_vendors_401(served: dict[str, Served], name: str) -> None:
    """Without credentials the answer is 401 with the same body the emulator gives in-process."""
    item = served[name]
    over_http = httpx.get(item.base_url + LIST_PATHS[name], timeout=10)
    assert over_http.status_code == 401
    with httpx.Client(
        transport=item.emulator.transport(), base_url=f"http://x{item.emulator.prefix}"
    ) as client:
        in_process = client.get(LIST_PATHS[name])
    per_request = {"correlationId", "requestId"}  # HubSpot's: new on every answer

    def stable(body: Any) -> Any:  # Salesforce answers a JSON array of errors
        if isinstance(body, dict):
            return {k: v for k, v in body.items() if k not in per_request}
        return body

    assert stable(over_http.json()) == stable(in_process.json())


@pytest.mark.parametrize("name", EMULATORS)
def test_every_answer_carries_one_date_from_the_emulators_clock(
    served: dict[str, Served], name: str
) -> None:
    """Like a real server each answer has one RFC 7231 ``Date`` (whole seconds), and it is the
    emulator's own clock — an advanced clock shows — not the host's."""
    item = served[name]
    item.emulator.clock.advance(3600)
    try:
        response = httpx.get(item.base_url + LIST_PATHS[name], headers=item.headers, timeout=10)
        now = item.emulator.clock.peek()
    finally:
        item.emulator.clock.advance(-3600)
    assert len(response.headers.get_list("date")) == 1
    date = email.utils.parsedate_to_datetime(response.headers["date"])
    assert date.microsecond == 0
    assert now - dt.timedelta(seconds=5) <= date <= now


def test_control_api_answers_on_each_port(served: dict[str, Served]) -> None:
    """Every served port has the /_emulator/ control API outside the vendor's auth."""
    for item in served.values():
        response = httpx.get(item.root_url + "/_emulator/requests", timeout=10)
        assert response.status_code == 200 and "counts" in response.json()


def test_truto_seed_001_create_example_over_http(served: dict[str, Served]) -> None:
    """The seed-001 create (Close account: account + owner) answers 201 with Close's fields."""
    if "truto" not in served:
        pytest.skip("sync.emulators.truto is not written yet")
    truto = served["truto"]
    account = reference.TRUTO_ACCOUNTS["close"]
    with httpx.Client(base_url=truto.base_url, headers=truto.headers, timeout=10) as client:
        lead = client.get("/accounts", params={"integrated_account_id": account}).json()
        user = client.get("/users", params={"integrated_account_id": account}).json()
        response = client.post(
            "/opportunities",
            params={"integrated_account_id": account},
            json={
                "account": {"id": lead["result"][0]["id"]},
                "owner": {"id": user["result"][0]["id"]},
                "amount": 25000,
                "close_date": "2026-09-30T00:00:00.000Z",
            },
        )
    assert response.status_code == 201, response.text
    body = response.json()
    for populated in ("status", "last_activity_at", "close_date", "updated_at"):
        assert body[populated], populated
    assert body["remote_data"]["value"] == 2_500_000


def test_port_layout_follows_the_port_base() -> None:
    """With a port base, each emulator listens on base + its documented offset."""
    base = free_port_base()
    with running(only=["truto"], port_base=base) as servers:
        assert servers["truto"].port == base + 4
        assert servers["truto"].base_url == f"http://127.0.0.1:{base + 4}/unified/crm"
    assert {name: spec.port_offset for name, spec in SPECS.items()} == {
        "ruddr": 1,
        "close": 2,
        "parsalink": 3,
        "truto": 4,
        "salesforce": 5,
        "hubspot": 6,
    }


def test_a_taken_port_fails_fast_with_oserror() -> None:
    """If an emulator's port is taken, running() raises OSError before serving anything."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        base = taken.getsockname()[1] - 4
        with pytest.raises(OSError), running(only=["truto"], port_base=base):
            pass


def test_build_all_selects_and_validates_names() -> None:
    """build_all builds the named emulators with the seed; an unknown name is a ValueError."""
    built = build_all(only="truto", seed=2)
    assert list(built) == ["truto"] and built["truto"].seed == 2
    assert set(build_all()) == set(available())
    with pytest.raises(ValueError, match="unknown emulator"):
        build_all(only=["pipedrive"])


def test_default_credentials_are_the_documented_ones() -> None:
    """The credentials printed and used are the issue's defaults."""
    assert SPECS["ruddr"].headers == {"Authorization": "Bearer ruddr-test-token"}
    assert SPECS["close"].headers == {"Authorization": "Basic Y2xvc2UtdGVzdC1rZXk6"}
    assert SPECS["parsalink"].headers == {"Authorization": "Bearer pk_test_parsalink"}
    assert SPECS["truto"].headers == {"Authorization": "Bearer truto-test-token"}
    assert SPECS["salesforce"].headers == {"Authorization": "Bearer sf-test-token"}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serve_prints_urls_and_stops_cleanly_on_signal(signum: int) -> None:
    """serve() prints each base URL with its token and exits 0 on SIGINT / SIGTERM."""
    base = free_port_base()
    code = f"from sync.emulators.server import serve; serve(only=['truto'], port_base={base})"
    env = {**os.environ, "COLUMNS": "200"}
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    url = f"http://127.0.0.1:{base + 4}/_emulator/requests"
    try:
        for _ in range(200):
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        process.send_signal(signum)
        output, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output.decode()
    text = output.decode()
    assert f"http://127.0.0.1:{base + 4}/unified/crm" in text
    assert "truto-test-token" in text
