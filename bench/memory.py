"""Memory figures of the current process, read the same way by every scenario.

Peak RSS is ``VmHWM`` from ``/proc/self/status``: the high-water mark of this process's own
address space. Not ``ru_maxrss``: Linux carries that across ``execve`` from the forked copy
of the parent, so a child started by a 140 MB bench process reported 140 MB even when it
never grew past 93 MB. Elsewhere than Linux, ``ru_maxrss`` (KiB) is the fallback.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

STATUS = Path("/proc/self/status")


def _status_mb(field: str) -> float | None:
    try:
        lines = STATUS.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # "VmHWM:   95232 kB"
    return None


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, MB."""
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_now_mb() -> float:
    """This process's resident set size now, MB."""
    now = _status_mb("VmRSS")
    if now is not None:
        return now
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
