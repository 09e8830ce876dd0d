"""The reference map under many threads (``sync.engine.refs``): pushes that miss at once share
one listing, a company Close lacks is created once and a company seen for the first time is
linked once, whoever asks first; a known reference is answered while ``forget`` drops the
cache, and always the same.

Vendors are the in-process emulators, Close with latency so the threads really overlap."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from sync.engine.refs import StoreRefs
from tests.e2e.conftest import World, make_world

pytestmark = pytest.mark.slow
T = TypeVar("T")
THREADS = 8


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = make_world(tmp_path)
    built.config.systems["close"].auto_create_companies = True
    built.faults("close", latency_ms=30)
    built.engine.refs.prime()
    yield built
    built.close()


def at_once(work: Callable[[], T]) -> list[T]:
    """``work`` run by ``THREADS`` threads released together; their answers."""
    barrier = threading.Barrier(THREADS)
    answers: list[T] = []

    def run() -> None:
        barrier.wait()
        answers.append(work())

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(answers) == THREADS
    return answers


def close_requests(world: World) -> list[str]:
    return [
        f"{r['method']} {r['path']}"
        for r in world.emulators["close"].requests
        if "/_emulator" not in r["path"]
    ]


def learnt(refs: StoreRefs, source: str) -> list[tuple[str, str]]:
    return [(row.key, row.vendor_id) for row in refs.take_pending() if row.source == source]


def test_a_company_close_lacks_asked_for_at_once_is_created_once(world: World) -> None:
    """Eight pushes resolving one new company at once, auto-create on: one listing of Close's
    leads and one lead created (the same requests one push alone sends), the same id for
    every push, and one ``created`` row to store."""
    refs = world.engine.refs
    alone = refs.id_for("close", "company", "Alone Industries")
    once = close_requests(world)
    assert alone is not None and once[-1].startswith("POST ")
    refs.forget()
    refs.prime()
    refs.take_pending()
    world.emulators["close"].requests.clear()

    answers = at_once(lambda: refs.id_for("close", "company", "Together Industries"))

    assert answers == [answers[0]] * THREADS and answers[0] not in (None, alone)
    assert close_requests(world) == once
    assert learnt(refs, "created") == [("Together Industries", answers[0])]


def test_a_company_seen_first_by_many_reads_at_once_is_linked_once(world: World) -> None:
    """Eight reads of deals at one Close lead that no link names yet, at once: one listing,
    one canonical key for all, one ``linked`` row."""
    refs = world.engine.refs
    leads = world.engine.connector("close").references("company")
    first, second = leads[0], leads[1]
    refs.forget()  # and the connector's listing just read
    refs.prime()
    world.emulators["close"].requests.clear()
    assert refs.key_for("close", "company", first.id) == first.key
    once = close_requests(world)
    refs.forget()
    refs.prime()
    assert learnt(refs, "linked") == [(first.key, first.id)]
    world.emulators["close"].requests.clear()

    answers = at_once(lambda: refs.key_for("close", "company", second.id))

    assert answers == [second.key] * THREADS
    assert close_requests(world) == once
    assert learnt(refs, "linked") == [(second.key, second.id)]


def test_known_references_are_answered_while_the_cache_is_dropped(world: World) -> None:
    """Reads of a known owner race with ``forget`` and ``prime`` in a loop: every read answers
    (no error from a cache swapped underneath it) and answers the same."""
    refs = world.engine.refs
    world.faults("close")  # no latency: many rounds
    owner = world.engine.connector("close").references("owner")[0]
    assert refs.id_for("close", "owner", owner.key) == owner.id
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            refs.forget()
            refs.prime()

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        answers = at_once(
            lambda: {
                (refs.id_for("close", "owner", owner.key), refs.key_for("close", "owner", owner.id))
                for _ in range(200)
            }
        )
    finally:
        stop.set()
        churner.join(timeout=30)
    assert answers == [{(owner.id, owner.key)}] * THREADS
