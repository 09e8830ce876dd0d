"""A prefork worker's metrics port serves the counts of every child, not just one."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from sync.store.models import Run
from tests.integration.conftest import PYTHON, Stack, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]
SAMPLE = re.compile(r'^crmsync_records_total\{outcome="fetched",system="(\w+)"\} (\S+)$', re.M)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scraped_fetched(port: int) -> float | None:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.TransportError:
        return None
    return sum(float(value) for _, value in SAMPLE.findall(text))


def _stored_fetched(stack: Stack) -> int:
    with stack.engine().session() as session:
        runs = session.exec(select(Run).where(Run.kind == "poll", Run.status == "done")).all()
    return sum(int((run.counts or {}).get("fetched", 0)) for run in runs)


def _children_that_counted(directory: Path) -> set[str]:
    return {path.stem.rsplit("_", 1)[1] for path in directory.glob("counter_*.db")}


def test_every_prefork_child_is_counted(make_stack: Callable[..., Stack], tmp_path: Path) -> None:
    """A worker with three children runs a dozen polls; the metrics port then shows as many
    records fetched as the store's runs (the sum over every child), and more than one child
    did the counting."""
    port, directory = _free_port(), tmp_path / "prom"
    stack = make_stack(
        seed_opportunities=6,
        extra_env={"CRMSYNC_METRICS_PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": str(directory)},
    )
    stack.start(
        PYTHON,
        *("-m", "celery", "-A", "sync.celery_app", "worker", "--pool", "prefork"),
        *("--concurrency", "3", "-n", "prefork@%h", "--without-gossip", "--without-mingle"),
        *("--without-heartbeat", "--loglevel", "INFO"),
        name="prefork",
    )
    wait_for(lambda: _scraped_fetched(port) is not None, 60, "the metrics port")

    def settled() -> bool:
        stored = _stored_fetched(stack)
        return stored > 0 and _scraped_fetched(port) == stored

    # Waves of polls until two children have counted: on a loaded machine the children start
    # at different times, and one child may take a whole wave before the others are ready.
    for _ in range(5):
        for _ in range(6):
            for system in ("ruddr", "close"):
                stack.send("crmsync.poll_system", system, True)
        wait_for(settled, 90, "the scraped records fetched to equal the sum in the store's runs")
        if len(_children_that_counted(directory)) >= 2:
            break
    assert len(_children_that_counted(directory)) >= 2, sorted(directory.iterdir())
    # drains the polls queued may still be pushing: the counts agree once the worker is idle
    wait_for(lambda: _latency_covers_every_call(port), 60, "every API call to be timed")
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert re.search(r'^crmsync_build_info\{python="[\d.]+",version="[^"]+"\} 1\.0$', text, re.M)
    assert re.search(r"^process_resident_memory_bytes \S+$", text, re.M)


def _samples(text: str, name: str) -> dict[str, float]:
    pattern = re.compile(rf"^{name}\{{([^}}]*)\}} (\S+)$", re.M)
    return {labels: float(value) for labels, value in pattern.findall(text)}


def _latency_covers_every_call(port: int) -> bool:
    """Every vendor API call any child made is in the latency histogram the parent serves: the
    histogram's count per system equals the calls counted per system."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    calls: dict[str, float] = {}
    for labels, value in _samples(text, "crmsync_api_calls_total").items():
        system = re.search(r'system="(\w+)"', labels)
        assert system is not None
        calls[system[1]] = calls.get(system[1], 0.0) + value
    timed: dict[str, float] = {}
    for labels, value in _samples(text, "crmsync_vendor_request_duration_seconds_count").items():
        system = re.search(r'system="(\w+)"', labels)
        assert system is not None
        timed[system[1]] = timed.get(system[1], 0.0) + value
    return bool(calls) and timed == calls
