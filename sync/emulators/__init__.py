"""Local emulators of the vendor APIs crmsync syncs (Ruddr, Close, ParsaLink, Truto).

Used by tests, benchmarks and ``crmsync emulate`` only — product code never imports them.
"""

from __future__ import annotations

from sync.emulators.base import Emulator, EmulatorTransport
from sync.emulators.server import build_all, running

__all__ = ["Emulator", "EmulatorTransport", "build_all", "running"]
