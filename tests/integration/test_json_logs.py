"""Worker, scheduler and admin in JSON mode write nothing but JSON lines (Celery's banner and
shutdown notices, uvicorn's start-up lines included, no ANSI codes), stay quiet at INFO, and
every line logged inside a run names the run: each run in the store can be found in the logs.
Worker and scheduler keep their heartbeat files fresh for the container probes."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from sync.runtime.heartbeat import check
from sync.store.models import Run
from tests.integration.conftest import PYTHON, Stack, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]
CLI = str(Path(__file__).with_name("crmsync_cli.py"))
TOKEN = "json-logs-test-token-0123456789abcdef"
#: tasks whose work is one run row: every line they log once the run started names it
RUN_TASKS = {
    "crmsync.poll_system",
    "crmsync.drain_system",
    "crmsync.reconcile",
    "crmsync.resync",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _done_polls(stack: Stack) -> list[Run]:
    return _done(stack, "poll")


def _done(stack: Stack, kind: str) -> list[Run]:
    with stack.engine().session() as session:
        rows = session.exec(select(Run).where(Run.kind == kind, Run.status == "done")).all()
    return list(rows)


def _lines(stack: Stack, name: str) -> list[dict[str, Any]]:
    text = stack.log_text(name)
    assert "\x1b" not in text, f"{name}: ANSI escape codes in JSON mode"
    parsed = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            pytest.fail(f"{name}.log line {number} is not JSON: {line[:200]!r}")
        assert isinstance(value, dict), f"{name}.log line {number}: {line[:200]!r}"
        parsed.append(value)
    return parsed


def test_every_process_logs_json_lines_and_every_run_line_names_its_run(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    port = _free_port()
    beats = {"worker": tmp_path / "worker.alive", "scheduler": tmp_path / "scheduler.alive"}
    stack = make_stack(
        seed_opportunities=3, extra_env={"CRMSYNC_ADMIN_TOKEN": TOKEN, "COLUMNS": "200"}
    )
    env = dict(stack.env)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for name, args in {
        "worker": ("worker", "--concurrency", "2"),
        "scheduler": ("scheduler",),
        "admin": ("admin", "--host", "127.0.0.1", "--port", str(port)),
    }.items():
        stack.env = {**env, "CRMSYNC_HEARTBEAT_FILE": str(beats.get(name, tmp_path / "x"))}
        procs[name] = stack.start(PYTHON, CLI, "--log-format", "json", *args, name=name)
    stack.env = env

    wait_for(lambda: {r.system for r in _done_polls(stack)} >= {"ruddr", "close"}, 90, "polls")
    wait_for(lambda: len(_done_polls(stack)) >= 6, 90, "three polls of each system")
    wait_for(lambda: _done(stack, "drain"), 90, "a drain that pushed the seeded deals")
    for name, path in beats.items():
        assert check(path, 60) is None, f"{name}: {check(path, 60)}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    wait_for(
        lambda: httpx.get(f"http://127.0.0.1:{port}/status", headers=headers).is_success,
        30,
        "admin",
    )
    for proc in procs.values():  # as a container runtime stops them
        proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        proc.wait(timeout=60)

    runs = {run.id for run in _done_polls(stack) + _done(stack, "drain")}
    logged_runs: set[str] = set()
    for name in procs:
        lines = _lines(stack, name)
        assert lines, f"{name} logged nothing"
        for line in lines:
            assert not str(line.get("logger", "")).startswith("apscheduler"), line
            assert "color_message" not in line and "timestamp" in line, line
            if line.get("run_id"):
                logged_runs.add(line["run_id"])
    worker = _lines(stack, "worker")
    assert any(line["event"] == "worker_starting" for line in worker)
    # what a run task logged (a drain's run is written when it is done: its drain_done line
    # names it), but the skip of a busy poll, which opens no run
    in_runs = [
        line
        for line in worker
        if line.get("task") in RUN_TASKS and line.get("event") != "poll_skipped"
    ]
    assert in_runs and all(line.get("run_id") for line in in_runs), [
        line for line in in_runs if not line.get("run_id")
    ][:5]
    assert any(line.get("event") == "drain_done" for line in worker)
    assert runs <= logged_runs, f"runs never seen in the logs: {sorted(runs - logged_runs)[:5]}"
