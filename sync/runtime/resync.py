"""The old home of the resync job, now in :mod:`sync.runtime.jobs` (the one job runner).

Kept only for ``sync/cli_runtime.py``, which imports ``perform_resync`` and ``queue_run``
from here and is being moved into the ``sync/cli/`` package at the same time; delete this
module once the CLI imports :mod:`sync.runtime.jobs` instead.
"""

from __future__ import annotations

from sync.runtime.jobs import PollFn, queue_run
from sync.runtime.jobs import poll_job as recorded_poll
from sync.runtime.jobs import resync_job as perform_resync

__all__ = ["PollFn", "perform_resync", "queue_run", "recorded_poll"]
