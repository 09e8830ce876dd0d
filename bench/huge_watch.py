"""What ``bench.huge`` watches while crmsync runs: a process's CPU time and RSS
(``/proc``), each system's poll in the embedded loop (``Polls``), and a progress line a
minute during a phase that runs for an hour (``Progress``)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def vm_hwm_mb(pid: int) -> float | None:
    """Peak resident set size of a live process, in MB."""
    return _status_mb(pid, "VmHWM:")


def rss_mb(pid: int) -> float | None:
    """Resident set size of a live process now, in MB."""
    return _status_mb(pid, "VmRSS:")


def _status_mb(pid: int, key: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Polls:
    """When each system's capture ended (its ``capture_done`` log line, read as it is written)
    in the embedded loop, which polls the systems one after the other before any push: the
    wall and CPU time of each poll are the differences between those moments (the first
    counted from the process's start, imports and the schema check included)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.offset = log.stat().st_size if log.exists() else 0
        self.marks: list[tuple[str, float, float]] = []  # (system, wall s, cpu s)

    def read(self, elapsed: float, pid: int) -> None:
        if not self.log.exists():
            return
        with self.log.open("rb") as lines:
            lines.seek(self.offset)
            chunk = lines.read()
        complete = chunk.rsplit(b"\n", 1)[0] if b"\n" in chunk else b""
        self.offset += len(complete) + (1 if complete else 0)
        for line in complete.splitlines():
            if b'"capture_done"' in line:
                with contextlib.suppress(ValueError, OSError):
                    system = json.loads(line)["system"]
                    self.marks.append((system, elapsed, cpu_seconds(pid)))

    def spans(self) -> dict[str, dict[str, float]]:
        spans, wall, cpu = {}, 0.0, 0.0
        for system, at, used in self.marks:
            spans[system] = {"wall_s": at - wall, "cpu_s": used - cpu}
            wall, cpu = at, used
        return spans


def poll_runs(url: str, since: dt.datetime) -> dict[str, dict[str, float]]:
    """Each system's poll that started after ``since`` and finished, from the store's ``runs``
    rows (kind ``poll``): its wall time, the capture alone (with workers a poll is one task
    and the pushes are others, so this is the poll's own time, the figure ``Polls`` reads from
    the embedded loop's log)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT system, started_at, finished_at FROM runs WHERE kind = 'poll' "
                    "AND started_at >= :t AND finished_at IS NOT NULL ORDER BY started_at"
                ),
                {"t": since},
            ).all()
    finally:
        engine.dispose()
    return {
        str(system): {"wall_s": (finished - started).total_seconds()}
        for system, started, finished in rows
    }


class Progress:
    """A line on stderr every ``every`` seconds while a phase runs: its time, crmsync's RSS
    and CPU, and the store's progress (links per system, pushes done and owed). A load of a
    million runs for an hour and more: this says how far it got and how fast."""

    def __init__(self, url: str, every: float) -> None:
        self.url, self.every = url, every
        self.phase, self.began, self.next = "", 0.0, 0.0

    def start(self, phase: str) -> None:
        self.phase, self.began = phase, time.perf_counter()
        self.next = self.began + self.every

    def tick(self, pids: list[int]) -> None:
        now = time.perf_counter()
        if not self.every or now < self.next:
            return
        self.next = now + self.every
        line: dict[str, Any] = {"progress": self.phase, "elapsed_s": round(now - self.began)}
        line["rss_mb"] = [round(rss_mb(pid) or 0) for pid in pids]
        line["peak_rss_mb"] = [round(vm_hwm_mb(pid) or 0) for pid in pids]
        line["cpu_s"] = round(sum(cpu_seconds(pid) for pid in pids), 1)
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            line |= store_progress(self.url)
        print(json.dumps(line), file=sys.stderr, flush=True)


def store_progress(url: str) -> dict[str, Any]:
    """Links per system and outbox rows per status (counted: a second's scan at a million,
    once a minute)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            links = dict(
                conn.execute(sa.text("SELECT system, count(*) FROM links GROUP BY system")).all()
            )
            statuses = dict(
                conn.execute(sa.text("SELECT status, count(*) FROM outbox GROUP BY status")).all()
            )
    finally:
        engine.dispose()
    return {"links": links, "outbox": statuses}
