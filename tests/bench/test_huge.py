"""The ``--huge`` benchmark's pieces that a typo would only break hours into a run by hand
(bench/huge.py; the run itself never runs in CI): its two-system config loads, and the
emulators' counting log counts requests by kind without keeping them, and each system's
poll is timed from crmsync's log."""

from __future__ import annotations

import os
from pathlib import Path

from bench.huge import SYSTEMS, Tally, write_config
from bench.huge_watch import Polls
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


def test_polls_are_timed_from_the_capture_done_lines(tmp_path: Path) -> None:
    """Each system's poll spans from the previous ``capture_done`` line (the first from the
    process's start) to its own; lines written before the phase and a line not yet ended are
    not read."""
    log = tmp_path / "crmsync.log"
    log.write_text('{"event": "capture_done", "system": "old"}\n')
    polls = Polls(log)
    with log.open("a") as out:
        out.write('{"event": "capture_done", "system": "ruddr"}\n{"event": "other"}\n')
    polls.read(2.0, os.getpid())
    with log.open("a") as out:
        out.write('{"event": "capture_done", "system": "close"}\n{"event": "capt')
    polls.read(5.0, os.getpid())
    spans = polls.spans()
    assert list(spans) == ["ruddr", "close"]
    assert (spans["ruddr"]["wall_s"], spans["close"]["wall_s"]) == (2.0, 3.0)
    assert all(span["cpu_s"] >= 0 for span in spans.values())
