"""How the commands show what they found: rich tables, and the lines that several commands
print alike (what a cycle left owed, why the first run creates nothing yet; a verify report
is :mod:`sync.cli.verify_view`'s).

The tables take plain rows — the dictionaries of :mod:`sync.engine.operations`, the admin
API's too — or engine reports; nothing here reads the store itself.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.markup import escape, render
from rich.table import Table
from rich.text import Text

from sync.cli.base import PIPE_WIDTH, err, out, piped
from sync.timefmt import parse_optional_timestamp, utcnow

if TYPE_CHECKING:
    from sync.engine.context import Engine
    from sync.engine.cycle import CycleReport, Owed
    from sync.engine.reconcile import ReconcileReport


def short(value: Any, width: int = 40) -> str:
    """A value on one cell: JSON for anything but text, cut at ``width`` with an ellipsis on a
    terminal; whole when the output goes to a pipe or a file (a script reads every value)."""
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= width or piped() else text[: width - 1] + "…"


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def when(stamp: str | None, *, whole: bool = False) -> str:
    """A stored ISO stamp on a narrow cell, in UTC: the time alone when it is today's, else the
    date and minute (the exact stamp is in ``--json`` and the admin API); ``whole``: date and
    time to the second, always."""
    at = parse_optional_timestamp(stamp) if stamp else None
    if at is None:
        return "—"
    if whole:
        return at.strftime("%Y-%m-%d %H:%M:%S")
    if at.date() == utcnow().date():
        return at.strftime("%H:%M:%S")
    return at.strftime("%Y-%m-%d %H:%M")


def one_line(text: str) -> str:
    """A message on one line: its lines joined, runs of spaces folded (a vendor's multi-line
    error in a status row)."""
    return " ".join(text.split())


def counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items()) if v) or "nothing to do"


_HEALTH_STYLE = {
    "ok": "green",
    "stale": "yellow",
    "error": "red",
    "held": "bold red",
    "never": "dim",
}


def health_table(
    rows: list[dict[str, Any]], title: str = "systems", *, whole: bool = False, width: int = 0
) -> RenderableType:
    """Per system its health and counts; ``whole`` stamps stand date above time (a cell of
    ten characters that never has to be cut)."""
    columns = ("health", "last poll", "lag", "cursor", "pending", "conflicts", "dead letters")
    cells = {}
    for row in rows:
        style = _HEALTH_STYLE.get(row["health"], "")
        cells[row["system"]] = [
            f"[{style}]{row['health']}[/]" if style else row["health"],
            when(row["last_poll_at"], whole=whole).replace(" ", "\n"),
            ago(row["lag_seconds"]),
            when(row["cursor"], whole=whole).replace(" ", "\n"),
            str(row["pending"]),
            str(row["conflicts"]),
            f"[red]{row['dead_letters']}[/]" if row["dead_letters"] else "0",
            _healed_cell(row.get("healed")),  # by the last reconcile; 0 when healthy
        ]
    left = {"health", "last poll", "cursor"}
    return count_table(f"{title} (times UTC)", (*columns, "healed"), cells, left=left, width=width)


def _healed_cell(healed: int | None) -> str:
    if healed is None:
        return "—"  # never reconciled
    return f"[yellow]{healed}[/]" if healed else "0"


def runs_table(runs: list[dict[str, Any]], *, whole: bool = False) -> Table:
    """The last runs, fitted to 80 columns without rich squeezing anything: every cell is
    no_wrap and holds its own line breaks (what above status, date above time, one count a
    line), so no release of rich can cut a run id, a stamp or a count."""
    # no outer edge: an 80-column terminal then fits a cycle's counts beside the full run id
    table = Table(title="last runs (times UTC)", title_justify="left", show_edge=False)
    table.add_column("run", no_wrap=True)  # the id the logs carry: never cut
    table.add_column("what", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("took", justify="right", no_wrap=True)
    items = [[f"{k}={v}" for k, v in sorted(run["counts"].items()) if v] for run in runs]
    # one "name=count" a line and never wrapped: a count cut in the middle reads as another
    table.add_column("counts", no_wrap=True)
    for run, counts in zip(runs, items, strict=True):
        style = {"done": "green", "failed": "red", "interrupted": "yellow", "died": "red"}.get(
            run["status"], ""
        )
        status = f"[{style}]{run['status']}[/]" if style else run["status"]
        what = escape("\n".join(x for x in (run["kind"], run["system"]) if x))
        table.add_row(
            run["id"],
            f"{what}\n{status}",
            when(run["started_at"], whole=whole).replace(" ", "\n"),
            _took(run["started_at"], run["finished_at"]),
            escape("\n".join(counts)) or "—",
        )
    return table


def _took(started: str | None, finished: str | None) -> str:
    """How long a run took ("—" while it runs)."""
    start, end = parse_optional_timestamp(started), parse_optional_timestamp(finished)
    if start is None or end is None:
        return "—"
    return ago((end - start).total_seconds())


def cycle_table(report: CycleReport) -> RenderableType:
    columns = ("fetched", "changed", "created", "pushed", "deleted", "conflicts", "dead letters")
    rows = {
        system: [str(counts[name.replace(" ", "_")]) for name in columns]
        for system, counts in report.per_system.items()
    }
    return count_table(f"cycle {report.run_id}: {report.status}", columns, rows, report.errors)


def reconcile_table(report: ReconcileReport) -> RenderableType:
    title = f"reconcile {report.run_id}: {report.status} — healed {report.healed}"
    columns = ("fetched", "healed", "changed", "created", "linked", "deleted", "pushed")
    rows = {}
    for system, counts in report.per_system.items():
        cells = [str(counts[name]) for name in columns]
        if counts["healed"]:
            cells[1] = f"[yellow]{counts['healed']}[/]"
        rows[system] = cells
    return count_table(title, columns, rows, report.errors)


#: the narrowest continuation a hanging indent leaves; a terminal narrower goes without one
MIN_HANGING = 20

#: cells that say "nothing here": a column of only these may leave a narrow table
QUIET = frozenset({"0", "—"})


def count_table(
    title: str,
    columns: Sequence[str],
    rows: Mapping[str, Sequence[str]],
    errors: Mapping[str, str] | None = None,
    *,
    left: Collection[str] = (),
    width: int = 0,
) -> RenderableType:
    """A table of counts, a row per system, that fits the terminal.

    A system's name is never cut (``parsa…`` names nothing). When the table is wider than
    ``width`` (the terminal's), the columns that are 0 for every system leave it and are named
    in a line below it, so the counts that matter keep readable headers (a never-reconciled
    ``healed`` of "—" counts as 0 there). The ``error`` column is there only when a system
    failed: empty, it only took room. Columns are right-aligned (counts) but those in ``left``.
    """
    errors = {system: errors[system] for system in rows if errors and errors.get(system)}
    shown = list(columns)
    if _natural_width(rows, columns) > (width or out.width):
        shown = [c for i, c in enumerate(columns) if any(r[i] not in QUIET for r in rows.values())]
    table = Table(title=title, title_justify="left")
    table.add_column("system", no_wrap=True)
    for name in shown:
        table.add_column(name, justify="left" if name in left else "right")
    if errors:
        table.add_column("error", overflow="fold")
    keep = [columns.index(name) for name in shown]
    for system, cells in rows.items():
        error = [escape(errors.get(system, ""))] if errors else []
        table.add_row(system, *(cells[i] for i in keep), *error)
    if dropped := [c for c in columns if c not in shown]:
        # below the table, not its caption: a caption wraps to the table's width, which on
        # a narrow terminal splits the names it lists ("drifting" / "fields") in a slim box
        note = Text(_quiet_note(columns, rows, dropped), style="table.caption")
        return Group(table, note)
    return table


def _quiet_note(
    columns: Sequence[str], rows: Mapping[str, Sequence[str]], dropped: list[str]
) -> str:
    """Names the columns left out: "0 for every system", or "none" for those that hold "—"
    (e.g. ``healed`` of a system never reconciled: not 0, nothing to tell)."""
    cells = {name: {r[columns.index(name)] for r in rows.values()} for name in dropped}
    zero = [name for name in dropped if cells[name] == {"0"}]
    none = [name for name in dropped if cells[name] != {"0"}]
    parts = [f"0 for every system: {', '.join(zero)}"] if zero else []
    parts += [f"none yet: {', '.join(none)}"] if none else []
    return "; ".join(parts)


def _natural_width(rows: Mapping[str, Sequence[str]], columns: Sequence[str]) -> int:
    """The table's width unsqueezed: each column its widest text, plus padding and border."""
    widths = [max(len(s) for s in [*rows, "system"])]
    for i, name in enumerate(columns):
        lines = [part for r in rows.values() for part in render(r[i]).plain.split("\n")]
        widths.append(max([len(name)] + [len(part) for part in lines]))
    return sum(w + 3 for w in widths) + 1


def owed_lines(left: Owed) -> list[str]:
    """What a cycle left undone, in words: pushes owed per system, and when the next is due."""

    from sync.timefmt import format_timestamp, utcnow

    lines = []
    if left.total:
        per_system = "; ".join(
            f"{system}: " + ", ".join(f"{n} {_STATE_WORDS.get(s, s)}" for s, n in states.items())
            for system, states in sorted(left.states.items())
        )
        lines.append(f"[red]{left.total} push(es) still owed[/] — {escape(per_system)}")
        if left.next_due is not None:
            seconds = max(0.0, (left.next_due - utcnow()).total_seconds())
            when = format_timestamp(left.next_due, precision="s")
            lines.append(
                f"next retry at {when} (in {ago(seconds)}); run `crmsync run --once` again "
                "then, or keep `crmsync run` running"
            )
    if left.waiting:  # named: value, system, what to do (engine.unresolved)
        lines.append("[yellow]waiting for a reference (every other field was written):[/]")
        lines.extend(f"  {escape(reference.describe())}" for reference in left.waiting)
    elif left.parked:
        parked = ", ".join(f"{system}: {n}" for system, n in sorted(left.parked.items()))
        lines.append(f"[yellow]parked, waiting for a reference to resolve:[/] {escape(parked)}")
    return lines


_STATE_WORDS = {
    "retry": "waiting for a retry",
    "in_flight": "claimed by another process",
    "pending": "not sent (creates wait until every system has been read once)",
}


def first_run_notice(engine: Engine) -> None:
    """Say why nothing was created while the guided first run waits for a review."""
    from sync.engine import first_run

    gate = first_run.gate(engine)
    if gate.state == "review":
        deals = ", ".join(f"{system} {n}" for system, n in sorted(gate.deals.items()))
        err.print(
            f"[yellow]First run: these systems already hold deals ({deals}). Nothing is created "
            "until you review the match, and nothing is changed anywhere either: `crmsync "
            "match`, then `crmsync match --approve` (`crmsync plan` shows what it will write).[/]"
        )
    waiting = first_run.held_for_review(engine)
    if waiting:
        err.print(
            f"[yellow]{waiting} deal copies are held as ambiguous matches: nothing is created from "
            "them until a person decides (`crmsync match --csv FILE`, then `--apply FILE`).[/]"
        )


def line(text: str, *, console: Console | None = None) -> None:
    """One line of a listing (markup): wrapped at spaces to the terminal, never inside a word
    or a number — a word wider than the line stands whole on a line of its own, so an id is
    copied whole — and whole when piped. Its continuation lines hang two columns in from
    where it starts (``  ✓ rate: …`` goes on under ``rate``, ``• match: …`` under
    ``match``), so a wrapped item never reads as the start of the next one."""
    console = console or out
    rendered = console.render_str(text)
    if "\n" in rendered.plain:  # a vendor's multi-line message: one item, wrapped as one
        plain = rendered.plain.replace("\n", " ")
        rendered = Text(plain, style=rendered.style, spans=rendered.spans)
    for part in hanging(rendered, console.width):
        console.print(part, soft_wrap=True)  # already fitted: not wrapped or cut again


def hanging(text: Text, width: int) -> list[Text]:
    """``text`` in lines of at most ``width`` cells, broken at spaces, its continuation lines
    indented two columns past its own indent (none on a terminal too narrow for one)."""
    plain = text.plain
    indent = len(plain) - len(plain.lstrip(" "))
    hang = indent + 2 if width >= indent + 2 + MIN_HANGING else 0
    lines: list[Text] = []
    start, room = 0, width
    while cell_len(plain[start:]) > room:
        cut = _break_at(plain, start, room)
        if cut is None:
            break
        lines.append(text[start:cut])
        start = len(plain) - len(plain[cut:].lstrip(" "))
        room = width - hang
    lines.append(text[start:])
    return [lines[0], *(Text(" " * hang) + part for part in lines[1:])]


def _break_at(plain: str, start: int, room: int) -> int | None:
    """Where the line from ``start`` ends: the last space before ``room`` cells, else the
    first one (its first word alone is wider); None when no space is left to break at."""
    body = len(plain) - len(plain[start:].lstrip(" "))  # the indent is no place to break
    fits = None
    space = plain.find(" ", body)
    while space != -1 and cell_len(plain[start:space]) <= room:
        fits = space
        space = plain.find(" ", space + 1)
    if fits is not None:
        return fits
    return space if space != -1 else None


def listing(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], *, styles: Sequence[str] = ()
) -> None:
    """Rows of plain text (no markup) as a table when it fits the terminal at its natural width,
    else one row a line as ``column: value`` pairs, wrapped only at spaces (a row with an
    empty first column indented under the row above, as it continues it). A table is never
    squeezed — how rich squeezes differs between releases, and a squeezed cell splits words or
    drops digits — so at any width every value is whole."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, no_wrap=True)
    for i, row in enumerate(rows):
        table.add_row(*(escape(cell) for cell in row), style=styles[i] if styles else None)
    # measured unbounded: Console.measure caps a table at the terminal, so it always "fits"
    natural = out.measure(table, options=out.options.update_width(PIPE_WIDTH)).maximum
    if natural <= out.width:
        out.print(table)
        return
    out.print(f"[bold]{escape(title)}[/]")
    for i, row in enumerate(rows):
        pairs = "  ".join(f"{c}: {v}" for c, v in zip(columns, row, strict=True) if v)
        style = styles[i] if styles and styles[i] else ""
        # a row that leaves the first column empty goes on with the row above (the other
        # deals of a match): indented under it, not a bullet that reads as an item of its own
        text = f"{'  ' if i and not row[0] else '• '}{escape(pairs)}"
        line(f"[{style}]{text}[/]" if style else text)
