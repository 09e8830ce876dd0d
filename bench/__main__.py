"""``python -m bench [--scenario NAME] [--records N] [--json PATH]``: run, print, write JSON."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.scenarios import SCENARIOS, Result, run
from sync.logging import configure_logging


def summary(results: list[Result]) -> Table:
    table = Table(title="crmsync benchmark (in-process emulators)")
    for column in (
        "scenario",
        "N",
        "changed",
        "cycles",
        "wall s",
        "rec/s",
        "requests",
        "ideal",
        "ratio",
        "writes",
        "engine s",
        "µs/rec",
        "peak RSS MB",
        "outbox left",
    ):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for r in results:
        table.add_row(
            r.scenario,
            str(r.records),
            str(r.changed),
            str(r.cycles),
            f"{r.wall_s:.2f}",
            f"{r.records_per_s:.0f}",
            str(r.requests),
            str(r.ideal),
            f"{r.ratio:.2f}",
            str(r.writes),
            f"{r.engine_s:.2f}",
            f"{r.engine_us_per_record:.0f}",
            f"{r.peak_rss_mb:.0f}",
            str(r.outbox_left),
        )
    return table


def per_system(results: list[Result]) -> Table:
    table = Table(title="requests per system")
    for column in (
        "scenario",
        "system",
        "capture",
        "by method",
        "by kind",
        "errors",
        "total",
        "ideal",
    ):
        table.add_column(column)
    for r in results:
        for name, s in r.systems.items():
            table.add_row(
                r.scenario,
                name,
                s.mode,
                " ".join(f"{k}={v}" for k, v in sorted(s.by_method.items())),
                " ".join(f"{k}={v}" for k, v in sorted(s.by_kind.items())),
                str(s.errors),
                str(s.total),
                str(s.ideal),
            )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--scenario",
        choices=SCENARIOS,
        action="append",
        help="run only this scenario (repeatable; default: all)",
    )
    parser.add_argument("--records", type=int, default=1000, help="opportunities seeded in Ruddr")
    parser.add_argument("--json", type=Path, default=Path("bench/results.json"), help="output file")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--log-level", default="WARNING", help="the engine's log level")
    args = parser.parse_args(argv)
    chosen = tuple(args.scenario or SCENARIOS)
    configure_logging(level=args.log_level)
    results = run(chosen, args.records, seed=args.seed)
    console = Console(width=max(Console().width, 160))
    console.print(summary(results))
    console.print(per_system(results))
    payload = {
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        "results": [r.to_json() for r in results],
    }
    args.json.write_text(json.dumps(payload, indent=2, default=str))
    console.print(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
