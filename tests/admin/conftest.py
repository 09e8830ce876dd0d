"""The browser the console tests drive: Debian's Chromium, headless, through Playwright
(one per test module; each test gets a fresh context: no cookie carries over).

Module-scoped, not session-scoped: Playwright's sync API keeps an event loop marked running
in its thread while it is open, and a later test that runs its own loop (anyio.run) there
would refuse to start."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.admin.browser import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():  # a clear failure, never a silent skip
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    # expect() has its own bound (5 s by default), which a page served by a thread of a busy
    # test process (the suite runs `-n 2` on 2 cores) outlasts: give it the actions' bound
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)
    opened.on("dialog", lambda dialog: dialog.accept())
    yield opened
    context.close()
