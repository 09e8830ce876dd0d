"""`crmsync demo`, the README's first command: the four emulators over HTTP and the embedded
runtime syncing them. It converges with no drift, and running it again in the same directory
starts from a fresh store like its fresh emulators (a store kept from the last demo would link
deals that no longer exist), on whatever port base it is given."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import Session

from sync.store.db import make_engine, upgrade
from sync.store.models import Record
from tests.emulators.test_server import free_port_base

ROOT = Path(__file__).resolve().parents[2]
#: two random deals per vendor besides the fixtures: ParsaLink's 1.5 requests/s in config.yaml
#: makes the default 10 a 45-second demo
DEMO = [sys.executable, "-m", "sync", "demo", "--cycles", "2", "--seed-opportunities", "2"]


def demo(cwd: Path, port_base: int) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "CRMSYNC_DATABASE_URL" and not key.endswith("_BASE_URL")
    }
    env |= {"CRMSYNC_CONFIG": str(ROOT / "config.yaml"), "CRMSYNC_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [*DEMO, "--port-base", str(port_base)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_the_demo_converges_again_and_again_in_one_directory(tmp_path: Path) -> None:
    for run in (1, 2):
        done = demo(tmp_path, free_port_base())
        assert done.returncode == 0, f"run {run}: {done.stderr[-2000:]}"
        assert "No drift." in done.stdout, f"run {run}: {done.stdout[-3000:]}"
        assert "Traceback" not in done.stderr
    assert (tmp_path / "crmsync-demo.db").exists()
    assert not (tmp_path / "crmsync.db").exists(), "the demo must not touch the real store"


@pytest.mark.slow
def test_the_demo_never_writes_into_the_store_the_environment_names(tmp_path: Path) -> None:
    """With `CRMSYNC_DATABASE_URL` exported (the Deployment section's variables, say) the demo
    still syncs into its own fresh ./crmsync-demo.db, says it left that store untouched, and
    the real store's file is byte for byte what it was (it used to gain the demo's deals)."""
    real = tmp_path / "production.db"
    url = f"sqlite:///{real}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        session.add(Record(id="kept", fields={"name": "Production deal"}, provenance={}))
        session.commit()
    engine.dispose()
    before = real.read_bytes()
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "CRMSYNC_DATABASE_URL" and not key.endswith("_BASE_URL")
    }
    env |= {
        "CRMSYNC_CONFIG": str(ROOT / "config.yaml"),
        "CRMSYNC_LOG_LEVEL": "WARNING",
        "CRMSYNC_DATABASE_URL": url,
    }
    cwd = tmp_path / "demo"
    cwd.mkdir()
    port_base = str(free_port_base())
    done = subprocess.run(
        [*DEMO[:4], "--cycles", "1", "--seed-opportunities", "0", "--port-base", port_base],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "left untouched" in done.stdout, done.stdout[-2000:]
    assert (cwd / "crmsync-demo.db").exists()
    assert real.read_bytes() == before
    assert not Path(f"{real}-wal").exists() or Path(f"{real}-wal").stat().st_size == 0
