"""Serve the vendor emulators over real HTTP: ``crmsync emulate`` and :func:`running`.

One process, one asyncio loop, one ``uvicorn.Server`` per emulator, each on its own port:

========== ============= ======================= ==========================================
emulator   port          base path               default credentials
========== ============= ======================= ==========================================
ruddr      port-base + 1 ``/api/workspace``      ``Authorization: Bearer ruddr-test-token``
close      port-base + 2 ``/api/v1``             Basic, API key ``close-test-key``, no password
parsalink  port-base + 3 ``/api``                ``Authorization: Bearer pk_test_parsalink``
truto      port-base + 4 ``/unified/crm``        ``Authorization: Bearer truto-test-token``
salesforce port-base + 5 (host root) ``/services`` ``Authorization: Bearer sf-test-token``, or
                                                 OAuth client credentials (see the package)
hubspot    port-base + 6 (host root)             ``Authorization: Bearer hubspot-test-token``
========== ============= ======================= ==================================="""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from sync.emulators.base import ABORT_STATE, Emulator

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT_BASE = 8710
STARTUP_TIMEOUT = 10.0


@dataclass(frozen=True)
class EmulatorSpec:
    """Where one emulator lives and how a client signs in to it."""

    name: str
    module: str
    class_name: str
    port_offset: int
    scheme: str  # "bearer" or "basic" (key as user name, empty password)
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header a client sends with the default credentials."""
        if self.scheme == "basic":
            token = base64.b64encode(f"{self.secret}:".encode()).decode()
            return {"Authorization": f"Basic {token}"}
        return {"Authorization": f"Bearer {self.secret}"}

    @property
    def credentials(self) -> str:
        if self.scheme == "basic":
            return f"API key {self.secret} (Basic auth, empty password)"
        return f"Bearer {self.secret}"


SPECS: dict[str, EmulatorSpec] = {
    spec.name: spec
    for spec in (
        EmulatorSpec(
            "ruddr", "sync.emulators.ruddr", "RuddrEmulator", 1, "bearer", "ruddr-test-token"
        ),
        EmulatorSpec(
            "close", "sync.emulators.close", "CloseEmulator", 2, "basic", "close-test-key"
        ),
        EmulatorSpec(
            "parsalink",
            "sync.emulators.parsalink",
            "ParsaLinkEmulator",
            3,
            "bearer",
            "pk_test_parsalink",
        ),
        EmulatorSpec(
            "truto", "sync.emulators.truto", "TrutoEmulator", 4, "bearer", "truto-test-token"
        ),
        EmulatorSpec(
            "salesforce",
            "sync.emulators.salesforce",
            "SalesforceEmulator",
            5,
            "bearer",
            "sf-test-token",
        ),
        EmulatorSpec(
            "hubspot",
            "sync.emulators.hubspot",
            "HubSpotEmulator",
            6,
            "bearer",
            "hubspot-test-token",
        ),
    )
}


def emulator_class(name: str) -> type[Emulator]:
    """The emulator class of ``name``; ``ImportError`` when its module is not installed."""
    spec = SPECS[name]
    module = importlib.import_module(spec.module)
    cls: type[Emulator] = getattr(module, spec.class_name)
    return cls


def available() -> list[str]:
    """The emulators whose modules import, in port order."""
    names = []
    for name in SPECS:
        try:
            emulator_class(name)
        except ImportError:
            continue
        names.append(name)
    return names


def _select(only: Iterable[str] | str | None) -> list[str]:
    if only is None:
        return available()
    names = [n.strip() for n in (only.split(",") if isinstance(only, str) else only) if n.strip()]
    unknown = sorted(set(names) - set(SPECS))
    if unknown:
        raise ValueError(f"unknown emulator {', '.join(unknown)}; choose from {', '.join(SPECS)}")
    return [name for name in SPECS if name in names]


def build_all(
    *,
    only: Iterable[str] | str | None = None,
    seed: int = 1,
    seed_opportunities: int = 0,
    rate_limited: bool = False,
) -> dict[str, Emulator]:
    """Build the emulators (all installed ones, or those in ``only``), keyed by name.

    Naming an emulator in ``only`` whose module is missing raises ``ImportError``.
    """
    return {
        name: emulator_class(name)(
            seed=seed, seed_opportunities=seed_opportunities, rate_limited=rate_limited
        )
        for name in _select(only)
    }


@dataclass
class Served:
    """One emulator being served: its object, URLs and default credentials."""

    name: str
    emulator: Emulator
    root_url: str  # scheme://host:port — the control API is under root_url + "/_emulator/"
    headers: dict[str, str] = field(default_factory=dict)
    credentials: str = ""

    @property
    def base_url(self) -> str:
        """The vendor's base URL, e.g. ``http://127.0.0.1:8711/api/workspace``."""
        return self.root_url + self.emulator.prefix

    @property
    def port(self) -> int:
        return int(self.root_url.rsplit(":", 1)[1])


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to us: one handler stops every server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        return None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not left 0: asyncio turns Nagle off only on sockets whose ``proto``
    # says TCP, and an accepted connection inherits ours. With Nagle on, every answer on a
    # kept-alive connection lost ~40 ms: the body waited for the client's delayed ACK of the
    # headers (uvicorn writes them apart), which doubled a 50 ms injected latency.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _prepare(
    emulators: Mapping[str, Emulator], host: str, port_base: int | None
) -> list[tuple[Served, _Server, socket.socket]]:
    """Bind every port first (so a taken port fails before anything serves), then configure."""
    prepared: list[tuple[Served, _Server, socket.socket]] = []
    try:
        for name, emulator in emulators.items():
            spec = SPECS[name]
            port = 0 if port_base is None else port_base + spec.port_offset
            sock = _bind(host, port)
            prepared.append(
                (
                    Served(
                        name,
                        emulator,
                        _url(host, sock.getsockname()[1]),
                        spec.headers,
                        spec.credentials,
                    ),
                    _Server(_config(emulator, host, sock.getsockname()[1])),
                    sock,
                )
            )
    except OSError:
        for _, _, sock in prepared:
            sock.close()
        raise
    return prepared


class _AbortableProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol, handing each request a way to abort its connection
    (``scope["state"][ABORT_STATE]``): the emulator's drop faults answer nothing at all,
    where an exception in the app would make uvicorn answer 500."""

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        state: dict[str, Any] = self.app_state  # type: ignore[has-type]
        self.app_state = {**state, ABORT_STATE: transport.abort}


def _config(emulator: Emulator, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        emulator.app,
        host=host,
        port=port,
        http=_AbortableProtocol,
        lifespan="off",
        log_level="warning",
        date_header=False,  # the emulator sends its own Date, from its (advanceable) clock
        access_log=False,
        timeout_graceful_shutdown=1,
    )


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def _serve_together(prepared: list[tuple[Served, _Server, socket.socket]]) -> None:
    await asyncio.gather(*(server.serve(sockets=[sock]) for _, server, sock in prepared))


def _stop(prepared: list[tuple[Served, _Server, socket.socket]]) -> None:
    for _, server, _ in prepared:
        server.should_exit = True


def serve(
    only: Iterable[str] | str | None = None,
    host: str = DEFAULT_HOST,
    port_base: int = DEFAULT_PORT_BASE,
    seed: int = 1,
    seed_opportunities: int = 0,
    rate_limited: bool = False,
) -> None:
    """Serve the emulators until SIGINT or SIGTERM, printing each base URL and credentials."""
    emulators = build_all(
        only=only, seed=seed, seed_opportunities=seed_opportunities, rate_limited=rate_limited
    )
    prepared = _prepare(emulators, host, port_base)
    _print_table([served for served, _, _ in prepared], seed, seed_opportunities)
    asyncio.run(_serve_until_signalled(prepared))


async def _serve_until_signalled(prepared: list[tuple[Served, _Server, socket.socket]]) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, _stop, prepared)
    try:
        await _serve_together(prepared)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _print_table(served: list[Served], seed: int, seed_opportunities: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"crmsync emulators (seed {seed}, {seed_opportunities} seeded deals)")
    table.add_column("emulator", no_wrap=True)
    table.add_column("base URL", no_wrap=True)  # the URLs are what this prints for: never cut
    table.add_column("credentials")
    table.add_column("control API", no_wrap=True)
    for item in served:
        table.add_row(item.name, item.base_url, item.credentials, f"{item.root_url}/_emulator/")
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 10_000  # a pipe or a file has no width: every line whole
    console.print(table)
    console.print("Press Ctrl+C to stop.")


@contextlib.contextmanager
def running(
    *,
    only: Iterable[str] | str | None = None,
    host: str = DEFAULT_HOST,
    port_base: int | None = None,
    seed: int = 1,
    seed_opportunities: int = 0,
    rate_limited: bool = False,
    emulators: Mapping[str, Emulator] | None = None,
) -> Iterator[dict[str, Served]]:
    """Serve emulators over HTTP from a background thread; yields name -> :class:`Served`.

    Ports are free ones unless ``port_base`` is given. Pass ``emulators`` (e.g. from
    :func:`build_all`) to serve objects the caller already holds. The servers stop on exit.
    """
    if emulators is None:
        emulators = build_all(
            only=only, seed=seed, seed_opportunities=seed_opportunities, rate_limited=rate_limited
        )
    prepared = _prepare(emulators, host, port_base)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(_serve_together(prepared))
        except BaseException as exc:  # surfaced to the caller below
            failure.append(exc)

    thread = threading.Thread(target=run, name="crmsync-emulators", daemon=True)
    thread.start()
    try:
        _wait_started(prepared, thread, failure)
        yield {served.name: served for served, _, _ in prepared}
    finally:
        _stop(prepared)
        thread.join(timeout=STARTUP_TIMEOUT)
        for _, _, sock in prepared:
            sock.close()


def _wait_started(
    prepared: list[tuple[Served, _Server, socket.socket]],
    thread: threading.Thread,
    failure: list[BaseException],
) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if all(server.started for _, server, _ in prepared):
            return
        if failure or not thread.is_alive():
            break
        time.sleep(0.01)
    raise RuntimeError(f"emulators did not start: {failure[0] if failure else 'timeout'}")
