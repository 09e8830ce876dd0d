"""Harness of the console's browser tests: the admin app served over real HTTP (uvicorn on a
free loopback port) on an emulator world, Debian's Chromium driven by Playwright, screenshots
saved under ``tests/admin/artifacts/`` (git-ignored) and an axe-core check of each page."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from sync.admin.app import create_app
from sync.runtime.backend import AdminBackend
from sync.runtime.starters import HereJobs
from tests.e2e.conftest import World

TOKEN = "console-test-token-0123456789abcdef"
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Served:
    url: str
    world: World


@contextmanager
def serve(world: World) -> Iterator[Served]:
    """The admin app of ``world`` as ``crmsync admin`` builds it in embedded mode (jobs on a
    thread of this process), listening on 127.0.0.1 at a free port until the block ends."""
    jobs = HereJobs(world.engine)
    backend = AdminBackend(world.engine, jobs.resync, jobs.reread, reconcile=jobs.reconcile)
    app = create_app(backend, token=TOKEN)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="admin", daemon=True)
    thread.start()
    eventually(lambda: server.started, "the admin server started", seconds=60)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(f"http://127.0.0.1:{port}", world)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def running_sync(world: World, pause: float = 0.3) -> Iterator[None]:
    """Cycles running on a thread, as ``crmsync run`` runs them, until the block ends."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            world.cycle()
            stop.wait(pause)

    thread = threading.Thread(target=loop, name="sync", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=60)


def sign_in(page: Any, served: Served, token: str = TOKEN) -> None:
    page.goto(f"{served.url}/console/login")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def shoot(page: Any, name: str) -> Path:
    """A full-page screenshot of the page as it is, kept as an artifact."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical findings on the page (rule: where), none expected."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    found = []
    for violation in results.response["violations"]:
        if violation.get("impact") in ("serious", "critical"):
            where = [node["target"] for node in violation["nodes"]][:3]
            found.append(f"{violation['id']}: {violation['help']} at {where}")
    return found


def check_page(page: Any, name: str) -> None:
    """Screenshot the page, then require it free of serious accessibility violations."""
    shoot(page, name)
    assert serious_violations(page) == [], name


def eventually(check: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    """Wait for ``check`` (a bound on a test that cannot hang, not a timing assertion)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")
