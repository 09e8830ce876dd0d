"""CLI commands against stores that are missing, never migrated, busy, or hold bad ids: every
mistake is one line with the right hint and a non-zero exit, nothing is created, and read
commands are never blocked by a sync writing the store."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from sync.cli.app import app
from sync.cli.store_access import describe_store_error
from sync.emulators.server import running
from sync.store.db import make_engine, upgrade
from sync.store.models import Conflict, DeadLetter, Record, Run

pytestmark = pytest.mark.usefixtures("restore_logging")
ROOT = Path(__file__).resolve().parents[2]

CONFIG = """\
store:
  url: sqlite:///{db}
systems:
  close:
    type: close
    base_url: http://127.0.0.1:8712/api/v1
    credentials: {{api_key: "${{CLOSE_API_KEY}}"}}
    poll_every: 1m
  ruddr:
    type: ruddr
    base_url: http://127.0.0.1:8711/api/workspace
    credentials: {{token: "${{RUDDR_TOKEN}}"}}
"""
ENV = {"CLOSE_API_KEY": "k", "RUDDR_TOKEN": "t", "CRMSYNC_LOG_FORMAT": "json"}


def crmsync(config: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--config", str(config), *args], env={**ENV, **(env or {})})
    return result.exit_code, result.stdout + result.stderr


def one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store" / "crmsync.db"


@pytest.fixture
def config(tmp_path: Path, db: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(db=db), encoding="utf-8")
    return path


@pytest.fixture
def store(db: Path) -> Iterator[Session]:
    """A migrated store with a record, an open and a resolved conflict, and dead letters."""
    upgrade(f"sqlite:///{db}")
    engine = make_engine(f"sqlite:///{db}")
    with Session(engine) as session:
        session.add(Record(id="r1", fields={"amount": "10.00"}, provenance={}))
        session.flush()
        for status in ("open", "resolved"):
            session.add(
                Conflict(
                    record_id="r1",
                    field="amount",
                    policy="manual",
                    ours="10.00",
                    ours_system="ruddr",
                    theirs="20.00",
                    theirs_system="close",
                    status=status,
                )
            )
        session.add(DeadLetter(system="close", direction="inbound", op="update", status="replayed"))
        session.commit()
        yield session
    engine.dispose()


READ_COMMANDS = [
    ["plan"],
    ["verify"],
    ["deadletters"],
    ["conflicts"],
    ["history", "r1"],
    ["status"],
]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: c[0])
def test_a_missing_store_is_one_line_with_the_upgrade_hint_and_is_not_created(
    config: Path, db: Path, command: list[str]
) -> None:
    """A read command on a store that does not exist says so in one line with the hint
    `crmsync db upgrade`, exits 1, and leaves no empty database file behind."""
    code, output = crmsync(config, *command)
    assert code == 1
    line = one_line(output)
    assert f"no store at sqlite:///{db}" in line and "crmsync db upgrade" in line
    assert not db.exists()
    assert not db.parent.exists()


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: c[0])
def test_a_store_never_migrated_is_one_line_with_the_upgrade_hint(
    config: Path, db: Path, command: list[str]
) -> None:
    """A database file without crmsync's tables (not `no such table` and a traceback): one
    line naming the store and the hint, exit 1."""
    db.parent.mkdir()
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE unrelated (a)")
    code, output = crmsync(config, *command)
    assert code == 1
    line = one_line(output)
    assert "has never been migrated: run `crmsync db upgrade`" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--resolve", "1", "--take", "hubspot"],
            "take must be one of ours, close, ruddr; got 'hubspot'",
            id="unknown-system",
        ),
        pytest.param(
            ["--resolve", "2", "--take", "close"], "conflict 2 is already resolved", id="resolved"
        ),
        pytest.param(["--resolve", "14", "--take", "close"], "no conflict 14", id="missing"),
        pytest.param(
            ["--resolve", "99999999999999999999999", "--take", "close"],
            "no conflict 99999999999999999999999",
            id="huge-id",
        ),
        pytest.param(["--resolve", "0", "--take", "close"], "no conflict 0", id="zero"),
    ],
)
def test_resolving_a_conflict_that_cannot_be_is_one_line(
    config: Path, store: Session, args: list[str], message: str
) -> None:
    """`conflicts --resolve` with an unknown system, a resolved, missing or out-of-range id
    prints one line saying which, exits 1, and changes nothing."""
    code, output = crmsync(config, "conflicts", *args)
    assert code == 1
    assert message in one_line(output)
    store.expire_all()
    assert [c.status for c in store.exec(select(Conflict)).all()] == ["open", "resolved"]


@pytest.mark.parametrize(
    ("letter", "message"),
    [
        pytest.param("9999", "no dead letter 9999", id="missing"),
        pytest.param(
            "99999999999999999999999", "no dead letter 99999999999999999999999", id="huge-id"
        ),
        pytest.param("1", "dead letter 1 is already replayed", id="replayed"),
    ],
)
def test_replaying_a_dead_letter_that_cannot_be_is_one_line(
    config: Path, store: Session, letter: str, message: str
) -> None:
    """`deadletters --replay` of a missing, out-of-range or already replayed letter prints one
    line, exits 1, no traceback."""
    code, output = crmsync(config, "deadletters", "--replay", letter)
    assert code == 1
    assert message in one_line(output)


def test_status_reads_while_a_sync_holds_the_store(config: Path, store: Session, db: Path) -> None:
    """`crmsync status` answers at once while another process holds a write transaction open
    on the SQLite store (as `crmsync run` does mid-cycle): read commands read a WAL snapshot
    and never wait for the lock (they used to wait 10 s and fail with `database is locked`)."""
    writer = sqlite3.connect(db, isolation_level=None, timeout=0)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE records SET updated_at = updated_at")
        started = time.monotonic()
        code, output = crmsync(config, "status")
        elapsed = time.monotonic() - started
        assert code == 0, output
        assert "close" in output and "ruddr" in output
        code, output = crmsync(config, "conflicts")
        assert code == 0, output
        assert elapsed < 5
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_busy_store_is_reported_as_busy_not_as_needing_an_upgrade() -> None:
    """A lock is not a missing migration: the message says the store is busy and to try again,
    and does not suggest `db upgrade`."""
    error = OperationalError("SELECT 1", {}, Exception("database is locked"))
    message = describe_store_error("sqlite:///x.db", error)
    assert "busy" in message and "try again" in message
    assert "upgrade" not in message


# --------------------------------------------------------------------------- over HTTP


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, str]]:
    with running(seed=1, seed_opportunities=0) as emulators:
        urls = {name: emulator.base_url for name, emulator in emulators.items()}
        yield {
            "CRMSYNC_CONFIG": str(ROOT / "config.yaml"),
            "CRMSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'crmsync.db'}",
            "CRMSYNC_LOG_FORMAT": "json",
            "RUDDR_BASE_URL": urls["ruddr"],
            "CLOSE_BASE_URL": urls["close"],
            "PARSALINK_BASE_URL": urls["parsalink"],
            "TRUTO_BASE_URL": urls["truto"],
            "HUBSPOT_BASE_URL": urls["hubspot"],
            "SALESFORCE_BASE_URL": urls["salesforce"],
        }


def invoke(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_the_global_log_level_option_is_obeyed(served: dict[str, str]) -> None:
    """`crmsync --log-level DEBUG run --once` logs debug lines, `--log-level WARNING` no info
    line — the option wins over the default as `$CRMSYNC_LOG_LEVEL` does (it was ignored)."""
    code, _, err = invoke(served, "--log-level", "DEBUG", "run", "--once", "--no-live")
    assert code == 0, err
    assert '"level": "debug"' in err
    code, _, err = invoke(served, "--log-level", "WARNING", "run", "--once", "--no-live")
    assert code == 0, err
    assert '"level": "info"' not in err
    assert '"level": "debug"' not in err


def test_replaying_an_inbound_dead_letter_rereads_its_system(served: dict[str, str]) -> None:
    """`deadletters --replay ID` does what the admin API's replay does: an inbound letter is
    marked replayed AND its system is re-read in full (it used to re-read nothing)."""
    code, _, err = invoke(served, "db", "upgrade")
    assert code == 0, err
    engine = make_engine(served["CRMSYNC_DATABASE_URL"])
    with Session(engine) as session:
        letter = DeadLetter(system="ruddr", direction="inbound", op="update", error="bad")
        session.add(letter)
        session.commit()
        letter_id = letter.id
    code, out, err = invoke(served, "deadletters", "--replay", str(letter_id))
    assert code == 0, out + err
    assert "re-read of ruddr" in out
    with Session(engine) as session:
        assert session.get(DeadLetter, letter_id).status == "replayed"  # type: ignore[union-attr]
        runs = session.exec(select(Run).where(Run.system == "ruddr")).all()
        assert ("resync", "done") in [(r.kind, r.status) for r in runs]
        assert session.exec(select(Record)).first() is not None  # the re-read found the deals
    engine.dispose()


def test_status_and_conflicts_on_postgresql_unmigrated_then_migrated(
    config: Path, pg_url: str
) -> None:
    """On PostgreSQL too: a schema without crmsync's tables is one line with the upgrade hint;
    after `db upgrade` the same commands answer."""
    env = {"CRMSYNC_DATABASE_URL": pg_url}
    for command in (["status"], ["conflicts"]):
        code, output = crmsync(config, *command, env=env)
        assert code == 1
        assert "has never been migrated: run `crmsync db upgrade`" in one_line(output)
    upgrade(pg_url)
    for command in (["status"], ["conflicts"]):
        code, output = crmsync(config, *command, env=env)
        assert code == 0, output


def test_replaying_every_dead_letter_rereads_each_system_once(served: dict[str, str]) -> None:
    """`deadletters --all` replays every open letter through the admin API's code
    (sync.engine.operations.replay_dead_letters) and honours the re-reads it returns: two
    inbound letters of one system give one re-read of it; an outbound letter re-enqueues."""
    code, _, err = invoke(served, "db", "upgrade")
    assert code == 0, err
    engine = make_engine(served["CRMSYNC_DATABASE_URL"])
    with Session(engine) as session:
        session.add(Record(id="r1", fields={"name": "Deal"}, provenance={}))
        letters = [
            DeadLetter(
                system="ruddr", direction=direction, op="update", error="bad", record_id="r1"
            )
            for direction in ("inbound", "inbound", "outbound")
        ]
        session.add_all(letters)
        session.commit()
        ids = [letter.id for letter in letters]
    code, out, err = invoke(served, "deadletters", "--all")
    assert code == 0, out + err
    assert "3 dead letter(s) replayed." in out
    assert out.count("re-read of ruddr") == 1
    with Session(engine) as session:
        replayed = session.exec(select(DeadLetter).where(col(DeadLetter.id).in_(ids))).all()
        assert [letter.status for letter in replayed] == ["replayed"] * 3
        runs = session.exec(select(Run).where(Run.system == "ruddr", Run.kind == "resync")).all()
        assert len(runs) == 1
    engine.dispose()
