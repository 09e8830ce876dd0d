"""A wall-clock stack sampler for a bench's child process (py-spy is not installed here).

``python -m bench.sampler OUT -- -m MODULE ARGS…`` runs ``python -m MODULE ARGS…`` in this
process while a daemon thread records, every ``SAMPLE_S``, the stack of every thread
(``sys._current_frames``); at exit it writes the samples as collapsed stacks (one line per
distinct stack: ``thread;frame;frame… count``, the flame-graph format) to OUT. Wall clock, not
CPU: a thread waiting on a socket or on the GIL is sampled where it waits, which is what tells
whether a worker is I/O bound. ``bench.scaleout --profile DIR`` starts its workers this way.
"""

from __future__ import annotations

import atexit
import os
import re
import runpy
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType

SAMPLE_S = 0.005
ROOT = Path(__file__).resolve().parents[1]
#: pool threads are numbered (``push-close_3``): one name per pool
_NUMBERED = re.compile(r"_\d+$")


def _where(filename: str) -> str:
    """``sync/engine/push/drain.py`` → ``sync.engine.push.drain``; a library's module from its
    package down (``sqlalchemy.orm.session``); else the file's stem."""
    for marker in ("site-packages/", "/lib/python3", str(ROOT) + "/"):
        if marker in filename:
            tail = filename.rsplit(marker, 1)[1]
            tail = tail.split("/", 1)[1] if marker == "/lib/python3" else tail
            return tail.removesuffix(".py").replace("/", ".")
    return Path(filename).stem


def _stack(frame: FrameType | None) -> str:
    names = []
    while frame is not None:
        names.append(f"{_where(frame.f_code.co_filename)}:{frame.f_code.co_name}")
        frame = frame.f_back
    return ";".join(reversed(names))


def report(path: Path, thread: str, within: str, top: int = 25) -> list[tuple[str, float]]:
    """Of the samples of threads named ``thread``: the share spent in each innermost frame
    whose module starts with ``within`` (``sync.``: where in crmsync the time went), and in
    each leaf frame (what it was doing there)."""
    inner: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        frames = stack.split(";")
        if frames[0] != thread:
            continue
        total += int(count)
        ours = [f for f in frames[1:] if f.startswith(within)]
        inner[f"{ours[-1] if ours else '-'} > {frames[-1]}"] += int(count)
    return [(where, n / max(total, 1)) for where, n in inner.most_common(top)]


def sample(stop: threading.Event) -> Counter[str]:
    """Sample every thread but this one until ``stop`` is set."""
    counts: Counter[str] = Counter()
    me = threading.get_ident()
    while not stop.wait(SAMPLE_S):
        names = {t.ident: _NUMBERED.sub("", t.name) for t in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            if ident != me:
                counts[f"{names.get(ident, 'thread')};{_stack(frame)}"] += 1
    return counts


def cpu_profiles(out: Path) -> None:
    """``SAMPLER_CPU=1``: instead of sampling, run cProfile on every thread with each thread's
    own CPU clock (``time.thread_time``), merged at exit into ``OUT.prof`` (pstats): where
    the CPU went, blind to waits. Slows the process down: for shares, not rates."""
    import cProfile
    import pstats

    profiles: list[cProfile.Profile] = []

    def start(*_: object) -> None:
        sys.setprofile(None)
        profile = cProfile.Profile(time.thread_time)
        profiles.append(profile)
        profile.enable()

    def dump() -> None:
        for profile in profiles:
            profile.disable()
        stats = pstats.Stats(*profiles) if profiles else None
        if stats is not None:
            stats.dump_stats(str(out.with_suffix(".prof")))

    threading.setprofile(start)
    atexit.register(dump)
    start()


def main() -> None:
    if sys.argv[1] == "--report":  # --report FILE THREAD [WITHIN]
        path, thread, within = Path(sys.argv[2]), sys.argv[3], (sys.argv[4:] or ["sync."])[0]
        for where, share in report(path, thread, within):
            print(f"{share:6.1%}  {where}")
        return
    out, rest = Path(sys.argv[1]), sys.argv[sys.argv.index("--") + 2 :]  # after "-- -m"
    if os.environ.get("SAMPLER_CPU"):
        cpu_profiles(out)
        sys.argv = [rest[0], *rest[1:]]
        runpy.run_module(rest[0], run_name="__main__", alter_sys=True)
        return
    stop = threading.Event()
    found: list[Counter[str]] = []
    thread = threading.Thread(
        target=lambda: found.append(sample(stop)), name="sampler", daemon=True
    )

    def dump() -> None:
        stop.set()
        thread.join(timeout=5)
        if found:
            out.write_text("".join(f"{stack} {n}\n" for stack, n in found[0].most_common()))

    atexit.register(dump)
    thread.start()
    sys.argv = [rest[0], *rest[1:]]
    started = time.monotonic()
    try:
        runpy.run_module(rest[0], run_name="__main__", alter_sys=True)
    finally:
        print(f"sampled {time.monotonic() - started:.1f}s into {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
