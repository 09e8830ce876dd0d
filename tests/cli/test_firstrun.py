"""The README's "connect your real systems" path, end to end over HTTP: emulators standing in
for real accounts that already hold the same deal, a fresh store, and the commands as a user
types them — `doctor`, `run --once` (creates nothing), `match`, `match --csv`,
`match --approve`, `run --once`, `verify`."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sync.emulators.server import running
from tests.e2e.users import CloseUser, ParsaLinkUser, RuddrUser
from tests.emulators.test_server import free_port_base

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _crmsync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sync", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=env["HOME_DIR"],
    )


def test_connecting_systems_that_hold_the_same_deal(tmp_path: Path) -> None:
    """One deal typed by hand into Ruddr, Close and ParsaLink (case differs): the first run
    creates nothing and says why; `match` proposes the three copies as one deal; after
    `--approve` every system holds it once and `verify` finds no drift."""
    with running(port_base=free_port_base(), seed=1) as served:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_BASE_URL")}
        env |= {f"{name.upper()}_BASE_URL": s.base_url for name, s in served.items()}
        env |= {
            "CRMSYNC_CONFIG": str(ROOT / "config.yaml"),
            "CRMSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'crmsync.db'}",
            "CRMSYNC_LOG_LEVEL": "WARNING",
            "HOME_DIR": str(tmp_path),
            "COLUMNS": "400",  # rich wraps nothing: the test reads whole phrases
        }
        env.pop("CRMSYNC_FIRST_RUN", None)
        users = {
            "ruddr": RuddrUser(
                httpx.Client(
                    base_url=served["ruddr"].base_url,
                    headers={"Authorization": "Bearer ruddr-test-token"},
                )
            ),
            "close": CloseUser(
                httpx.Client(
                    base_url=served["close"].base_url, auth=httpx.BasicAuth("close-test-key", "")
                )
            ),
            "parsalink": ParsaLinkUser(
                httpx.Client(
                    base_url=served["parsalink"].base_url,
                    headers={"Authorization": "Bearer pk_test_parsalink"},
                )
            ),
        }
        users["ruddr"].create("Hooli renewal")
        users["close"].create("HOOLI Renewal")
        users["parsalink"].create("hooli  renewal")

        doctor = _crmsync(env, "doctor")
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert "credential accepted" in doctor.stdout

        first = _crmsync(env, "run", "--once", "--no-live")
        assert first.returncode == 0, first.stderr[-2000:]
        assert "Nothing is created until you review the match" in first.stderr
        assert sum(1 for d in users["close"].all()) == 1  # nothing created

        planned = _crmsync(env, "plan")
        assert planned.returncode == 2, planned.stderr[-2000:]
        assert "waits for the first-run match" in planned.stdout

        proposal = _crmsync(env, "match", "--csv", str(tmp_path / "matches.csv"))
        assert proposal.returncode == 0, proposal.stderr[-2000:]
        assert "First run: review" in proposal.stdout
        assert "Hooli renewal" in proposal.stdout and "ambiguous 0" in proposal.stdout
        with (tmp_path / "matches.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        hooli = [r for r in rows if r["name"].casefold().split() == ["hooli", "renewal"]]
        assert len({r["match_id"] for r in hooli}) == 1 and len(hooli) == 3

        approved = _crmsync(env, "match", "--approve")
        assert approved.returncode == 0, approved.stderr[-2000:]
        assert "(2 records merged)" in approved.stdout

        for _ in range(2):
            again = _crmsync(env, "run", "--once", "--no-live")
            assert again.returncode == 0, again.stderr[-2000:]
        verify = _crmsync(env, "verify")
        assert verify.returncode == 0, verify.stdout[-3000:]
        assert "No drift." in verify.stdout
        for user in users.values():
            named = [d for d in user.all() if "hooli" in str(d).casefold()]
            assert len(named) == 1


def test_the_first_run_refuses_two_systems_bound_to_one_salesforce_org(tmp_path: Path) -> None:
    """truto_salesforce names the org behind Truto (options.org_id), and the direct Salesforce
    credentials reach that same org: `run --once` and `match` refuse with a message naming both
    systems and the org, exit 2, and nothing is written to any vendor or to the store."""
    import sqlalchemy as sa

    from sync.emulators import reference
    from tests.e2e.conftest import is_write

    org = reference.TRUTO_SALESFORCE_ORG
    shipped = (ROOT / "config.yaml").read_text(encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(shipped.replace("      # org_id: 00D…\n", f"      org_id: {org}\n", 1))
    assert f"org_id: {org}" in config.read_text(encoding="utf-8")
    with running(port_base=free_port_base(), seed=1) as served:
        control = f"{served['salesforce'].root_url}/_emulator/salesforce"
        assert httpx.post(control, json={"organization_id": org}).status_code == 200
        env = {k: v for k, v in os.environ.items() if not k.endswith("_BASE_URL")}
        env |= {f"{name.upper()}_BASE_URL": s.base_url for name, s in served.items()}
        env |= {
            "CRMSYNC_CONFIG": str(config),
            "CRMSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'crmsync.db'}",
            "HOME_DIR": str(tmp_path),
            "COLUMNS": "400",
        }
        for args in (("run", "--once", "--no-live"), ("match",)):
            refused = _crmsync(env, *args)
            assert refused.returncode == 2, refused.stdout + refused.stderr
            said = " ".join(refused.stderr.split())
            assert f"truto_salesforce and salesforce are bound to one Salesforce org, {org}" in said
            assert "Nothing was read or written" in said
        writes = [r for s in served.values() for r in s.emulator.requests if is_write(r)]
        assert [r for r in writes if "_emulator" not in r["path"]] == []
    store = sa.create_engine(f"sqlite:///{tmp_path / 'crmsync.db'}")
    with store.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM records")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM links")).scalar() == 0
    store.dispose()
