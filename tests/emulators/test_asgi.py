"""The in-process transport's event loop thread: closed deterministically, and a transport
dropped unclosed never blocks the thread the garbage collector happens to run in."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from sync.emulators.asgi import EmulatorTransport
from sync.emulators.ruddr import RuddrEmulator

#: a guard against a hang (not a timing assertion): generous on a busy machine
GUARD_SECONDS = 120
ROOT = Path(__file__).resolve().parents[2]


def _used_transport() -> EmulatorTransport:
    transport = RuddrEmulator(seed=1).transport()
    with httpx.Client(transport=transport, base_url="http://emu") as client:
        assert client.get("/_emulator/requests").status_code == 200
    return transport


def test_close_ends_the_loop_thread() -> None:
    """``close()`` stops the event loop and joins its thread; a second close does nothing."""
    transport = _used_transport()  # the client's exit closed it
    loop = transport._loop
    assert loop is None
    transport = RuddrEmulator(seed=1).transport()
    httpx.Client(transport=transport, base_url="http://emu").get("/_emulator/requests")
    loop = transport._loop
    assert loop is not None and loop._thread.is_alive()
    transport.close()
    transport.close()
    assert not loop._thread.is_alive()


@pytest.mark.timeout(GUARD_SECONDS)
def test_dropped_transport_collected_on_its_own_loop_thread_stops_it() -> None:
    """An unclosed transport in a reference cycle, collected by a GC pass that runs on its own
    event loop thread, has that loop stopped (it used to raise there and leak the thread)."""
    transport = RuddrEmulator(seed=1).transport()
    portal = transport._get_portal()
    loop = transport._loop
    assert loop is not None
    transport.cycle = transport  # type: ignore[attr-defined]  # only the cyclic GC frees it
    del transport
    portal.call(gc.collect)  # the pass runs on the loop thread and finalizes the transport
    loop._thread.join(GUARD_SECONDS)
    assert not loop._thread.is_alive()


def test_dropped_transport_collected_under_a_threading_lock_does_not_deadlock() -> None:
    """An unclosed transport collected while the collecting thread holds the lock a thread's
    exit takes (``threading.enumerate()`` holds it while allocating) does not deadlock: the
    finalizer only schedules the stop. Run in a child process, since a deadlock there would
    hold the lock for good; the child's timeout is a hang guard."""
    script = textwrap.dedent(
        """
        import gc, threading, httpx
        from sync.emulators.ruddr import RuddrEmulator
        transport = RuddrEmulator(seed=1).transport()
        httpx.Client(transport=transport, base_url="http://emu").get("/_emulator/requests")
        transport.cycle = transport
        del transport
        with threading._active_limbo_lock:
            gc.collect()
        print("collected")
        """
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=GUARD_SECONDS,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "collected" in done.stdout
