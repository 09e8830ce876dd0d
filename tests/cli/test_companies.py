"""Issue 24, finding 3, as an operator meets it: the emulators over HTTP, the shipped config and
the commands as typed. Ruddr's company Initech is renamed to Initech Global through Ruddr's
API; `run --once` parks nothing, `verify` exits 0 and names the rename (no company drift),
`doctor` names it too, and a later amount edit of an Initech deal reaches every system."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from sync.emulators.server import running
from tests.cli.test_firstrun import ROOT, _crmsync
from tests.e2e.users import CloseUser, RuddrUser
from tests.emulators.test_server import free_port_base

pytestmark = pytest.mark.slow


def test_a_company_renamed_in_ruddr_is_named_not_drift(tmp_path: Path) -> None:
    with running(port_base=free_port_base(), seed=1) as served:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_BASE_URL")}
        env |= {f"{name.upper()}_BASE_URL": s.base_url for name, s in served.items()}
        env |= {
            "CRMSYNC_CONFIG": str(ROOT / "config.yaml"),
            "CRMSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'crmsync.db'}",
            "CRMSYNC_LOG_LEVEL": "WARNING",
            "CRMSYNC_FIRST_RUN": "automatic",
            "HOME_DIR": str(tmp_path),
            "COLUMNS": "400",  # rich wraps nothing: the test reads whole phrases
        }
        ruddr = RuddrUser(
            httpx.Client(
                base_url=served["ruddr"].base_url,
                headers={"Authorization": "Bearer ruddr-test-token"},
            )
        )
        close = CloseUser(
            httpx.Client(
                base_url=served["close"].base_url, auth=httpx.BasicAuth("close-test-key", "")
            )
        )
        for _ in range(2):
            first = _crmsync(env, "run", "--once", "--no-live")
            assert first.returncode == 0, first.stderr[-2000:]
        assert _crmsync(env, "verify").returncode == 0

        ruddr.rename_company("Initech", "Initech Global")
        for _ in range(2):
            again = _crmsync(env, "run", "--once", "--no-live")
            assert again.returncode == 0, again.stderr[-2000:]
            assert "parked" not in again.stderr + again.stdout
        verify = _crmsync(env, "verify")
        assert verify.returncode == 0, verify.stdout[-3000:]
        assert "company Initech is named Initech in close" in verify.stdout
        assert "Initech Global in ruddr" in verify.stdout
        assert "No drift." in verify.stdout
        doctor = _crmsync(env, "doctor", "--system", "ruddr")
        assert "'Initech Global' here is 'Initech' in close" in doctor.stdout, doctor.stdout

        deal = next(d for d in ruddr.all() if d["company"]["name"] == "Initech Global")
        ruddr.edit(deal["id"], amount=43210.0)
        for _ in range(2):
            again = _crmsync(env, "run", "--once", "--no-live")
            assert again.returncode == 0, again.stderr[-2000:]
        verify = _crmsync(env, "verify")
        assert verify.returncode == 0, verify.stdout[-3000:]
        at_initech = [d for d in close.all() if d["lead_name"] == "Initech"]
        assert 4321000 in {d["value"] for d in at_initech}
