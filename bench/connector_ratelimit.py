"""How close to a vendor's rate limit does the connector run, and how often does it trip it?

Runs the Ruddr connector against the Ruddr emulator with its rate limiting on (20 req/s by
default) for ``--duration`` seconds: ``--workers`` threads scan the listing over and over, all
sharing one client-side ``TokenBucket`` sized like the limit, the way one process's workers
would. Prints the achieved rate of answered (2xx) requests as a share of the allowed rate and
the number of 429s the emulator sent. Targets: >= 90 % of the allowed rate, a handful of 429s
at most.

    .venv/bin/python bench/connector_ratelimit.py                 # 30 s, in-process emulator
    .venv/bin/python bench/connector_ratelimit.py --duration 10 --serve   # real HTTP (uvicorn)
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import uvicorn

from sync.config import RateLimitConfig, SystemConfig
from sync.connectors import build_connector
from sync.connectors.http import RetryPolicy
from sync.connectors.ratelimit import TokenBucket
from sync.emulators.ruddr import DEFAULT_TOKEN, RuddrEmulator
from sync.logging import configure_logging


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds to run (30)")
    parser.add_argument("--rate", type=float, default=20.0, help="emulated limit, req/s (20)")
    parser.add_argument(
        "--server-burst", type=float, default=20.0, help="emulator bucket capacity (20)"
    )
    parser.add_argument(
        "--client-burst", type=float, default=5.0, help="client bucket capacity (5)"
    )
    parser.add_argument("--workers", type=int, default=4, help="threads sharing the limiter (4)")
    parser.add_argument("--records", type=int, default=1000, help="seeded opportunities (1000)")
    parser.add_argument("--serve", action="store_true", help="serve over HTTP with uvicorn")
    return parser.parse_args()


@contextlib.contextmanager
def served(
    emulator: RuddrEmulator, serve: bool
) -> Iterator[tuple[str, httpx.BaseTransport | None]]:
    """The emulator's base URL and transport: in-process, or uvicorn on a free local port."""
    if not serve:
        transport = emulator.transport()
        yield "http://ruddr.local/api/workspace", transport
        transport.close()
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(emulator.app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}/api/workspace", None
    server.should_exit = True
    thread.join()


def worker(
    cfg: SystemConfig, transport: httpx.BaseTransport | None, limiter: TokenBucket, deadline: float
) -> None:
    connector = build_connector(
        "ruddr", cfg, transport=transport, limiter=limiter, retry=RetryPolicy(timeout=30.0)
    )
    try:
        while time.monotonic() < deadline:
            for _page in connector.scan():
                if time.monotonic() >= deadline:
                    break
    finally:
        if transport is None:
            connector.close()


def main() -> None:
    args = parse_args()
    configure_logging(level="WARNING")
    emulator = RuddrEmulator(seed=1, seed_opportunities=args.records)
    emulator.rate_limit.enabled = True
    emulator.rate_limit.rate = args.rate
    emulator.rate_limit.burst = args.server_burst
    limiter = TokenBucket()
    limiter.configure("ruddr", args.rate, args.client_burst)
    with served(emulator, args.serve) as (base_url, transport):
        cfg = SystemConfig(
            type="ruddr",
            base_url=base_url,
            credentials={"token": DEFAULT_TOKEN},
            rate_limit=RateLimitConfig(rate=args.rate, burst=args.client_burst),
        )
        started = time.monotonic()
        deadline = started + args.duration
        threads = [
            threading.Thread(target=worker, args=(cfg, transport, limiter, deadline))
            for _ in range(args.workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    report(emulator, args, elapsed)


def report(emulator: RuddrEmulator, args: argparse.Namespace, elapsed: float) -> None:
    by_status = emulator.request_counts()["by_status"]
    answered = sum(n for status, n in by_status.items() if status.startswith("2"))
    limited = by_status.get("429", 0)
    achieved = answered / elapsed
    mode = "uvicorn" if args.serve else "in-process"
    print(
        f"ruddr emulator ({mode}), limit {args.rate:g} req/s (burst {args.server_burst:g}), "
        f"client bucket {args.rate:g} req/s burst {args.client_burst:g}, "
        f"{args.workers} workers, {elapsed:.1f} s"
    )
    print(f"answered requests: {answered}  ({achieved:.2f} req/s)")
    allowed = args.rate * elapsed + args.server_burst  # the most the emulator could answer
    print(
        f"share of allowed rate: {achieved / args.rate:.1%} of {args.rate:g} req/s; "
        f"{answered / allowed:.1%} of the {allowed:.0f} requests the limit allowed "
        f"(rate x time + burst)   (target >= 90 %)"
    )
    print(f"429 responses: {limited}   (target: a handful)")
    print(f"all statuses: {dict(sorted(by_status.items()))}")


if __name__ == "__main__":
    main()
