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


def test_a_narrow_terminal_keeps_names_whole_and_names_the_zero_columns_below() -> None:
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
    """A never-reconciled ``healed`` ("—") is not 0: the note below the table keeps them apart."""
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


def test_a_long_line_hangs_under_its_item_and_keeps_every_id_whole() -> None:
    """At 80 columns a long indented line (a verify or doctor item) wraps at spaces within
    80 columns, each continuation two columns past the item's indent, and the ids a person
    copies stay whole on one line, never cut with "…" or folded; a word wider than the line
    stands whole on a line of its own; a line break inside the text is wrapped as a space."""
    deal = "rec_071cae88b2204193827e"
    vendor = "oppo_zVcdiDO0plhRMELI5OUONukQgmjaD2X5rDMjG6VDGtA"
    console = Console(width=80, record=True, color_system=None)
    tables.line(
        f"  [red]ruddr absent:[/] {deal} ('Stark Industries - Cloud Migration'): not created "
        f"here yet: its create is pending (captured from close {vendor}, after a retry)",
        console=console,
    )
    lines = console.export_text().splitlines()
    assert len(lines) > 1 and lines[0].startswith("  ruddr absent: ")
    assert all(len(row) <= 80 for row in lines)
    assert all(row.startswith("    ") and not row.startswith("     ") for row in lines[1:])
    words = " ".join(lines).split()
    assert deal in words and f"{vendor}," in words and "…" not in " ".join(lines)
    console = Console(width=40, record=True, color_system=None)
    tables.line(f"  fix: open https://example.test/{vendor}/settings then retry", console=console)
    lines = console.export_text().splitlines()
    assert f"https://example.test/{vendor}/settings" in [row.strip() for row in lines]
    console = Console(width=40, record=True, color_system=None)
    tables.line("  close dead letter: HTTP 400\nname is required on create", console=console)
    assert console.export_text().splitlines() == [
        "  close dead letter: HTTP 400 name is",
        "    required on create",
    ]  # a vendor's multi-line message is one item, wrapped as one


def test_a_listing_too_wide_for_the_terminal_indents_the_rows_that_continue_a_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In the pairs form, a row whose first column is empty (another deal of the match above)
    is indented under that match, not bulleted as a match of its own."""
    console = Console(width=80, record=True, color_system=None)
    for module in (tables, base):
        monkeypatch.setattr(module, "out", console)
    name = "Stark Industries - Cloud Migration @ Stark Industries"
    rows = [
        ["M00001", "matched", "ruddr 70b77b26-047f-41f3-a6f1-d670af5352ad", name, "same name"],
        ["", "", "close oppo_wX5MsIR2PBqMUFucUEA9mGudgaSp2S1KA7eReHZlre9", name, ""],
        ["M00002", "matched", "hubspot 36162123", name, "same name"],
    ]
    tables.listing("proposed matches", ("match", "status", "deal", "name", "why"), rows)
    lines = console.export_text().splitlines()
    bullets = [row for row in lines if row.startswith("• ")]
    assert [row.split()[2] for row in bullets] == ["M00001", "M00002"]
    continued = next(row for row in lines if "close oppo_" in row)
    assert continued.startswith("  deal: close oppo_wX5MsIR2PBqMUFucUEA9mGudgaSp2S1KA7eReHZlre9")


def test_the_zero_columns_are_named_on_a_line_as_wide_as_the_terminal() -> None:
    """The note naming the columns left out wraps to the terminal, not to the narrow table
    above it: at 100 columns it is one line, with no column name split over two."""
    columns = (*COLUMNS, "drifting fields", "known", "filtered", "open conflicts")
    rows = {name: [*cells, "0", "0", "0", "0"] for name, cells in ROWS.items()}
    lines = _text(tables.count_table("verify", columns, rows, width=60), 100).splitlines()
    note = [row for row in lines if row.startswith("0 for every system")]
    assert note == [
        "0 for every system: unlinked, absent, duplicates, drifting fields, known, filtered, "
        "open conflicts"
    ]
