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
from sync.engine.cycle import poll
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
from tests.engine.test_push_concurrency import set_rate_limit

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


#: the overview's cells after the row's heading (the system)
OVERVIEW_COLUMNS = 13


def _row(page: Any, system: str) -> Any:
    return page.locator("table").first.locator("tr", has=page.locator(f'th:text-is("{system}")'))


def test_sign_in_shows_every_system_live_and_updates_when_a_deal_changes(
    page: Any, served: Served
) -> None:
    """Signed in, the overview lists every system of a running embedded sync; a deal created
    in Ruddr shows up in every system's deal count without the page being reloaded."""
    world = served.world
    world.converge(cycles=2)
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
        for system in world.config.systems:  # one more deal in each, read from the page
            expect(_row(page, system).locator("td").nth(1)).to_have_text(
                str(int(before[system]) + 1), timeout=60_000
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
    headers = page.request.get(f"{served.url}/console").headers
    assert headers["x-frame-options"] == "DENY"  # no page can be framed under another site's
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
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


def test_approving_the_first_run_match_with_one_ambiguous_group_settled(
    page: Any, tmp_path: Path
) -> None:
    """Three systems held the same deals; one deal has two look-alikes in Close. On the
    waiting page the operator ticks which Close deal is the one and approves: the pair is
    linked, the other Close deal stays a deal of its own, and nothing else is duplicated."""
    from tests.e2e.test_first_run import _create, _three_systems

    world = _three_systems(tmp_path)
    try:
        for i in (1, 2):
            for system in ("ruddr", "close", "parsalink"):
                _create(world, system, i)
        _create(world, "ruddr", 7)
        _create(world, "parsalink", 7)
        chosen = _create(world, "close", 7, amount=1000.0)
        other = _create(world, "close", 7, amount=2500.0)
        world.cycle()
        assert first_run.gate(world.engine).state == "review"
        with serve(world) as served:
            sign_in(page, served)
            page.get_by_role("link", name="Waiting for you").click()
            group = page.locator("fieldset.ambiguous")
            expect(group).to_have_count(1)
            check_page(page, "waiting-first-run")
            for label in group.locator("li").all():
                text = label.inner_text()
                if f"close {other}" not in text:
                    label.get_by_role("checkbox").check()
            page.get_by_role("button", name="Approve the match").click()
            expect(page.locator("#toast")).to_have_text("done")
            eventually(lambda: first_run.gate(world.engine).state == "approved", "approved")
        world.converge(cycles=2)
        with world.engine.session() as session:
            from sqlmodel import select

            from sync.store.models import Link

            copies: dict[str, set[str]] = {}
            for link in session.exec(select(Link)).all():
                copies.setdefault(link.record_id, set()).add(f"{link.system}:{link.external_id}")
        settled = [c for c in copies.values() if f"close:{chosen}" in c]
        assert len(settled) == 1 and len(settled[0]) == 3
        alone = [c for c in copies.values() if f"close:{other}" in c]
        assert len(alone) == 1 and not any(
            c.startswith("close:") for c in alone[0] - {f"close:{other}"}
        )
        assert len(world.users["close"].all()) == 4  # deals 1, 2 and both look-alikes: no copy
    finally:
        world.engine.close()


def test_confirming_a_held_mass_delete(page: Any, tmp_path: Path) -> None:
    """ParsaLink loses 30 % of its deals at once: the guard holds them; the waiting page lists
    them with what confirm and discard would do; confirming deletes them everywhere."""
    world = make_world(tmp_path, seed_opportunities=20)
    try:
        assert world.converge(cycles=2).clean
        world.config.systems["parsalink"].deletes = "propagate"
        deals = world.users["parsalink"].all()
        doomed = deals[: round(len(deals) * 0.3)]
        for deal in doomed:
            world.users["parsalink"].delete(str(deal["id"]))
        world.cycle()
        assert guard.held(world.engine, "parsalink") is not None
        with serve(world) as served:
            sign_in(page, served)
            expect(page.locator("p.notice")).to_contain_text("wait for a person")
            expect(_row(page, "parsalink")).to_contain_text("held (deletes)")
            page.goto(f"{served.url}/console/waiting")
            expect(page.get_by_text(f"{len(doomed)} held deletes in parsalink")).to_be_visible()
            expect(page.get_by_text("delete them everywhere they are synced")).to_be_visible()
            check_page(page, "waiting-held-deletes")
            page.get_by_role("button", name="Confirm parsalink deletes").click()
            expect(page.locator("#toast")).to_have_text("done")
        assert guard.held(world.engine, "parsalink") is None
        world.converge(cycles=2)
        assert len(world.users["ruddr"].all()) == len(deals) - len(doomed)
    finally:
        world.engine.close()


def test_resolving_a_manual_conflict_with_one_click(page: Any, tmp_path: Path) -> None:
    """Ruddr and ParsaLink both edit a manual field: the conflict page shows both values and
    the reason; taking ParsaLink's value writes it to every system."""
    probe = make_world(tmp_path / "probe")
    manual = probe.config.conflicts.model_copy(update={"fields": {"description": "manual"}})
    probe.engine.close()
    world = make_world(tmp_path, overrides={"conflicts": manual})
    try:
        deal = world.users["ruddr"].create("Contested")
        world.converge(cycles=2)
        record = record_of(world, "ruddr", deal)
        time.sleep(1.1)  # ParsaLink stamps whole seconds: edit after our create's second
        world.users["ruddr"].edit(deal, description="Ruddr's words")
        theirs = link_of(world, "parsalink", record).external_id
        world.users["parsalink"].edit(theirs, description="ParsaLink's words")
        world.cycle()
        assert len(operations.list_conflicts(world.engine)) == 1
        with serve(world) as served:
            sign_in(page, served)
            page.get_by_role("link", name="Conflicts").click()
            row = page.locator("tr", has_text="description")
            expect(row).to_contain_text("Ruddr's words")
            expect(row).to_contain_text("ParsaLink's words")
            check_page(page, "conflicts")
            row.get_by_role("button", name="Take parsalink's value").click()
            expect(page.locator("#toast")).to_have_text("done")
            expect(page.get_by_text("No open conflict.")).to_be_visible()
        assert operations.list_conflicts(world.engine) == []
        world.converge(cycles=2)
        assert world.users["ruddr"].get(deal)["description"] == "ParsaLink's words"
    finally:
        world.engine.close()


def test_replaying_a_dead_letter_after_the_fault_is_lifted(page: Any, world: World) -> None:
    """ParsaLink refuses every request (422) while a deal is created in Ruddr: the push is a
    dead letter with ParsaLink's own words. Once the fault is lifted, Replay sends it."""
    world.converge(cycles=2)
    world.faults("parsalink", error_rate=1.0, statuses=[422])
    deal = world.users["ruddr"].create("Refused at first", amount=10.0)
    world.cycle()
    letters = operations.list_dead_letters(world.engine)
    assert [letter["system"] for letter in letters] == ["parsalink"]
    world.faults("parsalink")
    with serve(world) as served:
        sign_in(page, served)
        page.get_by_role("link", name="Dead letters").click()
        expect(page.locator("tbody tr")).to_have_count(1)
        check_page(page, "deadletters")
        page.get_by_role("button", name="Replay", exact=True).click()
        expect(page.locator("#toast")).to_have_text("done")
        expect(page.get_by_text("No open dead letter.")).to_be_visible()
    world.cycle()
    names = [d.get("name") for d in world.users["parsalink"].all()]
    assert "Refused at first" in names, deal


def test_finding_a_deal_by_a_vendor_id_shows_its_copies_and_timeline(
    page: Any, world: World
) -> None:
    """Searching a Close id finds the deal (so does part of its name); its page shows ours
    beside every system's copy and the journal, oldest first, saying from where each change
    came."""
    deal = world.users["ruddr"].create("Findable deal", amount=55.0)
    world.converge(cycles=2)
    record = record_of(world, "ruddr", deal)
    close_id = link_of(world, "close", record).external_id
    with serve(world) as served:
        sign_in(page, served)
        page.get_by_role("link", name="Deals").click()
        page.get_by_label("Vendor id, record id or name").fill(close_id)
        page.get_by_role("button", name="Find").click()
        check_page(page, "deals")
        page.get_by_role("link", name="Findable deal").click()
        expect(page.get_by_role("heading", name="Findable deal")).to_be_visible()
        headers = page.locator("thead th")
        expect(headers.first).to_have_text("field")
        expect(page.locator("thead th", has_text=close_id)).to_contain_text("close")
        timeline = page.locator("ol.timeline li")
        expect(timeline.first).to_contain_text("ruddr")
        assert timeline.count() >= 2
        check_page(page, "deal")
        page.goto(f"{served.url}/console/deals?q=findABLE")  # part of the name, any case
        expect(page.get_by_role("link", name="Findable deal")).to_be_visible()


def test_a_resync_started_from_the_console_is_followed_until_done(
    page: Any, served: Served
) -> None:
    """Actions: a full resync of Close starts, its progress shows until it is done, and the
    runs page (filtered to resyncs) lists it with its detail."""
    served.world.converge(cycles=1)
    sign_in(page, served)
    page.get_by_role("link", name="Actions").click()
    page.get_by_label("System", exact=True).first.select_option("close")
    page.get_by_label("full").check()
    page.get_by_role("button", name="Start resync").click()
    expect(page.locator('#progress p[data-status="done"]')).to_be_visible(timeout=120_000)
    check_page(page, "actions")
    page.goto(f"{served.url}/console/runs?kind=resync")
    runs = page.locator("tbody tr")
    expect(runs).to_have_count(1)
    expect(runs.first).to_contain_text("close")
    check_page(page, "runs")
    runs.first.get_by_role("link").click()
    expect(page.get_by_role("heading", name="Run run_")).to_be_visible()
    check_page(page, "run")
    page.goto(f"{served.url}/docs")
    expect(page.get_by_role("heading", name="crmsync admin API")).to_be_visible()
    check_page(page, "docs")


def test_the_overview_shows_the_api_budget_each_vendor_reports(page: Any, served: Served) -> None:
    """Close enforces its limit (burst 37): after a poll its row says how many requests its
    ``ratelimit`` header left; Ruddr, which sends no such header, says "not reported"."""
    world = served.world
    set_rate_limit(world, "close", rate=100, burst=37)
    poll(world.engine, "close")
    poll(world.engine, "ruddr")
    sign_in(page, served)
    budget = OVERVIEW_COLUMNS - 1  # the last cell of a row
    expect(_row(page, "close").locator("td").nth(budget)).to_contain_text("/37 requests left")
    expect(_row(page, "ruddr").locator("td").nth(budget)).to_have_text("not reported")
    check_page(page, "overview-budget")
