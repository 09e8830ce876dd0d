"""The operators' console in a real browser (Debian's Chromium through Playwright), on the admin
app served over HTTP in embedded mode against the emulators: every page is screenshotted and
checked with axe-core; every action is taken by clicking, and its effect read back from the
store or the vendors' own APIs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from sync.engine import first_run, guard, operations
from tests.admin.browser import (
    TOKEN,
    Served,
    check_page,
    eventually,
    running_sync,
    serve,
    sign_in,
)
from tests.e2e.conftest import World, make_world
from tests.e2e.test_scenarios import link_of, record_of

pytestmark = pytest.mark.slow


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = make_world(tmp_path, seed_opportunities=3)
    yield built
    built.engine.close()


@pytest.fixture
def served(world: World) -> Iterator[Served]:
    with serve(world) as running:
        yield running


def _row(page: Any, system: str) -> Any:
    return page.locator("table").first.locator("tr", has=page.locator(f'th:text-is("{system}")'))


def test_sign_in_shows_every_system_live_and_updates_when_a_deal_changes(
    page: Any, served: Served
) -> None:
    """Signed in, the overview lists every system of a running embedded sync; a deal created
    in Ruddr shows up in every system's deal count without the page being reloaded."""
    world = served.world
    page.goto(f"{served.url}/console")
    expect(page).to_have_url(f"{served.url}/console/login")  # refused without a session
    check_page(page, "login")
    sign_in(page, served)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    with running_sync(world):
        for system in world.config.systems:
            expect(_row(page, system)).to_contain_text("ok", timeout=60_000)
        before = {s: _row(page, s).locator("td").nth(1).inner_text() for s in world.config.systems}
        page.evaluate("window.__notReloaded = true")
        world.users["ruddr"].create("Browser-made deal", amount=4321.0)
        for system in world.config.systems:
            expect(_row(page, system).locator("td").nth(1)).not_to_have_text(
                before[system], timeout=60_000
            )
        assert page.evaluate("window.__notReloaded") is True
    check_page(page, "overview")


def test_a_wrong_token_and_a_missing_csrf_token_are_refused(page: Any, served: Served) -> None:
    """A wrong token gets no session; a signed-in browser's POST without the page's CSRF
    token is refused (403) and changes nothing; the API without a token is 401."""
    sign_in(page, served, token="not-the-token-at-all-0000")
    expect(page.get_by_role("alert")).to_contain_text("not the admin token")
    assert page.context.cookies() == []
    assert page.request.get(f"{served.url}/status").status == 401
    sign_in(page, served)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    cookie = page.context.cookies()[0]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert TOKEN not in page.url
    refused = page.request.post(f"{served.url}/resync", data={"system": None})
    assert refused.status == 403
    assert "CSRF" in refused.json()["error"]
    assert operations.last_runs(served.world.engine, 5) == []
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{served.url}/console/login")
    page.goto(f"{served.url}/console/conflicts")
    expect(page).to_have_url(f"{served.url}/console/login")
