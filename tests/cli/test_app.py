"""The `crmsync` command line: global options, `config check`, `db upgrade`, `emulate` options."""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from sync import __version__
from sync.cli.app import app

pytestmark = pytest.mark.usefixtures("restore_logging")

CONFIG = """\
store:
  url: sqlite:///crmsync.db
systems:
  close:
    type: close
    base_url: http://127.0.0.1:8712/api/v1
    credentials: {api_key: "${CLOSE_API_KEY}"}
    poll_every: 1m
"""
ENV = {"CLOSE_API_KEY": "close-secret-777", "CRMSYNC_LOG_FORMAT": "json"}


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={**ENV, **(env or {})})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def test_version_prints_the_package_version() -> None:
    """`--version` prints `crmsync <version>` and exits 0."""
    code, out, _ = run("--version")
    assert code == 0
    assert out.strip() == f"crmsync {__version__}"


def test_help_lists_only_working_commands() -> None:
    """`--help` shows the command groups that exist and no placeholder."""
    code, out, _ = run("--help")
    assert code == 0
    for command in ("config", "db", "emulate"):
        assert command in out


@pytest.mark.parametrize("columns", [80, 200])
def test_help_wraps_each_paragraph_to_the_terminal_not_at_the_docstrings_breaks(
    columns: int,
) -> None:
    """A command's help is its docstring's paragraphs wrapped to the terminal: at 200 columns
    `emulate`'s first paragraph stands on two lines of the command list, not on the four of
    its docstring; at 80 no line of it ends well short of the column (a docstring's break);
    and a docstring's ``literal`` shows with one backtick."""
    code, out, _ = run("--help", env={"COLUMNS": str(columns), "TERMINAL_WIDTH": str(columns)})
    assert code == 0
    rows = [row for row in out.splitlines() if row.startswith("│")]
    start = next(i for i, row in enumerate(rows) if "│ emulate " in row)
    end = next(i for i, row in enumerate(rows) if "│ plan " in row)
    texts = [row.strip("│ ").removeprefix("emulate").strip() for row in rows[start:end]]
    assert "Point crmsync at them with RUDDR_BASE_URL" in " ".join(texts)
    if columns == 200:
        assert "Point crmsync at them with RUDDR_BASE_URL" in texts[0] and len(texts) <= 2
    else:
        assert all(len(text) >= 50 for text in texts[:-1]), texts
    code, out, _ = run("conflicts", "--help", env={"COLUMNS": str(columns)})
    assert "`--resolve ID --take SYSTEM`" in out and "``" not in out


def test_config_check_prints_the_resolved_config_without_secrets(config_file: Path) -> None:
    """A valid file is printed as resolved YAML with credentials masked, exit 0."""
    code, out, err = run("config", "check", str(config_file))
    assert code == 0, err
    assert "close-secret-777" not in out + err
    assert "api_key: '***'" in out
    assert "poll_every: 1m" in out
    assert "is valid" in err


def test_config_check_says_what_each_system_does_with_currencies(config_file: Path) -> None:
    """The currency model of every system is printed (stderr), defaults included."""
    code, _, err = run("config", "check", str(config_file))
    assert code == 0, err
    assert "close: fixed (the organization's currency, read from the API)" in err
    assert "parked in the dead letters" in err


def test_config_check_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    """An invalid file prints each problem with file:line and key path, exit 1, no traceback."""
    path = tmp_path / "bad.yaml"
    path.write_text(CONFIG.replace("poll_every: 1m", "poll_every: soon\n    colour: blue"))
    code, out, err = run("config", "check", str(path))
    assert code == 1
    assert "2 problems" in err
    assert f"{path}:8 systems.close.poll_every: expected a duration" in err
    assert f"{path}:9 systems.close.colour: expected one of" in err
    assert "Traceback" not in out + err


def test_global_config_option_and_environment_variable(config_file: Path) -> None:
    """`config check` without PATH uses --config, else $CRMSYNC_CONFIG."""
    assert run("--config", str(config_file), "config", "check")[0] == 0
    assert run("config", "check", env={"CRMSYNC_CONFIG": str(config_file)})[0] == 0
    code, _, err = run("config", "check", env={"CRMSYNC_CONFIG": str(config_file) + ".missing"})
    assert code == 1
    assert "expected a readable config file" in err


def test_db_upgrade_creates_the_store_from_the_configured_url(
    config_file: Path, sqlite_url: str
) -> None:
    """`db upgrade` migrates the database named by CRMSYNC_DATABASE_URL (overriding the file)."""
    code, _, err = run(
        "--config", str(config_file), "db", "upgrade", env={"CRMSYNC_DATABASE_URL": sqlite_url}
    )
    assert code == 0, err
    assert "is at revision" in err
    engine = sa.create_engine(sqlite_url)
    assert "records" in sa.inspect(engine).get_table_names()
    engine.dispose()


def test_db_upgrade_with_a_broken_config_exits_2_without_traceback(tmp_path: Path) -> None:
    """Commands that need the config turn a ConfigError into a red list and exit code 2."""
    path = tmp_path / "config.yaml"
    path.write_text("systems: {close: {type: nope}}\n")
    code, out, err = run("--config", str(path), "db", "upgrade")
    assert code == 2
    assert "systems.close.type" in err
    assert "Traceback" not in out + err


def test_db_upgrade_reports_an_unreachable_database_cleanly() -> None:
    """A database that cannot be reached is one red line with the password masked, exit 1."""
    url = "postgresql+psycopg://crm:hunter2@127.0.0.1:1/crm"
    code, out, err = run("db", "upgrade", "--url", url)
    assert code == 1
    assert "cannot migrate postgresql+psycopg://crm:***@127.0.0.1:1/crm" in err
    assert "hunter2" not in out + err
    assert "Traceback" not in out + err


def test_db_upgrade_to_an_unknown_revision_is_a_clean_error(sqlite_url: str) -> None:
    """A revision that does not exist is reported in one line, exit 1."""
    code, out, err = run("db", "upgrade", "--url", sqlite_url, "--revision", "9999")
    assert code == 1
    assert "9999" in err
    assert "Traceback" not in out + err


def test_emulate_rejects_unknown_systems() -> None:
    """`emulate --only` accepts only the four emulated systems (usage error, exit 2)."""
    code, _, err = run("emulate", "--only", "ruddr,pipedrive")
    assert code == 2
    assert "pipedrive" in err


def test_bad_log_format_is_a_usage_error() -> None:
    """`--log-format xml` is refused with exit 2."""
    code, _, err = run("--log-format", "xml", "config", "check")
    assert code == 2
    assert "console or json" in err


def test_python_dash_m_sync_runs_the_cli() -> None:
    """`python -m sync --version` works like the `crmsync` script."""
    result = subprocess.run(
        [sys.executable, "-m", "sync", "--version"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CRMSYNC_LOG_FORMAT": "json"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"crmsync {__version__}"


def _free_port_base() -> int:
    """A base whose +1..+6 ports are free right now."""
    for _ in range(50):
        base = random.randrange(20_000, 60_000, 10)
        try:
            for offset in range(1, 7):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports")


def _get(url: str, deadline: float) -> httpx.Response:
    while True:
        try:
            return httpx.get(url, timeout=1.0)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.skipif(
    importlib.util.find_spec("sync.emulators.server") is None,
    reason="sync.emulators.server is not written yet (issue 3)",
)
def test_emulate_serves_the_chosen_systems_until_interrupted() -> None:
    """`crmsync emulate --only ruddr,close` answers on port-base+1 and +2 and stops on Ctrl-C."""
    base = _free_port_base()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sync",
            "emulate",
            "--only",
            "ruddr,close",
            "--port-base",
            str(base),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CRMSYNC_LOG_FORMAT": "json"},
    )
    try:
        deadline = time.monotonic() + 15
        for offset in (1, 2):
            response = _get(f"http://127.0.0.1:{base + offset}/_emulator/requests", deadline)
            assert response.status_code == 200
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{base + 3}/_emulator/requests", timeout=0.5)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert "Traceback" not in out + err


def test_emulate_only_salesforce_serves_it_on_port_base_plus_5() -> None:
    """`crmsync emulate --only salesforce` answers a SOQL query with sf-test-token on +5."""
    base = _free_port_base()
    process = subprocess.Popen(
        [sys.executable, "-m", "sync", "emulate", "--only", "salesforce", "--port-base", str(base)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CRMSYNC_LOG_FORMAT": "json"},
    )
    try:
        deadline = time.monotonic() + 15
        assert _get(f"http://127.0.0.1:{base + 5}/_emulator/requests", deadline).status_code == 200
        response = httpx.get(
            f"http://127.0.0.1:{base + 5}/services/data/v59.0/query",
            params={"q": "SELECT Id FROM Organization"},
            headers={"Authorization": "Bearer sf-test-token"},
            timeout=5,
        )
        assert response.status_code == 200 and response.json()["totalSize"] == 1
    finally:
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err


def test_report_commands_log_only_warnings_unless_asked(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report (status, verify, match, …) is not interleaved with INFO log lines on the
    terminal: its default level is WARNING; `--log-level` or `$CRMSYNC_LOG_LEVEL` still wins,
    and the commands that run the sync keep INFO (their progress is the log)."""
    import logging

    from sync.cli.app import _default_level

    monkeypatch.delenv("CRMSYNC_LOG_LEVEL", raising=False)
    assert _default_level("status") == "WARNING"
    assert _default_level("verify") == "WARNING"
    assert _default_level("run") is None and _default_level("worker") is None
    monkeypatch.setenv("CRMSYNC_LOG_LEVEL", "DEBUG")
    assert _default_level("status") is None
    monkeypatch.delenv("CRMSYNC_LOG_LEVEL")
    run("--config", str(config_file), "status")
    assert logging.getLogger().getEffectiveLevel() == logging.WARNING
    run("--config", str(config_file), "--log-level", "INFO", "status")
    assert logging.getLogger().getEffectiveLevel() == logging.INFO
