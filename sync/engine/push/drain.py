"""The drain loop: claim batches, prepare them, send through a bounded pool of threads and
apply the outcomes as they arrive (see the package docstring for the three steps).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from queue import Empty, SimpleQueue

import structlog

from sync.config.models import SystemConfig
from sync.engine import first_run
from sync.engine.bindings import push_blocked
from sync.engine.context import Counts, Engine
from sync.engine.push.apply import _release, _release_unsent, apply_results
from sync.engine.push.prepare import _Job, _Result, claim, prepare
from sync.engine.push.recovery import Lookups
from sync.engine.push.send import batchable, send, send_many
from sync.logging import carried
from sync.store import cursors
from sync.store.db import supports_threads

log = structlog.get_logger("crmsync.push")
#: outcomes are applied together once this many arrived, or the oldest waited ``FLUSH_SECONDS``
#: (fewer commits; a record's journal entry is late by at most that)
APPLY_GROUP = 128
FLUSH_SECONDS = 0.2


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
    batch: int = 200,
    run_id: str | None = None,
    max_rows: int | None = None,
    concurrency: int | None = None,
    until: float | None = None,
    stop: Callable[[], bool] | None = None,
    spread: Callable[[], object] | None = None,
) -> Counts:
    """Push every due row of one system's outbox, up to ``concurrency`` (default: the system's
    ``concurrency`` setting) vendor calls at a time. Returns counts (pushed, created, …).
    Nothing is pushed to a held system (``sync.engine.bindings.push_blocked``).

    A bounded slice: past ``until`` (``time.monotonic()``), or once ``stop()`` says so (a
    worker shutting down), no more rows are claimed, the rows claimed but not yet sent are
    given back, and the drain returns when what is in flight has answered; ``counts["sliced"]``
    then says rows may remain (the caller queues the next slice).

    ``spread`` is called once, the first time a claim comes back full (more rows are likely
    due than this drain holds): the distributed runtime queues another drain of the system
    there, which an idle worker takes and claims beside this one (``SKIP LOCKED``), and which
    spreads again while its claims come back full — so a backlog spreads over every idle
    worker. The system's rate limit is shared by every drain (Redis), ``concurrency`` is per
    drain."""
    if (blocked := push_blocked(engine, system)) is not None:
        log.info("drain_held", system=system, reason=blocked)
        return Counts()
    engine.refs.prime()
    workers = concurrency or engine.config.systems[system].concurrency
    if not supports_threads(engine.db):
        workers = 1  # one shared connection: sessions on two threads would share a transaction
    # creates wait for every system's first read, then for the first run's match (first_run);
    # on a fresh store nothing at all leaves before that match is approved
    creates = initial_capture_done(engine) and first_run.creates_allowed(engine)
    if not first_run.writes_allowed(engine):
        log.info("drain_waits_for_first_run", system=system)
        return Counts()
    drainer = _Drainer(engine, system, run_id, workers, creates)
    drainer.until, drainer.stop, drainer.spread = until, stop, spread
    try:
        if workers == 1:
            return drainer.run_inline(batch, max_rows)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"push-{system}") as pool:
            return drainer.run(pool, batch, max_rows)
    finally:
        engine.claims.drop(drainer.held)  # whatever this drain still held is settled or let go


class _Drainer:
    """One drain of one system: claims, prepares, hands sends to the pool, applies outcomes."""

    def __init__(
        self, engine: Engine, system: str, run_id: str | None, workers: int, creates: bool
    ) -> None:
        self.engine, self.system, self.run_id = engine, system, run_id
        self.workers, self.creates = workers, creates
        self.counts = Counts()
        self.claimed = 0
        # the rows claimed and not yet applied or given back here: only those, not every row
        # of the run (a million-row drain held each id to the end, ~18 MB per 500,000)
        self.held: set[int] = set()
        self.lookups = Lookups(engine, system)  # shared by the drain's create recoveries
        self.until: float | None = None
        self.stop: Callable[[], bool] | None = None
        self.spread: Callable[[], object] | None = None

    def _stopping(self) -> bool:
        """The slice is over (``until``) or the process is shutting down (``stop``)."""
        over = self.until is not None and time.monotonic() >= self.until
        if over or (self.stop is not None and self.stop()):
            self.counts.values["sliced"] = 1
            return True
        return False

    def _claim(self, batch: int, max_rows: int | None, held: int = 0) -> list[_Job] | None:
        """The next batch, prepared; None when nothing more is due (or ``max_rows`` is met).
        ``held``: rows this drain holds unsettled (a slice claims no more than it can send)."""
        # a vendor with batch writes gets claims of at least one full batch request
        per_request = self.engine.connector(self.system).batch_limit
        batch = max(batch, per_request)
        limit = batch if max_rows is None else min(batch, max_rows - self.claimed)
        if self.until is not None:
            cfg = self.engine.config.systems[self.system]
            affordable = slice_rows(cfg, self.until - time.monotonic(), per_request)
            if affordable is not None:
                limit = min(limit, max(1, affordable - held))
        full = limit  # a claim this size that comes back full says more is due: spread
        if not self.claimed:
            # the first claim only fills the pool: its requests leave once a few rows are
            # prepared, not a whole batch (nothing is in flight meanwhile); the next claim,
            # a full one, is prepared while these are sent
            limit = min(limit, max(2 * self.workers, per_request))
        if limit <= 0 or self._stopping():
            return None
        ids = claim(self.engine, self.system, limit, creates=self.creates)
        if not ids:
            return None
        self.claimed += len(ids)
        self.held.update(ids)
        if len(ids) == limit == full and self.spread is not None:
            self._spread()
        jobs = prepare(self.engine, self.system, ids, self.run_id)
        gone = set(ids) - {job.row_id for job in jobs}
        self.engine.claims.drop(gone)  # no longer ours
        self.held -= gone
        self.lookups.claimed(jobs)
        return jobs

    def _spread(self) -> None:
        """Ask once for another drain of the system (the next one asks on); a failure to ask
        costs only speed: this drain goes on with what it claimed."""
        spread, self.spread = self.spread, None
        try:
            if spread is not None:
                spread()
        except Exception:
            log.warning("drain_not_spread", system=self.system, exc_info=True)

    def _groups(self, jobs: list[_Job]) -> list[list[_Job]]:
        """The claimed jobs as vendor calls: with batch writes (``batch_limit`` > 1), the
        batchable creates and updates in groups of up to that many; every other job alone."""
        limit = self.engine.connector(self.system).batch_limit
        if limit <= 1:
            return [[job] for job in jobs]
        alone = [[job] for job in jobs if not batchable(job)]
        grouped: list[list[_Job]] = []
        for kind in ("create", "update"):
            same = [job for job in jobs if batchable(job) and job.kind == kind]
            grouped += [same[i : i + limit] for i in range(0, len(same), limit)]
        return alone + grouped

    def _send(self, group: list[_Job]) -> list[_Result]:
        """One vendor call: a job alone (with the drain's shared look-ups for a recovery), or
        a batch request (any thread: ``run`` submits it with the drain's log context)."""
        if len(group) == 1:
            call = carried(send, record_id=group[0].record_id)
            return [call(self.engine, group[0], self.run_id, self.lookups)]
        return send_many(self.engine, group, self.run_id)

    def run_inline(self, batch: int, max_rows: int | None) -> Counts:
        while (jobs := self._claim(batch, max_rows)) is not None:
            results = [result for group in self._groups(jobs) for result in self._send(group)]
            self._apply(results)
        return self.counts

    def run(self, pool: ThreadPoolExecutor, batch: int, max_rows: int | None) -> Counts:
        inflight: dict[Future[list[_Result]], list[_Job]] = {}
        # sends report here as they finish: waiting on the queue costs the same whatever the
        # number in flight, where ``wait(inflight)`` hooks into every pending future each time
        finishing: SimpleQueue[Future[list[_Result]]] = SimpleQueue()
        ready: list[_Result] = []
        first_ready = 0.0
        exhausted = False
        try:
            while True:
                if not exhausted and self._stopping():
                    exhausted = True  # between outcomes too: a shutdown waits for no batch
                # Keep the pool fed: claim the next batch while the last one is still sending
                # — by half a batch ahead, so the claim's wait for the store's write lock
                # (other drains apply meanwhile) passes while the pool still has rows to send;
                # a slice under a rate limit claims no more than it can send (``_claim``), so
                # only once its pool has room. Rows that need no call (unchanged) are applied
                # a group at a time too.
                ahead = batch // 2 if self.until is None else 0
                while not exhausted and len(ready) < APPLY_GROUP:
                    held = sum(len(group) for group in inflight.values())
                    if len(inflight) > self.workers and held > ahead:
                        break
                    jobs = self._claim(batch, max_rows, held)
                    if jobs is None:
                        exhausted = True
                        break
                    for group in self._groups(jobs):
                        job = group[0]
                        if len(group) == 1 and (job.kind == "done" or job.error is not None):
                            ready.append(_Result(job, error=job.error))
                        else:
                            # a pool thread inherits no log context: carry the drain's
                            future = pool.submit(carried(self._send), group)
                            inflight[future] = group
                            future.add_done_callback(finishing.put)
                    if ready and not first_ready:
                        first_ready = time.monotonic()
                if inflight and exhausted and self.counts["sliced"]:
                    self._give_back(inflight)
                if inflight:
                    # With outcomes waiting, wake up in time to apply them.
                    left = first_ready + FLUSH_SECONDS - time.monotonic()
                    timeout = max(0.0, left) if ready else None
                    finished = _finished(finishing, timeout)
                    if finished and not ready:
                        first_ready = time.monotonic()
                    for future in finished:
                        if future.cancelled():  # given back by _give_back: not ours to apply
                            continue
                        ready += future.result()  # raises a bug in send: see _abandon
                        del inflight[future]
                due = time.monotonic() - first_ready >= FLUSH_SECONDS
                if ready and (not inflight or len(ready) >= APPLY_GROUP or due):
                    self._apply(ready)
                    ready, first_ready = [], 0.0
                if exhausted and not inflight and not ready:
                    return self.counts
        except BaseException:
            self._abandon(inflight, ready)
            raise

    def _apply(self, results: list[_Result]) -> None:
        """Apply outcomes: their rows are settled (no longer this drain's to let go)."""
        apply_results(self.engine, results, self.counts)
        self.held.difference_update(result.job.row_id for result in results)

    def _give_back(self, inflight: dict[Future[list[_Result]], list[_Job]]) -> None:
        """The slice is over: the claimed rows whose send has not started go back now (a
        create's fresh intent with them: nothing left), the rest finish."""
        unsent = [
            job for future, group in list(inflight.items()) if future.cancel() for job in group
        ]
        for future in [f for f in inflight if f.cancelled()]:
            del inflight[future]
        _release_unsent(self.engine, unsent)
        self.held.difference_update(job.row_id for job in unsent)

    def _abandon(
        self, inflight: dict[Future[list[_Result]], list[_Job]], ready: list[_Result]
    ) -> None:
        """The drain is failing: record what the vendors already did, put the rest back
        (the rows not sent, and those whose send failed unexpectedly, wait for a retry)."""
        unsent = [
            job.row_id for future, group in inflight.items() if future.cancel() for job in group
        ]
        done, _ = wait([future for future in inflight if not future.cancelled()])
        results = ready + [r for f in done if f.exception() is None for r in f.result()]
        failed = [job.row_id for f in done if f.exception() is not None for job in inflight[f]]
        with contextlib.suppress(Exception):
            apply_results(self.engine, results, self.counts)
        with contextlib.suppress(Exception):
            _release(self.engine, unsent + failed)


def slice_rows(cfg: SystemConfig, seconds: float, per_request: int = 1) -> int | None:
    """How many rows a slice with ``seconds`` left can send under the system's rate limit
    (a burst, and the rate for the time left; ``per_request`` rows a request), or None when no
    limit is configured. A drain claims no more: every create it claims has its intent
    journaled, and a worker killed while holding it leaves each one in doubt, to be looked
    up before it is sent again (ParsaLink: two requests each) — 200 claimed at 100 requests a
    minute made a kill cost minutes of the vendor's budget."""
    limit = cfg.rate_limit
    if limit is None:
        return None
    burst = limit.burst if limit.burst is not None else limit.rate
    return math.ceil(limit.rate * max(0.0, seconds) + burst) * max(1, per_request)


def _finished(
    finishing: SimpleQueue[Future[list[_Result]]], timeout: float | None
) -> list[Future[list[_Result]]]:
    """The sends that finished: waits up to ``timeout`` (None: until one does) for the first,
    then takes every other already finished."""
    try:
        finished = [finishing.get(timeout=timeout)]
    except Empty:
        return []
    with contextlib.suppress(Empty):
        while True:
            finished.append(finishing.get_nowait())
    return finished
