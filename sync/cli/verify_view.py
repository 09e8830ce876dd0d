"""How a verify report is shown (``crmsync verify``, the demo's last step): a count table a
system, then every deal a count counts, named with why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from sync.cli.base import out
from sync.cli.tables import count_table, line, short

if TYPE_CHECKING:
    from sync.engine.verify_report import VerifyReport

#: deals named per system and kind in a verify report (``--json`` names every one)
NAMED = 50


def show_verify(report: VerifyReport, *, accept_known: bool) -> None:
    """Print a verify report (``crmsync verify``, the demo's last step); exit 1 unless every
    system agrees (known differences count as agreeing with ``accept_known``). Every deal a
    count counts is named below the table with why (up to ``NAMED`` a kind and system, then
    how many more), so the counts and the lines agree."""
    columns = (
        "vendor deals",
        "linked",
        "unlinked",
        "unreadable",
        "missing",
        "absent",
        "duplicates",
        "drifting fields",
        "known",
        "filtered",
        "open conflicts",
    )
    rows = {
        name: [
            str(count)
            for count in (
                check.vendor_records,
                check.linked,
                len(check.unlinked),
                len(check.unreadable),
                len(check.missing),
                len(check.absent),
                len(check.duplicates),
                len(check.drift),
                len(check.known),
                len(check.filtered),
                check.conflicts,
            )
        ]
        for name, check in report.systems.items()
    }
    out.print(count_table("verify", columns, rows))
    for name, check in report.systems.items():
        if check.summaries is not None:  # a summary listing: say how its deals were read
            line(
                f"  {name}: summaries {check.summaries}: {check.read_in_full} read in full, "
                f"{check.trusted_by['confirmed']} trusted on confirmed stamps, "
                f"{check.trusted_by['written']} on our own write's stamp"
            )
        _named_lines(name, check)
    for group in report.twins[:NAMED]:
        line(f"  [red]one deal held as {len(group)} records: {', '.join(group)}[/]")
    for company, names in list(report.company_names.items())[:50]:
        named = ", ".join(f"{short(name)} in {system}" for system, name in names.items())
        line(
            f"  [cyan]company {escape(short(company))} is named {escape(named)}: linked, compared "
            "through the link (each system keeps its own name)[/]"
        )
    if not report.agrees(accept_known=accept_known):
        raise typer.Exit(1)
    if not report.clean:
        out.print("[yellow]No drift besides the known differences listed (accepted).[/]")
        return
    out.print("[green]No drift.[/]")


def _named_lines(system: str, check: Any) -> None:
    """Each deal a count of ``check`` counts, one line each: what, which deal, and why."""
    kinds = (
        ("unlinked", check.unlinked, "red"),
        ("unreadable", check.unreadable, "red"),
        ("missing", check.missing, "red"),
        ("absent", check.absent, "red"),
    )
    for kind, ids, style in kinds:
        for deal_id in ids[:NAMED]:
            name = check.names.get(deal_id)
            deal = f"{deal_id} ({name!r})" if name else deal_id
            why = check.why.get(deal_id, "")
            line(f"  [{style}]{system} {kind}:[/] {escape(deal)}: {escape(why)}")
        _more(system, kind, len(ids))
    for known in check.known[:NAMED]:
        where = " ".join(x for x in (known.external_id, known.field) if x)
        line(f"  [cyan]{system} known:[/] {escape(where)}: {escape(known.reason)}")
    _more(system, "known", len(check.known))
    for drift in check.drift[:NAMED]:
        line(
            f"  [yellow]{system} drift:[/] {escape(drift.external_id)} {escape(drift.field)}: "
            f"ours {escape(short(drift.ours))} != theirs {escape(short(drift.theirs))}"
        )
    _more(system, "drifting fields", len(check.drift))
    for duplicate in check.duplicates[:NAMED]:
        line(f"  [red]{system} duplicate:[/] {escape(short(duplicate))}")
    _more(system, "duplicates", len(check.duplicates))


def _more(system: str, kind: str, count: int) -> None:
    if count > NAMED:
        line(f"  {system} {kind}: {count - NAMED} more (`--json` lists every one)")
