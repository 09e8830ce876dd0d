"""Emulators served over HTTP by a child process, so a bench's own process (and its CPU time,
its peak RSS) is crmsync's alone, and so the emulators' CPU can be told apart from ours.

The child builds its emulators, serves them (``sync.emulators.server.running``), prints one
JSON line ``{name: base_url}``, then answers each line it reads on stdin with one JSON line
(``answer``: what a bench's command means, e.g. request counts); the end of its input stops
it. :class:`EmulatorChild` is the parent's handle: the URLs, ``ask``, the child's CPU time
and peak RSS (Linux ``/proc``), ``close``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx

from bench.common import ENV_OF
from sync.emulators.base import Emulator

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def shipped(records: int, seed: int) -> dict[str, Emulator]:
    """The shipped config.yaml's emulators, Ruddr seeded with ``records`` deals, HubSpot's
    search index without lag (runs follow each other at once)."""
    from sync.emulators.ruddr import RuddrEmulator
    from sync.emulators.server import build_all

    # only the shipped config's vendors (an installed emulator it does not use has no
    # *_BASE_URL there)
    emulators = build_all(only=ENV_OF, seed=seed, seed_opportunities=0)
    emulators["ruddr"] = RuddrEmulator(seed=seed, seed_opportunities=records)
    if "hubspot" in emulators:
        emulators["hubspot"].index_lag = 0  # type: ignore[attr-defined]
    return emulators


def serve(emulators: Mapping[str, Emulator], answer: Callable[[str], object] | None = None) -> None:
    """Child: serve ``emulators`` until stdin closes; each line read is answered with
    ``answer(line)`` as one JSON line (``{}`` without ``answer``)."""
    from sync.emulators.server import running

    with running(emulators=emulators) as served:
        print(json.dumps({name: s.base_url for name, s in served.items()}), flush=True)
        for line in sys.stdin:
            print(json.dumps(answer(line.strip()) if answer else {}), flush=True)


class EmulatorChild:
    """The parent's handle on the emulators' child process started with ``argv``."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.proc = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        line = self._out.readline()
        if not line:
            self.proc.wait(timeout=60)
            raise RuntimeError(f"the emulators' child exited ({self.proc.returncode}) at start")
        self.urls: dict[str, str] = json.loads(line)

    @property
    def _out(self) -> IO[str]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def env(self) -> dict[str, str]:
        """The ``*_BASE_URL`` variables pointing the shipped config at the child."""
        return {f"{ENV_OF[name]}_BASE_URL": url for name, url in self.urls.items()}

    def ask(self, command: str) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self._out.readline())

    def cpu_s(self) -> float:
        return cpu_seconds(self.proc.pid)

    def peak_mb(self) -> float:
        return vm_hwm_mb(self.proc.pid) or 0.0

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> EmulatorChild:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def origin(base_url: str) -> str:
    """``scheme://host:port`` of an emulator's base URL: its control API is under
    ``/_emulator/`` there."""
    url = httpx.URL(base_url)
    return f"{url.scheme}://{url.host}:{url.port}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def vm_hwm_mb(pid: int) -> float | None:
    """The peak resident set of a live process (``VmHWM``), None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m bench.emulator_child",
        description="Serve the shipped config's emulators (Ruddr with --records deals) until "
        "stdin closes.",
    )
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    serve(shipped(args.records, args.seed))
    return 0


#: the parent's argv of a child serving :func:`shipped`
SHIPPED = (sys.executable, "-m", "bench.emulator_child")

if __name__ == "__main__":
    raise SystemExit(main())
