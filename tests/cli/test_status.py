"""`crmsync status` tells the truth (issue 24 finding 7): a held system is `held` with why, a
system that cannot be reached shows its last error on one line, a run whose process died is
`died` — in the text and in `--json`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from sync.cli.app import app
from sync.store.db import make_engine
from sync.store.models import Cursor, Run, SystemState

if TYPE_CHECKING:
    from tests.cli.conftest import MakeStore

pytestmark = pytest.mark.usefixtures("restore_logging")

SYSTEMS = """\
  truto:
    type: truto
    base_url: http://127.0.0.1:8714/unified/crm
    credentials: {token: "${TRUTO_TOKEN}"}
    options: {integrated_account_id: acct}
  ruddr:
    type: ruddr
    base_url: http://127.0.0.1:8711/api/workspace
    credentials: {token: "${RUDDR_TOKEN}"}
"""
ENV = {"TRUTO_TOKEN": "t", "RUDDR_TOKEN": "r", "CRMSYNC_LOG_FORMAT": "json", "COLUMNS": "80"}


def test_status_names_held_failing_and_died(cli_store: MakeStore) -> None:
    """A held system, an unreachable one and a run whose holder died read as held, error and
    died, in ``--json`` and in the text, which fits 80 columns."""
    store = cli_store(SYSTEMS, ENV)
    url = store.url
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    refused = (
        "ruddr: cannot connect to http://127.0.0.1:8711/api/workspace/opportunities:\n"
        "  connection refused"
    )
    with Session(make_engine(url)) as session:
        session.add(SystemState(system="truto", binding={}, held="binding", held_message="moved"))
        session.add(Cursor(system="ruddr", last_error=refused))
        session.add(
            Run(
                id="run_killed00000000000000",
                kind="cycle",
                holder=f"{socket.gethostname()[:40]}:{gone.pid}:0badf00d:1",
            )
        )
        session.commit()
    code, out = store.run("status", "--json")
    assert code == 0, out
    data = json.loads(out)
    health = {row["system"]: row["health"] for row in data["systems"]}
    assert health == {"truto": "held", "ruddr": "error"}
    assert [r["status"] for r in data["runs"]] == ["died"]
    code, out = store.run("status")
    assert code == 0, out
    assert "HELD truto (binding): moved" in out
    one_line = "ruddr last error: ruddr: cannot connect to"
    assert one_line in out and "connection refused" in " ".join(out.split())
    assert "died" in out.split()
    assert max(len(line) for line in out.splitlines()) <= 80


def test_doctor_against_an_unreachable_system_is_one_finding_without_retries(
    cli_store: MakeStore,
) -> None:
    """A wrong base URL (nothing listens): `doctor` says so in one finding with its fix, after
    one request — no retry lines, no log lines about the same failure."""
    # Deterministic whatever else runs on this machine: the port is one this test holds bound
    # without listening (a connection to it is refused; a fixed port may be served by someone),
    # and Ruddr is the only system (doctor also reads the others' references, and Truto's
    # 127.0.0.1:8714 is the emulators' default port, which a demo elsewhere may be serving).
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        unreachable = f"127.0.0.1:{held.getsockname()[1]}"
        ruddr_only = SYSTEMS[SYSTEMS.index("  ruddr:") :].replace("127.0.0.1:8711", unreachable)
        store = cli_store(ruddr_only, ENV, migrate=False)
        code, out = store.run("doctor", "--system", "ruddr")
    assert code == 1, out
    assert out.splitlines()[0] == "ruddr (ruddr): problems", out
    words = " ".join(out.split())
    assert "✗ read: cannot list opportunities: ruddr: ConnectError" in words
    assert "Connection refused fix: check systems.ruddr.base_url" in words
    assert "http.error" not in out and "retry" not in out.lower()
    assert max(len(line) for line in out.splitlines()) <= 80


@pytest.mark.parametrize("command", ["demo", "emulate"])
def test_a_port_in_use_is_one_line_naming_the_ports(tmp_path: Path, command: str) -> None:
    """`demo` and `emulate` on a port another process holds: one line naming the ports and
    what to do, exit 1, no traceback."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port_base = taken.getsockname()[1] - 1  # Ruddr's port (port-base+1) is taken
    try:
        result = CliRunner().invoke(
            app,
            [command, "--port-base", str(port_base)],
            # listed, so the runner restores it: demo sets it for its own run
            env={**ENV, "COLUMNS": "200", "CRMSYNC_FIRST_RUN": "automatic"},
        )
    finally:
        taken.close()
    out = result.stdout + result.stderr
    assert result.exit_code == 1, out
    ports = f"127.0.0.1:{port_base + 1}-{port_base + 4}"
    assert out.strip().splitlines() == [
        f"error: cannot serve the emulators on {ports}: Address already in use (another "
        "crmsync emulate or demo?); choose another --port-base"
    ], out


def test_shell_completion_is_switched_on() -> None:
    """`crmsync --install-completion` / `--show-completion` exist (bash, zsh, fish)."""
    result = CliRunner().invoke(app, ["--help"], env={**ENV, "COLUMNS": "200"})
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout
