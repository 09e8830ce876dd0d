"""``one_ahead``: capture reads the next page of a listing while it folds in the current one —
in order, never more than one page ahead, with a fetch's error raised only after every page
before it was handed over, and in the caller's logging context."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator

import pytest

from sync.engine.prefetch import one_ahead

WAIT_S = 10.0  # an upper bound for a thread to get going, not a timing assertion

run_id: contextvars.ContextVar[str] = contextvars.ContextVar("run_id", default="-")


def test_pages_come_in_order_and_all_of_them() -> None:
    assert list(one_ahead(iter([[1], [2, 3], [4]]))) == [[1], [2, 3], [4]]
    assert list(one_ahead(iter([]))) == []


def test_the_next_page_is_fetched_while_the_current_one_is_processed() -> None:
    """While the consumer still holds page 0, the listing is already producing page 1."""
    second_fetched = threading.Event()

    def listing() -> Iterator[list[int]]:
        yield [0]
        second_fetched.set()
        yield [1]

    pages = one_ahead(listing())
    assert next(pages) == [0]
    assert second_fetched.wait(WAIT_S), "page 1 was not fetched while page 0 was held"
    assert next(pages) == [1]


def test_never_more_than_one_page_ahead() -> None:
    """Holding page 0, at most page 1 has been produced: memory stays one page."""
    produced: list[int] = []
    asked = threading.Event()

    def listing() -> Iterator[list[int]]:
        for number in range(5):
            produced.append(number)
            if number == 1:
                asked.set()
            yield [number]

    pages = one_ahead(listing())
    assert next(pages) == [0]
    assert asked.wait(WAIT_S)
    assert produced == [0, 1]
    pages.close()


def test_an_error_comes_after_every_page_read_before_it() -> None:
    def listing() -> Iterator[list[int]]:
        yield [0]
        yield [1]
        raise ConnectionError("page 3 failed")

    pages = one_ahead(listing())
    assert next(pages) == [0]
    assert next(pages) == [1]
    with pytest.raises(ConnectionError, match="page 3 failed"):
        next(pages)


def test_the_fetch_runs_in_the_callers_context() -> None:
    """Log lines of a fetch keep the run id the capture bound."""
    seen: list[str] = []

    def listing() -> Iterator[list[int]]:
        for number in range(3):
            seen.append(run_id.get())
            yield [number]

    token = run_id.set("run-42")
    try:
        assert len(list(one_ahead(listing()))) == 3
    finally:
        run_id.reset(token)
    assert seen == ["run-42"] * 3
