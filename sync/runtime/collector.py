"""The garbage collector tuned for a long-lived crmsync process.

CPython's cyclic collector runs a young-generation pass every 700 container allocations, and
now and then a full pass over every object the process holds. A load allocates millions of
short-lived containers (answers parsed, rows mapped, statements bound): at 1,000 deals the
collector took ~18 % of the bench process's time, and each full pass stopped every thread —
the drains' pool threads and whichever drain held the store's write lock — for up to 0.3 s
(issue 25). So, once per process, after its engine is built:

- ``gc.freeze()``: what start-up made (modules, config, mapping, the engine) moves out of the
  collector's sight, so full passes no longer walk it (it lives as long as the process anyway);
- thresholds ``(10_000, 10, 10)``: a young pass every 10,000 allocations instead of 700; the
  older generations at CPython's own ratios, so a full pass still comes every 1,000,000
  allocations. Garbage without cycles is freed at once by reference counting as before; only
  cyclic garbage waits longer. (``(50_000, 20, 100)`` — a full pass every 100,000,000 — let a
  long scan's cyclic garbage pile up in the old generation: the million-deal quiet cycle's
  worker peaked at 369 MB; a 60,000-deal in-process scan grew 79 MB against 24 with these and
  8 with the defaults, at the same engine time — issue 25.)

https://docs.python.org/3/library/gc.html#gc.freeze
"""

from __future__ import annotations

import gc
import threading

THRESHOLDS = (10_000, 10, 10)
_done = threading.Event()


def tune() -> None:
    """Tune the collector for this process (the first call only; later calls do nothing)."""
    if _done.is_set():
        return
    _done.set()
    gc.collect()  # what is garbage already is freed, not frozen
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


def reset(thresholds: tuple[int, int, int]) -> None:
    """Undo ``tune`` (tests: one in-process ``crmsync run`` must not retune every later test
    of the session): unfreeze, put ``thresholds`` back, and let the next ``tune`` run again."""
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    _done.clear()
