"""``python -m bench [--scenario NAME] [--records N] [--json PATH]``: run, print, write JSON."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from bench.dlt_compare import ToolResult, compare
from bench.engine_cpu import StageCost, engine_cpu
from bench.large_load import run_in_subprocess
from bench.recovery import run_in_subprocess as run_recovery
from bench.scaleout import measure as measure_scaleout
from bench.scaleout import table as scaleout_table
from bench.scenarios import SCENARIOS, Plan, Result, run
from bench.store import DEFAULT_PG_URL, STORES
from sync.logging import configure_logging

LARGE = 100_000
# a handful of writes, or a window under a second, says nothing about a rate
MIN_WRITES = 10
MIN_WINDOW_S = 1.0


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def summary(results: list[Result]) -> Table:
    stores = ", ".join(sorted({r.store for r in results}))
    table = Table(title=f"crmsync benchmark (in-process emulators, {stores} store)")
    for column in (
        "scenario",
        "N",
        "inj. ms",
        "changed",
        "cycles",
        "wall s",
        "rec/s",
        "requests",
        "ideal",
        "ratio",
        "writes",
        "429s",
        "engine s",
        "µs/rec",
        "CPU µs/rec",
        "store CPU µs/rec",
        "p50 s",
        "p95 s",
        "peak RSS MB",
        "outbox left",
    ):
        if column == "scenario":  # the row's name: never cut to "initia…" in a narrow terminal
            table.add_column(column, justify="left", no_wrap=True, min_width=16)
        else:
            table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            r.scenario,
            str(r.records),
            f"{r.latency_ms:g}",
            str(r.changed),
            str(r.cycles),
            f"{r.wall_s:.2f}",
            f"{r.records_per_s:.0f}",
            str(r.requests),
            str(r.ideal),
            f"{r.ratio:.2f}",
            str(r.writes),
            str(r.throttled),
            f"{r.engine_s:.2f}",
            f"{r.engine_us_per_record:.0f}",
            f"{r.engine_cpu_us_per_record:.0f}",
            "-" if r.store_cpu_us_per_record is None else f"{r.store_cpu_us_per_record:.0f}",
            seconds(r.latency_p50_s),
            seconds(r.latency_p95_s),
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


def saturation_table(results: list[Result]) -> Table:
    table = Table(title="rate-limit saturation (writes that landed, per system)")
    for column in (
        "system",
        "allowed req/s",
        "client limit",
        "writes",
        "window s",
        "write rate /s",
        "share of rate %",
        "share of allowance %",
        "429s",
    ):
        table.add_column(column, justify="left" if column == "system" else "right")
    for r in results:
        for s in r.saturation:
            measurable = s.writes >= MIN_WRITES and s.window_s >= MIN_WINDOW_S
            table.add_row(
                s.system,
                f"{s.allowed_rate:.2f}",
                "-" if s.client_rate is None else f"{s.client_rate:g}",
                str(s.writes),
                f"{s.window_s:.1f}",
                f"{s.write_rate:.2f}" if measurable else "-",
                f"{s.share:.0%}" if measurable else "-",
                f"{s.allowance_share:.0%}" if measurable else "-",
                str(s.throttled),
            )
    return table


def dlt_table(tools: list[ToolResult]) -> Table:
    table = Table(title="capture of one Close listing over HTTP: crmsync vs dlt rest_api")
    for column in (
        "tool",
        "records",
        "seconds",
        "records/s",
        "peak RSS MB",
        "RSS at start MB",
        "requests",
        "emulator s",
        "own s",
        "ratio",
    ):
        table.add_column(column, justify="left" if column == "tool" else "right")
    reference = next((t.records_per_s for t in tools if t.tool == "dlt"), 0.0)
    for t in tools:
        table.add_row(
            t.tool,
            str(t.records),
            f"{t.seconds:.2f}",
            f"{t.records_per_s:.0f}",
            f"{t.peak_rss_mb:.0f}",
            f"{t.start_rss_mb:.0f}",
            str(t.requests),
            f"{t.emulator_s:.2f}",
            f"{t.seconds - t.emulator_s:.2f}",
            f"{t.records_per_s / reference:.2f}" if reference else "-",
        )
    return table


def oop_table(r: dict[str, Any]) -> Table:
    table = Table(title="initial load, emulators in another process (crmsync's own RSS)")
    columns: tuple[str, ...] = ("N", "cycles", "wall s", "rec/s", "engine µs/rec", "requests")
    columns = (*columns, "ideal", "ratio", "p50 s", "p95 s")
    for column in (*columns, "peak RSS MB", "outbox left", "fully linked"):
        table.add_column(column, justify="right")
    table.add_row(
        str(r["deals"]),
        str(r["cycles"]),
        f"{r['wall_s']:.1f}",
        f"{r['records_per_s']:.0f}",
        f"{r.get('engine_us_per_record', 0.0):.0f}",
        str(r["requests"]),
        str(r["ideal"]),
        f"{r['ratio']:.2f}",
        f"{r['latency_p50_s'] or 0:.1f}",
        f"{r['latency_p95_s'] or 0:.1f}",
        f"{r['peak_rss_mb']:.0f}",
        str(r["outbox_left"]),
        "yes" if r["fully_linked"] else "[red]no[/]",
    )
    return table


def recovery_table(r: dict[str, Any]) -> Table:
    title = (
        f"recovery from SIGKILL (N = {r['records']}, {r['latency_ms']:g} ms vendor latency, "
        f"claims of {r['claim_seconds']:g} s; target ≤ {r['target_s']:g} s)"
    )
    table = Table(title=title)
    for column in (
        "killed",
        "pushes it held",
        "held pushes done after s",
        "all done after s",
        "verify",
        "fully linked",
    ):
        table.add_column(column, justify="left" if column == "killed" else "right")
    worker, embedded = r["worker"], r["embedded"]
    rows = (
        ("a worker (another one running)", worker, worker["outbox_empty_s"]),
        ("embedded `run --once`, restarted", embedded, embedded["converged_s"]),
    )
    for name, part, done in rows:
        table.add_row(
            name,
            str(part["held_at_kill"]),
            f"{part['claimed_redone_s']:.1f}",
            f"{done:.1f}",
            "clean" if part["verify_clean"] else "[red]drift[/]",
            "yes" if part["fully_linked"] else "[red]no[/]",
        )
    return table


def cpu_table(costs: list[StageCost]) -> Table:
    table = Table(title="engine CPU per record, no I/O (median of 5 rounds)")
    for column in ("stage", "system", "records", "µs/record", "records/s on one core"):
        table.add_column(column, justify="left" if column in ("stage", "system") else "right")
    for c in costs:
        table.add_row(
            c.stage,
            c.system,
            str(c.records),
            f"{c.us_per_record:.1f}",
            f"{c.records_per_s:,.0f}",
        )
    return table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--scenario",
        choices=SCENARIOS,
        action="append",
        help="run only this scenario (repeatable; default: all)",
    )
    parser.add_argument(
        "--records",
        type=int,
        help="opportunities seeded in Ruddr for initial_load, noop_cycle, churn, noop_steady "
        "(default 1000; 100000 with --large)",
    )
    parser.add_argument(
        "--large",
        action="store_true",
        help=f"default N = {LARGE} for initial_load and dlt_compare (slow)",
    )
    parser.add_argument(
        "--huge",
        action="store_true",
        help="only the 1,000,000-deal run on PostgreSQL (bench/huge.py; --records sets N, "
        "--workers its Celery workers); by hand, hours",
    )
    parser.add_argument("--workers", type=int, default=0, help="--huge: Celery workers")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="latency every emulator adds to each answer in the main world (default 0)",
    )
    parser.add_argument(
        "--injected-latency-ms",
        type=float,
        default=200.0,
        help="latency of initial_load_latency and rate_limit (default 200)",
    )
    parser.add_argument(
        "--latency-records", type=int, default=100, help="N of initial_load_latency (100)"
    )
    parser.add_argument("--ratelimit-records", type=int, default=100, help="N of rate_limit (100)")
    parser.add_argument(
        "--dlt-records",
        type=int,
        help="N of dlt_compare (default 10000; 100000 with --large)",
    )
    parser.add_argument(
        "--recovery-records", type=int, default=100, help="N of recovery (100; < 2 min)"
    )
    parser.add_argument(
        "--scaleout-records", type=int, default=1000, help="Ruddr deals in scaleout (1000)"
    )
    parser.add_argument(
        "--scaleout-workers", default="1,2,4", help="worker counts of scaleout (1,2,4)"
    )
    parser.add_argument(
        "--scaleout-rounds", type=int, default=3, help="runs per worker count in scaleout (3)"
    )
    parser.add_argument(
        "--store",
        choices=STORES,
        default="sqlite",
        help="the store of the in-process worlds: a SQLite file, or a fresh PostgreSQL database "
        "on --pg-url's server, dropped at the end (default sqlite)",
    )
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help=f"--store postgresql: a database on the server to create the store's next to "
        f"(default {DEFAULT_PG_URL})",
    )
    parser.add_argument("--json", type=Path, default=Path("bench/results.json"), help="output file")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--log-level", default="WARNING", help="the engine's log level")
    return parser.parse_args(argv)


def plan_of(args: argparse.Namespace) -> Plan:
    return Plan(
        scenarios=tuple(args.scenario or SCENARIOS),
        records=args.records or (LARGE if args.large else 1000),
        latency_ms=args.latency_ms,
        injected_ms=args.injected_latency_ms,
        latency_records=args.latency_records,
        ratelimit_records=args.ratelimit_records,
        dlt_records=args.dlt_records or (LARGE if args.large else 10_000),
        recovery_records=args.recovery_records,
        scaleout_records=args.scaleout_records,
        scaleout_workers=tuple(int(w) for w in args.scaleout_workers.split(",")),
        scaleout_rounds=args.scaleout_rounds,
        seed=args.seed,
        store=args.store,
        pg_url=args.pg_url,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.huge:  # a run of its own: its processes, its database, its JSON
        from bench import huge

        deals = ["--deals", str(args.records)] if args.records else []
        return huge.main([*deals, "--workers", str(args.workers)])
    plan = plan_of(args)
    configure_logging(level=args.log_level)
    results = run(plan)
    tools = compare(plan.dlt_records, seed=plan.seed) if "dlt_compare" in plan.scenarios else []
    console = Console(width=max(Console().width, 180))
    if results:
        console.print(summary(results))
        console.print(per_system(results))
    if any(r.saturation for r in results):
        console.print(saturation_table(results))
    if tools:
        console.print(dlt_table(tools))
    oop = run_in_subprocess(plan.records, plan.seed) if "initial_load_oop" in plan.scenarios else {}
    if oop:
        console.print(oop_table(oop))
    cpu = engine_cpu(plan.records, seed=plan.seed) if "engine_cpu" in plan.scenarios else []
    if cpu:
        console.print(cpu_table(cpu))
    recovery: dict[str, Any] = {}
    if "recovery" in plan.scenarios:
        recovery = run_recovery(plan.recovery_records, plan.seed)
        console.print(recovery_table(recovery))
    scaleout: dict[str, Any] = {}
    if "scaleout" in plan.scenarios:
        scaleout = measure_scaleout(
            plan.scaleout_records, list(plan.scaleout_workers), 50.0, plan.scaleout_rounds
        )
        console.print(scaleout_table(scaleout))
    payload: dict[str, Any] = {
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        "plan": {
            **plan.__dict__,
            "scenarios": list(plan.scenarios),
            "pg_url": make_url(plan.pg_url).render_as_string(hide_password=True),
        },
        "results": [r.to_json() for r in results],
        "dlt_compare": [t.to_json() for t in tools],
        "engine_cpu": [c.to_json() for c in cpu],
        "initial_load_oop": oop,
        "recovery": recovery,
        "scaleout": scaleout,
    }
    args.json.write_text(json.dumps(payload, indent=2, default=str))
    console.print(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
