"""The API budget a vendor reports reaches the people who run the sync (issue 27): a poll
against emulators that enforce their documented limits stores what the rate-limit headers said
was left, and ``status`` (text and ``--json``) and the admin API's ``/status`` show it — read
from the store, as the admin process does; a vendor that reports none (Ruddr) shows none."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from sync.admin.app import create_app
from sync.cli.app import app
from sync.engine import operations
from sync.engine.cycle import poll
from sync.runtime.backend import AdminBackend
from tests.e2e.conftest import ROOT, World, make_world
from tests.engine.test_push_concurrency import set_rate_limit

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("restore_logging")]

#: bursts no other test uses, so a budget left over in this process cannot pass for these
BURSTS = {"close": 37, "parsalink": 41, "truto_salesforce": 43}
TOKEN = "budget-admin-token-0123456789"


@pytest.fixture
def polled(tmp_path: Path) -> Iterator[World]:
    world = make_world(tmp_path)
    for system, burst in BURSTS.items():
        set_rate_limit(world, system, rate=100, burst=burst)
    for system in world.config.systems:
        poll(world.engine, system)
    yield world
    world.engine.close()


def test_a_poll_stores_the_budget_each_vendor_reports(polled: World) -> None:
    """Close's ``ratelimit``, ParsaLink's ``X-RateLimit-*`` (a Unix reset) and Truto's
    ``ratelimit-*`` all land on the system's row with when they were seen; Ruddr sends none."""
    rows = {row["system"]: row for row in operations.system_health(polled.engine)}
    for system, burst in BURSTS.items():
        budget = rows[system]["budget"]
        assert budget is not None, system
        assert budget["limit"] == burst and 0 <= budget["remaining"] < burst, budget
        assert budget["reset_at"] >= budget["seen_at"], budget  # ISO stamps sort as times
    assert rows["ruddr"]["budget"] is None


def test_status_and_the_admin_api_show_the_budget(polled: World, tmp_path: Path) -> None:
    """``status`` prints a line per reporting system, ``--json`` carries ``budget`` per row,
    and the admin API's ``/status`` answers the same, all from the store."""
    env = {"CRMSYNC_DATABASE_URL": str(polled.engine.db.url), "COLUMNS": "200"}
    config = ["--config", str(ROOT / "config.yaml")]
    text = CliRunner().invoke(app, [*config, "status"], env=env)
    assert text.exit_code == 0, text.output
    assert "close API budget:" in text.output
    assert f"/{BURSTS['parsalink']} requests left, full again at" in text.output
    assert "ruddr API budget" not in text.output
    raw = CliRunner().invoke(app, [*config, "status", "--json"], env=env)
    assert raw.exit_code == 0, raw.output
    systems = {row["system"]: row for row in json.loads(raw.stdout)["systems"]}
    assert systems["close"]["budget"]["limit"] == BURSTS["close"]
    assert systems["ruddr"]["budget"] is None
    backend = AdminBackend(polled.engine, lambda s, f: "run_x", lambda s: None)
    client = TestClient(create_app(backend, token=TOKEN))
    answer = client.get("/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    served = {row["system"]: row for row in answer.json()["systems"]}
    assert served["truto_salesforce"]["budget"] == systems["truto_salesforce"]["budget"]
    assert served["ruddr"]["budget"] is None
