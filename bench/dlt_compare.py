"""Capture side by side with dlt: one Close emulator listing, ingested by each tool (issue 7).

The Close emulator is served over real HTTP (dlt talks through ``requests``), seeded with N
opportunities. Each side then runs in a subprocess of its own, so its peak RSS
(``VmHWM``, bench/memory.py) is its own:

- ``crmsync``: the engine's capture of the ``close`` system (shipped config.yaml reduced to
  that one system, so no pushes are queued for others, and without its client-side rate
  limit, since dlt has none and the emulator enforces none) into a fresh SQLite store;
- ``dlt``: the ``rest_api`` source on ``GET /opportunity/`` (offset paginator on
  ``_skip``/``_limit`` = 100 until ``has_more`` is false, incremental on ``date_updated``
  sent as ``date_updated__gte``, ``_order_by=date_updated``), merged on ``id`` into a fresh
  local duckdb file.

Each child times only the ingest (imports and setup excluded) and reports what it stored.
Run one side by hand: ``python -m bench.dlt_compare dlt --base-url URL --out result.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.memory import peak_rss_mb, rss_now_mb

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("crmsync", "dlt")
CLOSE_KEY = "close-test-key"  # sync.emulators.close API_KEY: Basic auth, key as user name
PAGE = 100
CHILD_TIMEOUT_S = 3600


@dataclass
class ToolResult:
    tool: str
    records: int  # opportunities the tool's store holds afterwards
    seconds: float  # the ingest alone
    peak_rss_mb: float  # the child's own peak (VmHWM)
    start_rss_mb: float  # the child's RSS after imports, before the ingest
    requests: int  # requests the emulator answered during this side
    emulator_s: float  # time inside the emulator's handlers during this side

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "records_per_s": self.records_per_s}


# -- the two sides (run in a child process) -------------------------------------------------
def ingest_crmsync(base_url: str, workdir: Path) -> tuple[int, float, float]:
    """crmsync's capture of Close into its store: (records stored, seconds, start RSS)."""
    from sqlmodel import func, select

    from sync.config import load_config
    from sync.engine.capture import capture
    from sync.engine.context import Engine
    from sync.logging import configure_logging
    from sync.store.db import make_engine, upgrade
    from sync.store.models import Link

    configure_logging(level="WARNING")
    config = load_config(ROOT / "config.yaml", env={"CLOSE_BASE_URL": base_url})
    # unthrottled, like dlt: config.yaml's Close limit (20 req/s, burst 20) alone would hold
    # 10,000 records (101 pages) to 4 s, which measures the limit and not the capture
    close = config.systems["close"].model_copy(update={"rate_limit": None})
    config = config.model_copy(
        update={"systems": {"close": close}, "mapping": {"close": config.mapping["close"]}}
    )
    url = f"sqlite:///{workdir / 'crmsync.db'}"
    upgrade(url)
    engine = Engine.from_config(config, make_engine(url))
    start_rss = rss_now_mb()
    started = time.perf_counter()
    capture(engine, "close")
    seconds = time.perf_counter() - started
    with engine.session() as session:
        stored = int(
            session.exec(select(func.count()).select_from(Link).where(Link.system == "close")).one()
        )
    engine.close()
    return stored, seconds, start_rss


def dlt_config(base_url: str) -> dict[str, Any]:
    """The ``rest_api`` source configuration for Close's opportunity listing."""
    return {
        "client": {
            "base_url": base_url.rstrip("/") + "/",
            "auth": {"type": "http_basic", "username": CLOSE_KEY, "password": ""},
        },
        "resources": [
            {
                "name": "opportunity",
                "primary_key": "id",
                "write_disposition": "merge",  # an upsert, like crmsync's store
                "endpoint": {
                    "path": "opportunity/",
                    "params": {"_order_by": "date_updated"},
                    "data_selector": "data",
                    "paginator": {
                        "type": "offset",
                        "limit": PAGE,
                        "offset_param": "_skip",
                        "limit_param": "_limit",
                        "total_path": None,
                        "has_more_path": "has_more",
                    },
                    "incremental": {
                        "start_param": "date_updated__gte",
                        "cursor_path": "date_updated",
                        "initial_value": "1970-01-01T00:00:00+00:00",
                    },
                },
            }
        ],
    }


def ingest_dlt(base_url: str, workdir: Path) -> tuple[int, float, float]:
    """dlt's rest_api source into a local duckdb: (records stored, seconds, start RSS)."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")  # schema hints are not news here
    import dlt
    from dlt.sources.rest_api import rest_api_source

    pipeline = dlt.pipeline(
        pipeline_name="crmsync_bench_close",
        destination=dlt.destinations.duckdb(str(workdir / "dlt.duckdb")),
        dataset_name="close_api",  # not "close": duckdb names the catalog after the file
        pipelines_dir=str(workdir / "pipelines"),
    )
    source = rest_api_source(dlt_config(base_url))  # type: ignore[arg-type]
    start_rss = rss_now_mb()
    started = time.perf_counter()
    pipeline.run(source)
    seconds = time.perf_counter() - started
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT count(*) FROM opportunity") or [[0]]
        stored = int(rows[0][0])
    return stored, seconds, start_rss


def child_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dlt_compare")
    parser.add_argument("tool", choices=TOOLS)
    parser.add_argument("--base-url", required=True, help="the Close emulator's /api/v1 URL")
    parser.add_argument("--out", type=Path, required=True, help="where to write the figures")
    args = parser.parse_args(argv)
    ingest = ingest_crmsync if args.tool == "crmsync" else ingest_dlt
    with tempfile.TemporaryDirectory(prefix=f"bench-{args.tool}-") as tmp:
        stored, seconds, start_rss = ingest(args.base_url, Path(tmp))
    figures = {
        "records": stored,
        "seconds": seconds,
        "start_rss_mb": start_rss,
        "peak_rss_mb": peak_rss_mb(),
    }
    args.out.write_text(json.dumps(figures))
    return 0


# -- the parent: serve Close, run each side --------------------------------------------------
def run_side(tool: str, base_url: str, workdir: Path) -> dict[str, Any]:
    out = workdir / f"{tool}.json"
    subprocess.run(
        [sys.executable, "-m", "bench.dlt_compare", tool, "--base-url", base_url, "--out", out],
        cwd=ROOT,
        check=True,
        timeout=CHILD_TIMEOUT_S,
    )
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def compare(records: int, seed: int = 7) -> list[ToolResult]:
    """Serve a Close emulator holding ``records`` opportunities; ingest it with each tool."""
    from sync.emulators.close import CloseEmulator
    from sync.emulators.server import running

    emulator = CloseEmulator(seed=seed, seed_opportunities=records)
    results = []
    with (
        running(emulators={"close": emulator}) as served,
        tempfile.TemporaryDirectory(prefix="bench-dlt-") as tmp,
    ):
        base_url = served["close"].base_url
        for tool in TOOLS:
            emulator.requests.clear()
            figures = run_side(tool, base_url, Path(tmp))
            log = list(emulator.requests)
            results.append(
                ToolResult(
                    tool=tool,
                    requests=len(log),
                    emulator_s=sum(float(r["duration_ms"]) for r in log) / 1000,
                    **figures,
                )
            )
    return results


if __name__ == "__main__":
    raise SystemExit(child_main())
