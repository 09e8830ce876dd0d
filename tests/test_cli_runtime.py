"""Runtime commands end to end over HTTP emulators: `run --once`, `reconcile`, `status`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sync.cli import app
from sync.emulators.server import running

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("restore_logging")]
ROOT = Path(__file__).resolve().parents[1]


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
    code, out = crmsync(env, "reconcile", "--system", "hubspot")
    assert code != 0
    assert "unknown system 'hubspot'" in out and "close" in out
