"""Runtime commands end to end over HTTP emulators: `run --once`, `reconcile`, `status`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sync.cli.app import app
from sync.emulators.server import running

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("restore_logging")]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with running(seed=1, seed_opportunities=3) as served:
        urls = {name: emulator.base_url for name, emulator in served.items()}
        yield {
            "CRMSYNC_CONFIG": str(ROOT / "config.yaml"),
            "CRMSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'crmsync.db'}",
            "CRMSYNC_LOG_FORMAT": "json",
            "CRMSYNC_LOG_LEVEL": "warning",
            "CRMSYNC_FIRST_RUN": "waive",  # every emulator holds deals: converge, not review
            "RUDDR_BASE_URL": urls["ruddr"],
            "CLOSE_BASE_URL": urls["close"],
            "PARSALINK_BASE_URL": urls["parsalink"],
            "TRUTO_BASE_URL": urls["truto"],
            "SALESFORCE_BASE_URL": urls["salesforce"],
            "HUBSPOT_BASE_URL": urls["hubspot"],
        }


def crmsync(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output  # stdout and stderr


def test_reconcile_after_a_run_heals_nothing_and_status_shows_it(env: dict[str, str]) -> None:
    """`reconcile` after converged cycles exits 0 with healed 0 per system; `status` then has a
    healed column reading 0 for every system."""
    for _ in range(2):
        code, out = crmsync(env, "run", "--once", "--no-live")
        assert code == 0, out
    code, out = crmsync(env, "reconcile")
    assert code == 0, out
    assert "healed 0" in out
    code, out = crmsync(env, "status")
    assert code == 0, out
    assert "healed" in out


def test_reconcile_rejects_an_unknown_system(env: dict[str, str]) -> None:
    """A typo in --system is a clean usage error naming the configured systems."""
    code, out = crmsync(env, "reconcile", "--system", "pipedrive")
    assert code != 0
    assert "unknown system 'pipedrive'" in out and "close" in out


def _store(env: dict[str, str]) -> Any:
    from sync.store.db import make_engine

    return make_engine(env["CRMSYNC_DATABASE_URL"])


def _owe_one_push(env: dict[str, str], **values: Any) -> int:
    """Turn one settled Close push back into an unsettled one (``values``); returns its id."""
    import sqlalchemy as sa

    from sync.store.models import Outbox

    db = _store(env)
    with db.begin() as connection:
        row_id = connection.execute(
            sa.select(Outbox.id).where(Outbox.system == "close").limit(1)  # type: ignore[arg-type]
        ).scalar_one()
        connection.execute(sa.update(Outbox).where(Outbox.id == row_id).values(**values))  # type: ignore[arg-type]
    db.dispose()
    return int(row_id)


def test_run_once_exits_1_naming_the_pushes_it_could_not_wait_for(env: dict[str, str]) -> None:
    """A push whose next retry is an hour away (past --max-wait): `run --once` exits 1 and says
    how many pushes are owed, where, why, and when the next retry is."""
    import datetime as dt

    code, out = crmsync(env, "run", "--once", "--no-live")
    assert code == 0, out
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    _owe_one_push(env, status="retry", next_attempt_at=later, last_error="503 from Close")
    code, out = crmsync(env, "run", "--once", "--no-live", "--max-wait", "5")
    assert code == 1, out
    assert "1 push(es) still owed" in out and "close: 1 waiting for a retry" in out
    assert f"next retry at {later:%Y-%m-%dT%H:%M}" in out


def test_run_once_redoes_at_once_what_a_killed_earlier_run_had_claimed(
    env: dict[str, str],
) -> None:
    """A push left `in_flight` by an earlier `run` of this host that died (its pid is gone),
    claimed for five more minutes: the next `run --once` releases it, pushes it and exits 0."""
    import datetime as dt
    import socket
    import subprocess
    import sys

    import sqlalchemy as sa

    from sync.store.models import Outbox

    code, out = crmsync(env, "run", "--once", "--no-live")
    assert code == 0, out
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    row_id = _owe_one_push(
        env,
        status="in_flight",
        claimed_by=f"{socket.gethostname()[:40]}:{gone.pid}:0badf00d:1",
        claimed_until=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5),
    )
    code, out = crmsync(env, "run", "--once", "--no-live")
    assert code == 0, out
    assert "1 push(es) claimed by an earlier run that died" in out
    db = _store(env)
    with db.connect() as connection:
        status = connection.execute(
            sa.select(Outbox.status).where(Outbox.id == row_id)  # type: ignore[arg-type]
        ).scalar_one()
    db.dispose()
    assert status == "done"
