"""Read the next page of a listing while the engine folds in the current one.

A capture alternates between waiting for the vendor (a page: 100 deals, 50–500 ms on a real
API) and its own work on that page (mapping, merging, one transaction). Fetching page k+1 on a
worker thread while page k is ingested hides the shorter of the two — on a 100,000-deal load
from a vendor answering in 250 ms, minutes. One page ahead, never more: memory stays one page,
and a crash loses at most a page that was read but not yet committed (the cursor has not moved
past it, so the next poll reads it again).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def one_ahead(pages: Iterable[T]) -> Iterator[T]:
    """Yield ``pages`` (never None) in order, fetching the next one on a worker thread meanwhile.

    The listing's generator only ever runs on one thread at a time (one fetch in flight), so
    its own state (cursors, re-windowing) needs no lock. A fetch's exception is raised here,
    after every page before it was yielded: what was read still gets committed. The worker
    runs in a copy of the caller's context, so log lines keep their bound run id and system.
    """
    source = iter(pages)

    def fetch() -> T | None:
        return next(source, None)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="crmsync-prefetch") as pool:
        pending = pool.submit(contextvars.copy_context().run, fetch)
        while (page := pending.result()) is not None:
            pending = pool.submit(contextvars.copy_context().run, fetch)
            yield page
