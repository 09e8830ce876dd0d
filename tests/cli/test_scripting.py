"""The CLI as scripts and people read it, end to end over HTTP emulators after a seeded run:
``--json`` on every read command (parsed, keys the README documents), output whole when piped
(no ``…``), every listing at 80 and 200 columns (no line wider, no id or count cut), and an
unknown ``--system`` or an absurd option value one line."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sync.cli.app import app
from sync.emulators.server import running
from tests.e2e.conftest import cli_env

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("restore_logging")]
ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
#: seeded systems all hold deals; these tests read the CLI's output, not the guided first run
#: (tests/cli/test_firstrun.py), so their stores start with it waived
WAIVED = "waive"
READS = ("status", "verify", "plan", "conflicts", "deadletters", "match", "deletes", "doctor")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A store after one seeded cycle against the shipped config's six systems' emulators (3
    deals each)."""
    tmp = tmp_path_factory.mktemp("scripting")
    with running(seed=1, seed_opportunities=3) as served:
        env = cli_env(served, tmp / "crmsync.db", first_run=WAIVED)
        code, out = crmsync(env, "run", "--once", "--no-live")
        assert code == 0, out
        yield env


def crmsync(env: dict[str, str], *args: str, columns: int | None = None) -> tuple[int, str]:
    extra = {"COLUMNS": str(columns)} if columns else {}
    result = CliRunner().invoke(app, list(args), env={**env, **extra})
    return result.exit_code, result.stdout + result.stderr


def read_json(env: dict[str, str], *args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--json"], env=env)
    assert result.exit_code in (0, 1, 2) and result.stdout.strip(), (args, result.output)
    return json.loads(result.stdout)


def _documented(command: str) -> set[str]:
    """The keys the README's "--json" table lists for ``command``."""
    section = README.split("### Scripting: --json", 1)[1].split("\n## ", 1)[0]
    for row in section.splitlines():
        if row.startswith(f"| `{command}") or row.startswith(f"| `crmsync {command}"):
            return set(re.findall(r"`([a-z_]+)`", row.split("|")[2]))
    raise AssertionError(f"{command} --json is not documented in the README")


def test_every_read_command_prints_json_with_the_documented_keys(env: dict[str, str]) -> None:
    """``--json`` parses on every read command, and its top-level keys are the README's."""
    for command in READS:
        data = read_json(env, command)
        keys = set(data) if command != "doctor" else set(next(iter(data.values())))
        assert keys <= _documented(command), (command, keys - _documented(command))
    status = read_json(env, "status")
    assert {row["system"] for row in status["systems"]} == {
        "ruddr",
        "close",
        "parsalink",
        "truto_salesforce",
        "salesforce",
        "hubspot",
    }
    record_id = status["runs"] and read_json(env, "verify")
    assert record_id
    story = read_json(env, "history", _some_record(env))
    assert set(story) <= _documented("history") and story["journal"]


def _some_record(env: dict[str, str]) -> str:
    from sqlmodel import Session, select

    from sync.store.db import make_engine
    from sync.store.models import Record

    db = make_engine(env["CRMSYNC_DATABASE_URL"])
    with Session(db) as session:
        found = session.exec(select(Record.id)).first()
    db.dispose()
    assert found is not None
    return found


def test_piped_output_is_whole(env: dict[str, str]) -> None:
    """Piped (no terminal, no $COLUMNS): run ids, stamps and counts whole, nothing cut."""
    code, out = crmsync(env, "status")
    assert code == 0, out
    assert "…" not in out
    for run in read_json(env, "status")["runs"]:
        assert run["id"] in out
        for name, count in run["counts"].items():
            if count:
                assert f"{name}={count}" in out


@pytest.mark.parametrize("width", [80, 200])
def test_every_listing_fits_the_terminal_with_ids_and_counts_whole(
    env: dict[str, str], width: int
) -> None:
    """At 80 and 200 columns no line is wider than the terminal, and every id and count the
    JSON holds appears whole in the text (a value cut or split across lines would not)."""
    status = read_json(env, "status")
    texts = {}
    for command in (*READS, "history"):
        args = [command, _some_record(env)] if command == "history" else [command]
        _, texts[command] = crmsync(env, *args, columns=width)
        widest = max(len(line) for line in texts[command].splitlines())
        assert widest <= width, (command, widest, texts[command])
    for run in status["runs"]:
        assert run["id"] in texts["status"]
        for name, count in run["counts"].items():
            if count:
                assert f"{name}={count}" in texts["status"]
    for row in read_json(env, "deadletters")["dead_letters"]:
        assert str(row["external_id"] or row["record_id"]) in texts["deadletters"]
    for system in ("ruddr", "close", "parsalink", "truto_salesforce", "salesforce"):
        assert system in texts["status"] and system in texts["verify"]


def test_an_unknown_system_is_one_line_naming_the_configured_ones(env: dict[str, str]) -> None:
    """``--system salesforse`` anywhere: exit 1, one line, no traceback."""
    for args in (
        ["verify", "--system", "salesforse"],
        ["doctor", "--system", "salesforse"],
        ["plan", "--system", "salesforse"],
        ["deletes", "--confirm", "salesforse"],
        ["resync", "--system", "salesforse"],
    ):
        code, out = crmsync(env, *args)
        assert code == 1, (args, out)
        assert "unknown system 'salesforse'; configured: ruddr, close" in out, out
        assert "Traceback" not in out and "KeyError" not in out


def test_absurd_option_values_are_refused(env: dict[str, str]) -> None:
    """``status --runs -5`` is a usage error, not an empty listing."""
    code, out = crmsync(env, "status", "--runs", "-5")
    assert code == 2 and "--runs" in out and "greater than or equal to 1" in out, out


@pytest.fixture
def own(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A store of its own after one seeded cycle, and a config this test may edit."""
    config = tmp_path / "config.yaml"
    config.write_text((ROOT / "config.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    with running(seed=1, seed_opportunities=3) as served:
        env = cli_env(served, tmp_path / "crmsync.db", config=config, first_run=WAIVED)
        code, out = crmsync(env, "run", "--once", "--no-live")
        assert code == 0, out
        yield env


def test_a_close_deal_moved_to_an_unmapped_stage_is_named_and_a_filter_closes_it(
    own: dict[str, str],
) -> None:
    """Issue 24 finding 4, through Close's API and the CLI: a deal moved to "Renewal Due" in
    the Renewals pipeline (a status the mapping lacks) is listed by ``plan`` as not planned and
    named by ``verify`` as unreadable, with why, its count agreeing; once the filter the config
    suggests leaves that pipeline out, the next run closes the dead letter by itself."""
    import httpx

    env = own
    with httpx.Client(base_url=env["CLOSE_BASE_URL"], auth=("close-test-key", "")) as close:
        statuses = close.get("/status/opportunity/").json()["data"]
        renewal = next(s["id"] for s in statuses if s["label"] == "Renewal Due")
        deal = close.get("/opportunity/").json()["data"][0]
        moved = close.put(f"/opportunity/{deal['id']}/", json={"status_id": renewal})
        assert moved.status_code == 200, moved.text
    crmsync(env, "run", "--once", "--no-live")
    letters = read_json(env, "deadletters")["dead_letters"]
    assert deal["id"] in [row["external_id"] for row in letters], letters
    plan = read_json(env, "plan")
    assert any(
        item["external_id"] == deal["id"] and item["what"] == "cannot be read"
        for item in plan["not_planned"]
    ), (deal["id"], plan["not_planned"])
    code, out = crmsync(env, "plan", columns=200)
    assert deal["id"] in out and "cannot be read" in out and "Nothing to write: every" not in out
    verify = read_json(env, "verify")["systems"]["close"]
    unreadable = {item["external_id"]: item["why"] for item in verify["unreadable"]}
    assert "Renewal Due" in unreadable[deal["id"]], unreadable
    code, out = crmsync(env, "verify", columns=200)
    assert code == 1 and f"close unreadable: {deal['id']}" in out, out

    config = Path(env["CRMSYNC_CONFIG"])
    text = config.read_text(encoding="utf-8")
    suggested = (
        '    # filter:                              # e.g. only the "Sales" pipeline takes part\n'
        "    #   - {path: pipeline_name, in: [Sales]}\n"
    )
    assert suggested in text
    config.write_text(
        text.replace(suggested, "    filter:\n      - {path: pipeline_name, in: [Sales]}\n"),
        encoding="utf-8",
    )
    code, out = crmsync(env, "run", "--once", "--no-live")
    letters = read_json(env, "deadletters")["dead_letters"]
    assert deal["id"] not in [row["external_id"] for row in letters], (out, letters)


def test_a_seeded_run_shows_its_progress_and_the_counts_reach_the_total(tmp_path: Path) -> None:
    """``run --once`` on seeded emulators prints, per system, whether it was read and the
    pushes settled of all it owes; at the end every system's count has reached its total."""
    with running(seed=1, seed_opportunities=3) as served:
        env = cli_env(served, tmp_path / "crmsync.db", first_run=WAIVED)
        code, out = crmsync(env, "run", "--once", "--no-live")
    assert code == 0, out
    found = dict(re.findall(r"^run (\w+): read; pushes (\d+/\d+) settled", out, re.MULTILINE))
    systems = {"ruddr", "close", "parsalink", "truto_salesforce", "salesforce", "hubspot"}
    assert set(found) == systems, out
    for system, fraction in found.items():
        settled, total = fraction.split("/")
        assert settled == total and int(total) > 0, (system, fraction)
