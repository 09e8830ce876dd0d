"""The ``--huge`` benchmark's pieces that a typo would only break hours into a run by hand
(bench/huge.py; the run itself never runs in CI): its two-system config loads, and the
emulators' counting log counts requests by kind without keeping them."""

from __future__ import annotations

from pathlib import Path

from bench.huge import SYSTEMS, Tally, write_config
from sync.config import load_config


def test_the_config_holds_ruddr_and_close_without_rate_limits(tmp_path: Path) -> None:
    """The shipped config cut to Ruddr and Close (conflict priorities included) is valid, and
    neither system is limited on our side."""
    env = {f"{prefix}_BASE_URL": f"http://127.0.0.1:1/{name}" for name, prefix in SYSTEMS.items()}
    config = load_config(write_config(tmp_path), env=env)
    assert sorted(config.systems) == sorted(SYSTEMS)
    assert all(cfg.rate_limit is None for cfg in config.systems.values())


def test_the_tally_counts_by_kind_and_keeps_nothing() -> None:
    """Lists, single reads, writes, errors and distinct reference reads are counted; the log
    itself stays empty, and ``clear`` starts the counts again."""
    tally = Tally("/api/workspace")
    for method, path, status in [
        ("GET", "/api/workspace/opportunities", 200),
        ("GET", "/api/workspace/opportunities/1", 404),
        ("POST", "/api/workspace/opportunities", 201),
        ("GET", "/api/workspace/companies", 200),
        ("GET", "/api/workspace/companies", 200),
    ]:
        tally.append({"method": method, "path": path, "status": status})
    assert len(tally) == 0
    assert tally.report() == {
        "list": 1, "get": 1, "write": 1, "reference": 2, "total": 5, "errors": 1,
        "distinct_references": 1,
    }  # fmt: skip
    tally.clear()
    assert tally.report() == {"distinct_references": 0}
