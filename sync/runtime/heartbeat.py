"""Liveness for processes that serve no HTTP (worker, scheduler): a file touched from the loop
that does the work, and a check that it was touched recently.

The worker touches it from its consumer's event loop (a Celery bootstep timer), the scheduler
from its main loop: a process whose loop is stuck stops touching it, even though its other
threads still run. Container and Kubernetes probes run the check::

    python -m sync.runtime.heartbeat /tmp/crmsync/worker.alive 60

which exits 0 when the file is younger than 60 s, else 1 with the reason on stderr. The file
is only written when ``$CRMSYNC_HEARTBEAT_FILE`` names it (the deploy files set it).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

HEARTBEAT_ENV = "CRMSYNC_HEARTBEAT_FILE"
#: seconds between two touches of the file (a probe's max age should be several of these)
INTERVAL = 10.0


class Heartbeat:
    """Touches ``path`` at most every ``interval`` seconds."""

    def __init__(self, path: str | Path, interval: float = INTERVAL) -> None:
        self.path = Path(path)
        self.interval = interval
        self._last = 0.0

    @classmethod
    def from_env(cls) -> Heartbeat | None:
        path = os.environ.get(HEARTBEAT_ENV)
        return cls(path) if path else None

    def beat(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self._last and now - self._last < self.interval:
            return
        self._last = now
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
        except OSError:
            # A probe then reports the process dead, which is the truth as far as anyone
            # outside can tell: better than crashing the work loop over a status file.
            return


def check(path: str | Path, max_age: float) -> str | None:
    """None when ``path`` was touched less than ``max_age`` seconds ago, else why not."""
    try:
        age = time.time() - Path(path).stat().st_mtime
    except OSError:
        return f"no heartbeat at {path} (process not started, or not yet ready)"
    if age > max_age:
        return f"heartbeat at {path} is {age:.0f}s old (limit {max_age:.0f}s): the loop is stuck"
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m sync.runtime.heartbeat FILE MAX_AGE_SECONDS", file=sys.stderr)
        return 2
    problem = check(argv[0], float(argv[1]))
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
