"""The distributed runtime for real: emulators over HTTP, PostgreSQL, Redis, celery workers
and schedulers as subprocesses. Each test gets its own Redis database (and key prefix), its
own PostgreSQL schema and its own config file; everything is stopped and cleaned afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from sync.config import Config, load_config
from sync.emulators.server import Served, running
from sync.engine.context import Engine
from sync.runtime.context import build_engine
from sync.store.db import upgrade

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
SYSTEMS = ("ruddr", "close")


def _free_redis_db(admin: redis.Redis[Any]) -> Iterator[int]:
    for number in range(1, 16):
        if admin.set(f"crmsync-test-db:{number}", "1", nx=True, ex=600):
            try:
                yield number
            finally:
                admin.delete(f"crmsync-test-db:{number}")
            return
    pytest.fail("no free Redis database (1..15) for this test")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database of this test alone, flushed before and after."""
    admin: redis.Redis[Any] = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    for number in _free_redis_db(admin):
        url = f"redis://127.0.0.1:6379/{number}"
        client: redis.Redis[Any] = redis.Redis.from_url(url)
        client.flushdb()
        yield url
        client.flushdb()
        client.close()


@dataclass
class Stack:
    """One test's deployment: config file, env, emulators and the processes it started."""

    config_path: Path
    env: dict[str, str]
    emulators: dict[str, Served]
    redis: redis.Redis[Any]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: Path = Path()

    def config(self) -> Config:
        return load_config(self.config_path, env=self.env)

    def engine(self) -> Engine:
        return build_engine(self.config(), distributed=False)

    def start(self, *args: str, name: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        return self.start(
            PYTHON,
            "-m",
            "celery",
            "-A",
            "sync.celery_app",
            "worker",
            "--pool",
            "solo",
            "-n",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
            name=name,
        )

    def scheduler(self, name: str) -> subprocess.Popen[bytes]:
        script = str(Path(__file__).with_name("crmsync_cli.py"))
        return self.start(PYTHON, script, "--log-format", "json", "scheduler", name=name)

    def send(self, task: str, *args: Any) -> None:
        from celery import Celery

        app = Celery("crmsync-test", broker=self.env["CRMSYNC_BROKER_URL"])
        from sync.celery_app import route_task

        app.conf.task_routes = (route_task,)
        app.send_task(task, args=list(args))
        app.close()

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        proc.wait(timeout=20)

    def log_text(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")


def write_config(
    path: Path,
    emulators: dict[str, Served],
    overrides: dict[str, dict[str, Any]],
    systems: tuple[str, ...] = SYSTEMS,
    poll_every: str = "1s",
) -> None:
    """The shipped config.yaml cut down to ``systems`` (Ruddr and Close unless told), pointed
    at the test's emulators (``emulators`` keyed by system name)."""
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data["systems"] = {name: data["systems"][name] for name in systems}
    for name in systems:
        data["systems"][name]["base_url"] = emulators[name].base_url
        data["systems"][name]["poll_every"] = poll_every
        data["systems"][name].update(overrides.get(name, {}))
    data["mapping"] = {k: v for k, v in (data.get("mapping") or {}).items() if k in systems}
    conflicts = data.get("conflicts") or {}
    conflicts["priority"] = [s for s in conflicts.get("priority", []) if s in systems]
    for policy in (conflicts.get("fields") or {}).values():
        if isinstance(policy, dict) and "prefer" in policy:
            policy["prefer"] = [s for s in policy["prefer"] if s in systems]
    data["conflicts"] = conflicts
    # both systems start with seeded deals: these tests predate the guided first run
    data["sync"] = {
        **(data.get("sync") or {}),
        "reconcile_every": "0s",
        "lookback": "5s",
        "first_run": "waive",
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def make_stack(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[Callable[..., Stack]]:
    """Build a stack: ``make_stack(seed_opportunities=5, overrides={...}, extra_env={...})``.

    ``systems`` picks the shipped config's systems (Ruddr and Close unless told); the stack's
    ``emulators`` are keyed by system name. ``seeded`` seeds only the named systems' emulators
    with that many deals each (instead of ``seed_opportunities`` in every one)."""
    stacks: list[Stack] = []
    contexts: list[Any] = []

    def make(
        *,
        seed_opportunities: int = 4,
        overrides: dict[str, dict[str, Any]] | None = None,
        extra_env: dict[str, str] | None = None,
        rate_limited: bool = False,
        systems: tuple[str, ...] = SYSTEMS,
        poll_every: str = "1s",
        seeded: dict[str, int] | None = None,
    ) -> Stack:
        shipped = yaml.safe_load((ROOT / "config.yaml").read_text())["systems"]
        vendors = {name: shipped[name]["type"] for name in systems}
        ctx = running(
            only=sorted(set(vendors.values())),
            seed=3,
            seed_opportunities=0 if seeded is not None else seed_opportunities,
            rate_limited=rate_limited,
        )
        served = ctx.__enter__()
        contexts.append(ctx)
        emulators = {name: served[vendor] for name, vendor in vendors.items()}
        for name, count in (seeded or {}).items():
            emulators[name].emulator.add_opportunities(count, 3)
        config_path = tmp_path / "config.yaml"
        write_config(config_path, emulators, overrides or {}, systems, poll_every)
        env = {
            **os.environ,
            "CRMSYNC_CONFIG": str(config_path),
            "CRMSYNC_DATABASE_URL": pg_url,
            "CRMSYNC_BROKER_URL": redis_url,
            "CRMSYNC_REDIS_PREFIX": f"t{uuid.uuid4().hex[:8]}",
            "CRMSYNC_LOG_FORMAT": "json",
            "CRMSYNC_BACKOFF_BASE": "0.2",
            "PYTHONPATH": str(ROOT),
            **(extra_env or {}),
        }
        upgrade(pg_url)
        logs = tmp_path / "logs"
        logs.mkdir(exist_ok=True)
        stack = Stack(config_path, env, emulators, redis.Redis.from_url(redis_url), logs=logs)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        for proc in stack.procs:
            stack.kill(proc, signal.SIGKILL)
        stack.redis.close()
    for ctx in contexts:
        ctx.__exit__(None, None, None)


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.3) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")
