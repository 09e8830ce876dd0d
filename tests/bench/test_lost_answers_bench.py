"""``python -m bench.lost_answers`` runs at a tiny size: both loads converge, no duplicate, every
figure is finite, and the requests are split into writes, look-ups and polls that add up to
the emulators' logs less the retried reads (a smoke test of the benchmark, not a performance
test)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.lost_answers import main


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_lost_answers_benchmark_runs_and_makes_no_duplicate(tmp_path: Path) -> None:
    out = tmp_path / "lost.json"
    argv = ["--records", "20", "--lost", "0.3", "--batch-lost", "0.3", "--failed", "0.1"]
    assert main([*argv, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    systems = {row["system"]: row for row in result["systems"]}
    assert set(systems) == {
        "ruddr", "close", "parsalink", "truto_salesforce", "salesforce", "hubspot",
    }  # fmt: skip
    for name, row in systems.items():
        assert row["duplicates"] == 0 and row["left"] == 0, name
        assert math.isfinite(row["per_lost_create"]), name
        assert math.isfinite(row["per_found"]), name
        assert row["per_lost_create"] == pytest.approx(
            (row["extra_writes"] + row["extra_lookups"]) / row["lost_creates"]
            if row["lost_creates"]
            else 0.0
        ), name  # the polls are beside it, not in it
        assert row["clean"]["polls"] > 0 and row["clean"]["writes"] > 0, name
    assert sum(row["lost_creates"] for row in systems.values()) > 0
