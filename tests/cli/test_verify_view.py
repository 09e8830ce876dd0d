"""A verify report on the terminal: the counts, and how each system's deals were read."""

from __future__ import annotations

from collections import Counter

import pytest
from rich.console import Console

from sync.cli import base, tables, verify_view
from sync.engine import reports
from sync.engine.verify_report import SystemCheck, VerifyReport


def test_verify_says_how_a_summary_listing_was_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """`verify` names the mode for a summary listing and how many deals it read in full,
    trusted on confirmed stamps and trusted on our own write's stamp — in text and --json."""
    check = SystemCheck(vendor_records=10, linked=10, summaries="sample of 2", read_in_full=3)
    check.trusted_by = Counter({"written": 5, "confirmed": 2})
    report = VerifyReport(systems={"parsalink": check, "ruddr": SystemCheck()})
    console = Console(width=200, record=True)
    for module in (verify_view, tables, base):  # each holds the console by name
        monkeypatch.setattr(module, "out", console)
    verify_view.show_verify(report, accept_known=False)
    assert (
        "parsalink: summaries sample of 2: 3 read in full, 2 trusted on confirmed stamps, "
        "5 on our own write's stamp"
    ) in console.export_text()
    systems = reports.verify(report)["systems"]
    assert systems["parsalink"]["summaries"] == {
        "how": "sample of 2",
        "read_in_full": 3,
        "trusted_confirmed": 2,
        "trusted_written": 5,
    }
    assert systems["ruddr"]["summaries"] is None
