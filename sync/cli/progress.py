"""Progress on long work (``run --once``, ``resync``, ``reconcile``, ``demo``): per system,
whether it has been read, pushes settled of all it owes, the rate and the time left, and —
when that is what the run waits for — the vendor's rate limit or a retry.

A thread reads the store (:func:`sync.engine.reports.run_progress`) while the work runs in
the caller's thread. On a terminal the lines are live on stderr and replaced as they change;
otherwise a line per system is printed every ``every`` seconds, and always once at the end, so
a log shows the counts reach their total.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from sync.cli.base import err
from sync.cli.tables import ago
from sync.timefmt import utcnow

if TYPE_CHECKING:
    from sync.engine.context import Engine
    from sync.engine.reports import SystemProgress

#: seconds between two progress lines when stderr is not a terminal
EVERY = 10.0


class Progress:
    """``with Progress(engine, "run"):`` around the work; prints as the module says."""

    def __init__(self, engine: Engine, label: str, *, every: float = EVERY) -> None:
        self.engine = engine
        self.label = label
        self.every = every
        self.since = utcnow()
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Live | None = None
        #: a line shown above the systems' (e.g. an enqueued run's state), set by the caller
        self.headline = ""

    def __enter__(self) -> Progress:
        if err.is_terminal:
            self._live = Live(Text(""), console=err, refresh_per_second=2, transient=True)
            self._live.start()
        self._thread = threading.Thread(target=self._watch, name="crmsync-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._live is not None:
            self._live.stop()
        for text in self.lines(final=True):
            err.print(text, highlight=False)

    def _watch(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(0.5):
            try:
                lines = self.lines()
            except Exception:  # a store busy this instant: the next look will do
                continue
            if self._live is not None:
                self._live.update(Group(*(Text.from_markup(text) for text in lines)))
            elif time.monotonic() - last >= self.every:
                last = time.monotonic()
                for text in lines:
                    err.print(text, highlight=False)

    def lines(self, *, final: bool = False) -> list[str]:
        from sync.engine.reports import run_progress

        elapsed = max(0.001, time.monotonic() - self._started)
        rows = run_progress(self.engine, self.since)
        head = [escape(self.headline)] if self.headline else []
        return head + [describe(self.label, row, elapsed, final=final) for row in rows]


def describe(label: str, row: SystemProgress, elapsed: float, *, final: bool = False) -> str:
    """One system's progress in words (markup)."""
    if row.error and not row.read:
        return (
            f"{label} [red]{row.system}[/]: cannot be read: {escape(' '.join(row.error.split()))}"
        )
    read = "read" if row.read else ("not read" if final else "reading…")
    text = f"{label} {row.system}: {read}; pushes {row.settled}/{row.total} settled"
    if row.settled and row.total > row.settled:
        rate = row.settled / elapsed
        text += f" ({rate:.1f}/s, about {ago((row.total - row.settled) / rate)} left)"
    if row.waiting:
        text += f" — [yellow]{escape(row.waiting)}[/]"
    return text
