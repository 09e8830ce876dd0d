"""The drain loop: claim batches, prepare them, send through a bounded pool of threads and
apply the outcomes as they arrive (see the package docstring for the three steps).
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import structlog

from sync.engine import first_run
from sync.engine.bindings import push_blocked
from sync.engine.context import Counts, Engine
from sync.engine.push.apply import _release, apply_results
from sync.engine.push.prepare import _Job, _Result, claim, prepare
from sync.engine.push.send import send_many
from sync.store import cursors
from sync.store.db import supports_threads

log = structlog.get_logger("crmsync.push")
#: outcomes are applied together once this many arrived, or the oldest waited ``FLUSH_SECONDS``
#: (fewer commits; a record's journal entry is late by at most that)
APPLY_GROUP = 32
FLUSH_SECONDS = 0.05


def initial_capture_done(engine: Engine) -> bool:
    """Creates wait until every system has been read once, so a deal that exists in a system
    not yet read is matched (e.g. by Salesforce id) instead of duplicated."""
    with engine.read_session() as session:
        polled = cursors.polled_systems(session)
    return polled >= set(engine.systems)


def drain(
    engine: Engine,
    system: str,
    *,
    batch: int = 50,
    run_id: str | None = None,
    max_rows: int | None = None,
    concurrency: int | None = None,
) -> Counts:
    """Push every due row of one system's outbox, up to ``concurrency`` (default: the system's
    ``concurrency`` setting) vendor calls at a time. Returns counts (pushed, created, …).
    Nothing is pushed to a held system (``sync.engine.bindings.push_blocked``)."""
    if (blocked := push_blocked(engine, system)) is not None:
        log.info("drain_held", system=system, reason=blocked)
        return Counts()
    engine.refs.prime()
    workers = concurrency or engine.config.systems[system].concurrency
    if not supports_threads(engine.db):
        workers = 1  # one shared connection: sessions on two threads would share a transaction
    # creates wait for every system's first read, then for the first run's match (first_run)
    creates = initial_capture_done(engine) and first_run.creates_allowed(engine)
    # a vendor that writes in batches: claim at least a full batch, so one request carries it
    batch = max(batch, engine.connector(system).batch_size)
    drainer = _Drainer(engine, system, run_id, workers, creates)
    try:
        if workers == 1:
            return drainer.run_inline(batch, max_rows)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"push-{system}") as pool:
            return drainer.run(pool, batch, max_rows)
    finally:
        engine.claims.drop(drainer.ids)  # whatever this drain still held is settled or let go


class _Drainer:
    """One drain of one system: claims, prepares, hands sends to the pool, applies outcomes."""

    def __init__(
        self, engine: Engine, system: str, run_id: str | None, workers: int, creates: bool
    ) -> None:
        self.engine, self.system, self.run_id = engine, system, run_id
        self.workers, self.creates = workers, creates
        self.counts = Counts()
        self.claimed = 0
        self.ids: list[int] = []

    def _claim(self, batch: int, max_rows: int | None) -> list[_Job] | None:
        """The next batch, prepared; None when nothing more is due (or ``max_rows`` is met)."""
        limit = batch if max_rows is None else min(batch, max_rows - self.claimed)
        if limit <= 0:
            return None
        ids = claim(self.engine, self.system, limit, creates=self.creates)
        if not ids:
            return None
        self.claimed += len(ids)
        self.ids += ids
        jobs = prepare(self.engine, self.system, ids, self.run_id)
        self.engine.claims.drop(set(ids) - {job.row_id for job in jobs})  # no longer ours
        return jobs

    def run_inline(self, batch: int, max_rows: int | None) -> Counts:
        while (jobs := self._claim(batch, max_rows)) is not None:
            apply_results(self.engine, send_many(self.engine, jobs, self.run_id), self.counts)
        return self.counts

    def run(self, pool: ThreadPoolExecutor, batch: int, max_rows: int | None) -> Counts:
        inflight: dict[Future[list[_Result]], list[_Job]] = {}
        size = self.engine.connector(self.system).batch_size
        ready: list[_Result] = []
        first_ready = 0.0
        exhausted = False
        try:
            while True:
                # Keep the pool fed: claim the next batch while the last one is still sending.
                # Rows that need no call (unchanged) are applied a group at a time too.
                while not exhausted and len(inflight) <= self.workers and len(ready) < APPLY_GROUP:
                    jobs = self._claim(batch, max_rows)
                    if jobs is None:
                        exhausted = True
                        break
                    sendable = []
                    for job in jobs:
                        if job.kind == "done" or job.error is not None:
                            ready.append(_Result(job, error=job.error))
                        else:
                            sendable.append(job)
                    # one request per job, or per batch where the vendor writes in batches
                    for start in range(0, len(sendable), size):
                        chunk = sendable[start : start + size]
                        future = pool.submit(send_many, self.engine, chunk, self.run_id)
                        inflight[future] = chunk
                    if ready and not first_ready:
                        first_ready = time.monotonic()
                if inflight:
                    # With outcomes waiting, wake up in time to apply them.
                    left = first_ready + FLUSH_SECONDS - time.monotonic()
                    timeout = max(0.0, left) if ready else None
                    finished, _ = wait(inflight, timeout=timeout, return_when=FIRST_COMPLETED)
                    if finished and not ready:
                        first_ready = time.monotonic()
                    for future in finished:
                        ready += future.result()  # raises a bug in send: see _abandon
                        del inflight[future]
                due = time.monotonic() - first_ready >= FLUSH_SECONDS
                if ready and (not inflight or len(ready) >= APPLY_GROUP or due):
                    apply_results(self.engine, ready, self.counts)
                    ready, first_ready = [], 0.0
                if exhausted and not inflight and not ready:
                    return self.counts
        except BaseException:
            self._abandon(inflight, ready)
            raise

    def _abandon(
        self, inflight: dict[Future[list[_Result]], list[_Job]], ready: list[_Result]
    ) -> None:
        """The drain is failing: record what the vendors already did, put the rest back
        (the rows not sent, and those whose send failed unexpectedly, wait for a retry)."""
        unsent = [
            job.row_id for future, jobs in inflight.items() if future.cancel() for job in jobs
        ]
        done, _ = wait([future for future in inflight if not future.cancelled()])
        results = ready + [r for f in done if f.exception() is None for r in f.result()]
        failed = [j.row_id for f in done if f.exception() is not None for j in inflight[f]]
        with contextlib.suppress(Exception):
            apply_results(self.engine, results, self.counts)
        with contextlib.suppress(Exception):
            _release(self.engine, unsent + failed)
