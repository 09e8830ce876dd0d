"""Capture's watermark (issue #5): an incremental poll asks from the vendor's clock at the start
of the last complete poll minus the lookback, so a quiet system costs one list request per
poll; a record committed late inside the lookback is still found; a poll that did not read
every page leaves the watermark where it was."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from sync.connectors.errors import ConnectorError
from sync.emulators.base import Emulator
from sync.engine.capture import capture
from sync.store.models import Cursor, Link
from tests.e2e.conftest import World, single_system

LIST_PATH = "/api/v1/opportunity/"


@pytest.fixture
def close_world(tmp_path: Path) -> Iterator[World]:
    world = single_system(tmp_path, "close", seed_opportunities=150)
    yield world
    world.engine.close()


def list_requests(emulator: Emulator, path: str = LIST_PATH) -> int:
    return sum(1 for r in emulator.requests if r["method"] == "GET" and r["path"] == path)


def cursor_of(world: World, system: str) -> Cursor:
    with world.engine.session() as session:
        cursor = session.get(Cursor, system)
    assert cursor is not None
    return cursor


def quiet(world: World, system: str) -> None:
    """Let more than the lookback pass on the vendor's clock."""
    world.emulators[system].clock.advance(world.config.sync.lookback.total_seconds() + 60)


def test_a_quiet_incremental_poll_is_one_list_request(close_world: World) -> None:
    """After the load and a quiet period longer than the lookback, a no-op poll of Close asks
    once and gets an empty page — it no longer re-reads what the load stamped."""
    emulator = close_world.emulators["close"]
    loaded = capture(close_world.engine, "close")
    assert loaded["created"] >= 150 and list_requests(emulator) > 1
    for _ in range(2):  # the first quiet poll may still see the load's last lookback
        quiet(close_world, "close")
        emulator.requests.clear()
        counts = capture(close_world.engine, "close")
    assert list_requests(emulator) == 1
    assert counts["fetched"] == 0


def test_the_watermark_is_the_runs_start_on_the_vendors_clock(close_world: World) -> None:
    """The vendor's clock runs 10 minutes ahead of ours: the watermark follows the vendor's
    (whole-second ``Date``, so at most a second early), not our own."""
    emulator = close_world.emulators["close"]
    emulator.clock.advance(600)
    before = emulator.clock.peek()
    capture(close_world.engine, "close")
    watermark = cursor_of(close_world, "close").watermark
    assert watermark is not None
    assert before - dt.timedelta(seconds=1) <= watermark <= emulator.clock.peek()


def test_a_record_committed_late_inside_the_lookback_is_found(close_world: World) -> None:
    """A deal whose stamp predates the last poll's watermark by less than the lookback (a
    transaction that committed after our poll read past it) is read by the next poll."""
    capture(close_world.engine, "close")
    watermark = cursor_of(close_world, "close").watermark
    assert watermark is not None
    deal = next(iter(close_world.emulators["close"].collections["opportunity"]))
    late = watermark - close_world.config.sync.lookback / 2
    close_world.emulators["close"].set_fields(
        "opportunity", deal, {"value": 4_242_00, "date_updated": late.isoformat()}
    )
    counts = capture(close_world.engine, "close")
    assert counts["changed"] == 1
    with close_world.engine.session() as session:
        link = session.exec(select(Link).where(Link.external_id == deal)).one()
    assert link.shadow["amount"] == "4242.00"


class FailListingAfter(httpx.BaseTransport):
    """The vendor answers ``pages`` list requests, then 503 to every later one (a listing
    that breaks off half-way)."""

    def __init__(self, inner: httpx.BaseTransport, pages: int) -> None:
        self.inner, self.pages = inner, pages

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == LIST_PATH:
            if self.pages <= 0:
                return httpx.Response(503, json={"error": "unavailable"}, request=request)
            self.pages -= 1
        return self.inner.handle_request(request)


def test_a_poll_that_breaks_off_does_not_move_the_watermark(close_world: World) -> None:
    """Page one of a poll commits (the compound cursor may move), page two fails: the
    watermark stays the previous complete poll's, so the next poll re-reads from there."""
    engine = close_world.engine
    capture(engine, "close")
    before = cursor_of(close_world, "close").watermark
    emulator = close_world.emulators["close"]
    for deal in list(emulator.collections["opportunity"])[:120]:  # two pages of changes
        close_world.users["close"].edit(deal, confidence=55)
    quiet(close_world, "close")
    engine.close()  # connectors are rebuilt on the failing transport
    engine.transports = {"close": FailListingAfter(emulator.transport(), pages=1)}
    with pytest.raises(ConnectorError):
        capture(engine, "close")
    assert cursor_of(close_world, "close").watermark == before
    engine.close()
    engine.transports = {"close": emulator.transport()}
    counts = capture(engine, "close")
    assert counts["changed"] + counts["unchanged"] >= 120
    assert cursor_of(close_world, "close").watermark != before
