"""A Celery worker's warm shutdown, told to the tasks in flight (issue 25).

On SIGTERM Celery's main process stops taking tasks and waits for the running ones; its pool
children are not told. A drain that keeps claiming would keep the worker up for as long as
rows come due (it once ignored SIGTERM for minutes). So the main process announces its
shutdown in Redis (``announce``, on ``worker_shutting_down``), and a drain asks ``stopping``
before each claim: it then claims nothing more, gives back what it has not sent, and returns
once what is in flight has answered — seconds, not minutes.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

#: how long the announcement lives (a worker's shutdown is over long before)
ANNOUNCED_SECONDS = 600
#: a drain asks Redis at most this often
CHECK_EVERY = 1.0

_checked = (0.0, False)  # (when, answer) of the last look in this process


def key(prefix: str, pid: int) -> str:
    """The Redis key announcing that the worker process ``pid`` on this host is stopping."""
    return f"{prefix}:stopping:{socket.gethostname()}:{pid}"


def announce(client: Any, prefix: str) -> None:
    """This (main) process is shutting down: the tasks it or its pool children run stop."""
    client.set(key(prefix, os.getpid()), "1", ex=ANNOUNCED_SECONDS)


def stopping(client: Any, prefix: str) -> bool:
    """Is this process, or the worker whose pool child it is, shutting down? Asked at most
    every ``CHECK_EVERY`` seconds; a Redis that does not answer is no reason to stop."""
    global _checked
    now = time.monotonic()
    if now - _checked[0] < CHECK_EVERY:
        return _checked[1]
    try:
        answer = bool(client.exists(key(prefix, os.getpid()), key(prefix, os.getppid())))
    except Exception:  # a broker hiccup must not stop a drain
        answer = False
    _checked = (now, answer)
    return answer
