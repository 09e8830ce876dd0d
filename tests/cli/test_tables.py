"""The CLI's tables stay readable on an 80-column terminal: a system's name is never cut, and
counts that are 0 everywhere give their room to the ones that are not."""

from __future__ import annotations

import pytest
from rich.console import Console

from sync.cli import base, tables

COLUMNS = ("vendor deals", "linked", "unlinked", "missing", "absent", "duplicates")
ROWS = {name: ["40", "40", "0", "0", "0", "0"] for name in ("ruddr", "truto_salesforce")}
ROWS["ruddr"][3] = "2"


def _text(table: object, width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(table)
    return console.export_text()


def test_a_narrow_terminal_keeps_names_whole_and_names_the_zero_columns_in_the_caption() -> None:
    text = _text(tables.count_table("verify", COLUMNS, ROWS, width=60), 60)
    assert "truto_salesforce" in text
    assert "…" not in text  # no header or name cut
    assert "missing" in text.splitlines()[2]  # non-zero column kept in the header row
    assert "0 for every system: unlinked, absent, duplicates" in " ".join(text.split())


def test_a_wide_terminal_shows_every_column() -> None:
    text = _text(tables.count_table("verify", COLUMNS, ROWS, width=200), 200)
    header = text.splitlines()[2]
    assert all(name in header for name in COLUMNS)
    assert "0 for every system" not in text


def test_an_error_column_appears_only_when_a_system_failed() -> None:
    quiet = _text(tables.count_table("cycle", COLUMNS, ROWS, {}, width=200), 200)
    errors = {"ruddr": "HTTP 503"}
    failed = _text(tables.count_table("cycle", COLUMNS, ROWS, errors, width=200), 200)
    assert "error" not in quiet
    assert "error" in failed and "HTTP 503" in failed


def test_a_stamp_of_today_shows_its_time_an_older_one_its_date() -> None:
    today = tables.utcnow().replace(hour=9, minute=5, second=7, microsecond=0)
    assert tables.when(today.isoformat()) == "09:05:07"
    assert tables.when("2020-01-02T03:04:05Z") == "2020-01-02 03:04"
    assert tables.when(None) == "—"


def test_the_runs_table_fits_80_columns_with_the_run_id_whole() -> None:
    run = {
        "id": "run_3e0aa7264d8f40539643",
        "kind": "cycle",
        "system": None,
        "status": "done",
        "started_at": "2026-11-30T18:32:37Z",
        "finished_at": "2026-11-30T18:33:00Z",
        "counts": {"created": 155, "fetched_full": 10, "pushed": 6, "conflicts": 0},
    }
    text = _text(tables.runs_table([run]), 80)
    assert "run_3e0aa7264d8f40539643" in text
    assert "fetched_full=10" in text and "23s" in text
    assert "conflicts" not in text  # zero counts are left out
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80


def test_a_column_of_dashes_is_named_as_none_yet_not_as_zero() -> None:
    """A never-reconciled ``healed`` ("—") is not 0: the caption keeps the two apart."""
    rows = {name: ["40", "0", "—"] for name in ("ruddr", "truto_salesforce")}
    table = tables.count_table("systems", ("fetched", "pending", "healed"), rows, width=30)
    text = " ".join(_text(table, 30).split())
    assert "0 for every system: pending" in text and "none yet: healed" in text


def test_the_live_views_tables_show_whole_stamps_and_fit_80_columns() -> None:
    """The live view's stamps are whole (date and second), and its tables still fit 80
    columns with the run id, every stamp part and every count whole."""
    run = {
        "id": "run_3e0aa7264d8f40539643",
        "kind": "cycle",
        "system": None,
        "status": "done",
        "started_at": "2026-11-30T18:32:37Z",
        "finished_at": "2026-11-30T18:33:00Z",
        "counts": {"fetched": 40, "unchanged": 40, "fetched_full": 10},
    }
    text = _text(tables.runs_table([run], whole=True), 80)
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    words = text.split()
    for token in ("run_3e0aa7264d8f40539643", "2026-11-30", "18:32:37"):
        assert token in words
    for count in ("fetched=40", "unchanged=40", "fetched_full=10"):
        assert count in words
    row = {
        "system": "truto_salesforce",
        "health": "ok",
        "last_poll_at": "2026-11-30T18:32:37Z",
        "lag_seconds": 3.0,
        "cursor": "2026-11-30T18:32:30Z",
        "pending": 0,
        "conflicts": 0,
        "dead_letters": 0,
        "healed": None,
    }
    text = _text(tables.health_table([row], whole=True, width=80), 80)
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    assert "18:32:37" in text.split() and "truto_salesforce" in text.split()


def test_a_listing_wider_than_the_terminal_is_pairs_with_every_value_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A listing whose natural width exceeds the terminal is not squeezed into a table (rich
    would cut its cells with "…"): each row is a line of ``column: value`` pairs, wrapped at
    spaces within 80 columns, every value whole."""
    why = "changed in close (amount, description) and parsalink (close_date, probability)"
    saved = base.out._width
    monkeypatch.setenv("COLUMNS", "80")
    base.fit_to_pipes()  # as every invocation does: $COLUMNS sets the width
    try:
        with base.out.capture() as captured:
            tables.listing("journal", ("at", "system", "why"), [["2026-12-07", "close", why]])
    finally:
        base.out._width = saved
    text = captured.get()
    assert "…" not in text and "┃" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert f"at: 2026-12-07 system: close why: {why}" in " ".join(text.split())
