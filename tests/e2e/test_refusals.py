"""Deals a vendor refuses (issue 24: finding 5, and a refused deal that is later deleted),
through the vendors' own APIs over HTTP and the CLI only, as an operator meets them: the shipped
config, the guided first run (`match --approve`), `run --once`, `deadletters`, `verify` and
`history`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from sync.cli.app import app
from sync.emulators.server import running
from tests.e2e.conftest import AUTH, ROOT, _user, cli_env
from tests.e2e.users import CLOSE_NAME

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("restore_logging")]
#: the shipped config's systems, each with the emulator (vendor) serving it
SYSTEMS = {
    "ruddr": "ruddr",
    "close": "close",
    "parsalink": "parsalink",
    "truto_salesforce": "truto",
    "hubspot": "hubspot",
}
#: 200 characters: Ruddr, Close, ParsaLink and HubSpot take it; Salesforce's Name holds 120
LONG_NAME = "Long " + "n" * 195


@dataclass
class Installation:
    """crmsync installed on the shipped config (a copy this test may edit) against emulators
    served over HTTP, and a person at each vendor's API."""

    env: dict[str, str]
    users: dict[str, Any]  # by system name

    def crmsync(self, *args: str, columns: int = 200) -> tuple[int, str]:
        """A command as typed (exit code, its output with whitespace folded)."""
        result = CliRunner().invoke(app, list(args), env={**self.env, "COLUMNS": str(columns)})
        return result.exit_code, " ".join((result.stdout + result.stderr).split())

    def json(self, *args: str) -> Any:
        result = CliRunner().invoke(app, [*args, "--json"], env=self.env)
        assert result.exit_code in (0, 1), (args, result.output)
        return json.loads(result.stdout)

    def run(self, times: int = 2) -> None:
        """``run --once`` cycles; each completes (exit 1 only says some went to dead letters)."""
        for _ in range(times):
            code, out = self.crmsync("run", "--once", "--no-live")
            assert code == 0 or (code == 1 and "went to dead letters" in out), out
            assert ": done " in out, out

    def first_run(self) -> None:
        """The guided first run, as a user starts on a fresh store: `run --once` reads every
        system and creates nothing until the match is reviewed, `match --approve` links the
        deals the systems already share, and the next `run --once` syncs the rest."""
        code, out = self.crmsync("run", "--once", "--no-live")
        assert code == 0 and "Nothing is created until you review the match" in out, out
        code, out = self.crmsync("match", "--approve")
        assert code == 0 and "Approved:" in out, out
        self.run(1)

    def holding(self, name: str) -> dict[str, int]:
        """How many deals of this name each vendor's own API lists."""
        return {system: sum(1 for d in user.all() if _name(system, d) == name)
                for system, user in self.users.items()}  # fmt: skip

    def open_letters(self) -> list[dict[str, Any]]:
        return list(self.json("deadletters")["dead_letters"])

    def journal(self, record: str, action: str) -> list[dict[str, Any]]:
        story = self.json("history", record)
        return [entry for entry in story["journal"] if entry["action"] == action]


def _name(system: str, deal: dict[str, Any]) -> Any:
    return deal.get(f"custom.{CLOSE_NAME}") if system == "close" else deal.get("name")


def install(tmp_path: Path, *, edit: tuple[str, str] | None = None) -> Iterator[Installation]:
    """``edit``: (text, replacement) in the config copy, as the operator would make it."""
    config = tmp_path / "config.yaml"
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    if edit is not None:
        assert text.count(edit[0]) == 1, edit[0]
        text = text.replace(*edit)
    config.write_text(text, encoding="utf-8")
    with running(seed=1, seed_opportunities=3) as served:
        clients = {
            system: httpx.Client(
                base_url=served[vendor].base_url,
                headers=AUTH[vendor],
                auth=httpx.BasicAuth("close-test-key", "") if vendor == "close" else None,
            )
            for system, vendor in SYSTEMS.items()
        }
        users = {system: _user(SYSTEMS[system], client) for system, client in clients.items()}
        installation = Installation(cli_env(served, tmp_path / "crmsync.db", config=config), users)
        installation.first_run()
        yield installation
        for client in clients.values():
            client.close()


@pytest.fixture
def shipped(tmp_path: Path) -> Iterator[Installation]:
    yield from install(tmp_path)


@pytest.fixture
def propagating(tmp_path: Path) -> Iterator[Installation]:
    """Ruddr's deletes propagate: a deal deleted there is deleted everywhere."""
    ruddr = "    deletes: unlink\n    currency: {mode: per_deal}"
    yield from install(tmp_path, edit=(ruddr, ruddr.replace("unlink", "propagate")))


def test_a_name_salesforce_refuses_is_named_by_verify_and_heals_once_shortened(
    shipped: Installation,
) -> None:
    """A 200-character name made in Ruddr: Salesforce (through Truto) refuses it — its Name is
    string(120) — and the others get it. One dead letter names the deal and quotes Salesforce
    once; `verify` names the deal as a refused create with that reason (not merely counted).
    Shortening the name in Ruddr creates it in Salesforce, closes the letter (journaled), and
    `verify` is clean."""
    deal = shipped.users["ruddr"].create(LONG_NAME)
    shipped.run(2)
    assert shipped.holding(LONG_NAME) == {
        "ruddr": 1, "close": 1, "parsalink": 1, "truto_salesforce": 0, "hubspot": 1,
    }  # fmt: skip
    letters = shipped.open_letters()  # the direct Salesforce org refuses it too: its own letter
    assert sorted(x["system"] for x in letters) == ["salesforce", "truto_salesforce"]
    (letter,) = [x for x in letters if x["system"] == "truto_salesforce"]
    assert (letter["system"], letter["direction"], letter["op"]) == (
        "truto_salesforce",
        "outbound",
        "create",
    )
    error, record = letter["error"], letter["record_id"]
    assert "Opportunity Name: data value too large" in error and "(max length=120)" in error
    assert error.count("data value too large") == 1, error
    assert "[record Long nnn" in error and "(200 characters)" in error  # the deal, shortened
    _, listed = shipped.crmsync("deadletters")
    assert listed.count("data value too large") == 2, listed  # once a letter, one per org

    absent = shipped.json("verify")["systems"]["truto_salesforce"]["absent"]
    assert [(a["record_id"], a["name"]) for a in absent] == [(record, LONG_NAME)]
    assert absent[0]["why"].startswith("create refused (dead letter ")
    assert "data value too large" in absent[0]["why"]
    code, said = shipped.crmsync("verify")
    assert code == 1 and f"truto_salesforce absent: {record}" in said
    assert "create refused (dead letter" in said and "(max length=120)" in said

    shipped.users["ruddr"].edit(deal, name="Shortened deal")
    shipped.run(2)
    assert set(shipped.holding("Shortened deal").values()) == {1}
    assert shipped.open_letters() == []
    code, said = shipped.crmsync("verify")
    assert code == 0, said
    closings = shipped.journal(record, "dead_letter_resolved")
    assert sorted(x["system"] for x in closings) == ["salesforce", "truto_salesforce"]
    (closed,) = [x for x in closings if x["system"] == "truto_salesforce"]
    assert "resolved: a later push succeeded" in closed["reason"]


def test_a_refused_deal_deleted_in_its_source_closes_its_dead_letter(
    propagating: Installation,
) -> None:
    """A Ruddr deal with a negative amount, which ParsaLink refuses, deleted in Ruddr (whose
    deletes propagate): it is deleted everywhere else, ParsaLink's letter closes with a journal
    entry saying the deal was deleted, `deadletters` no longer lists it, `verify` is clean."""
    deal = propagating.users["ruddr"].create("Negative deal", amount=-100.0)
    propagating.run(2)
    letters = propagating.open_letters()
    assert [(row["system"], row["op"]) for row in letters] == [("parsalink", "create")]
    record = letters[0]["record_id"]
    assert propagating.crmsync("verify")[0] == 1

    propagating.users["ruddr"].delete(deal)
    propagating.run(2)
    assert set(propagating.holding("Negative deal").values()) == {0}
    assert propagating.open_letters() == []
    code, said = propagating.crmsync("verify")
    assert code == 0, said
    (closed,) = propagating.journal(record, "dead_letter_resolved")
    assert closed["system"] == "parsalink"
    assert "the deal was deleted: deleted in ruddr" in closed["reason"]
    assert "policy propagate" in closed["reason"]


def test_a_refused_update_closes_when_the_refusing_system_deletes_the_deal(
    shipped: Installation,
) -> None:
    """A synced deal whose amount goes negative in Ruddr: ParsaLink refuses the update, and
    `verify` names the difference as known, with ParsaLink's refusal (not as bare drift); a
    ParsaLink user then deletes the deal (policy unlink: it lives on
    elsewhere, never re-created there). The letter closes, journaled; `verify` is clean."""
    deal = shipped.users["ruddr"].create("Turns negative", amount=500.0)
    shipped.run(2)
    (copy,) = [d for d in shipped.users["parsalink"].all() if d["name"] == "Turns negative"]
    shipped.users["ruddr"].edit(deal, amount=-100.0)
    shipped.run(2)
    letters = shipped.open_letters()
    assert [(row["system"], row["op"]) for row in letters] == [("parsalink", "update")]
    record = letters[0]["record_id"]
    parsalink = shipped.json("verify")["systems"]["parsalink"]
    assert parsalink["drift"] == [] and [k["field"] for k in parsalink["known"]] == ["amount"]
    assert parsalink["known"][0]["reason"].startswith("update refused (dead letter ")
    code, said = shipped.crmsync("verify")
    assert code == 1 and "parsalink known:" in said and "greater than or equal to 0" in said

    shipped.users["parsalink"].delete(copy["id"])
    shipped.run(2)
    assert shipped.open_letters() == []
    assert shipped.holding("Turns negative")["parsalink"] == 0
    code, said = shipped.crmsync("verify")
    assert code == 0, said
    (closed,) = shipped.journal(record, "dead_letter_resolved")
    assert closed["system"] == "parsalink"
    assert "the deal was deleted: deleted in parsalink" in closed["reason"]


def test_an_unreadable_deal_deleted_before_it_was_ever_read_closes_its_letter(
    shipped: Installation,
) -> None:
    """A Close deal made in "Renewal Due" (a status the mapping lacks) is never captured: only
    its read's dead letter knows it. Deleted in Close, Close's delete feed names it, and the
    letter closes; `deadletters` no longer lists it."""
    close = shipped.users["close"]
    deal = close.create("Renewal only", status="Renewal Due")
    shipped.run(1)
    letters = shipped.open_letters()
    assert [(row["system"], row["external_id"]) for row in letters] == [("close", deal)]
    close.delete(deal)
    shipped.run(1)
    assert shipped.open_letters() == []
    code, said = shipped.crmsync("verify")
    assert code == 0, said
