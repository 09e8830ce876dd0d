"""A create whose earlier outcome is unknown: find the deal it may have made, in a number of
vendor requests that does not grow with the deals the vendor holds.

The identity rule is ``engine.intents`` (README "Lost answers"): where the vendor holds our
record id only the id decides; elsewhere the name must agree, or the deal was renamed there
(its stamps show an edit after it was made) with every other field equal. This module only
decides which deals to put before that rule, and how cheaply:

- **By name first**, where the vendor filters its list by name (ParsaLink's ``search``): one
  request, usually one candidate.
- **Renames**, where the vendor filters on the other fields (ParsaLink: account, stage,
  value): a renamed deal kept every other field, so one request finds the few that could be it.
- Otherwise **one listing of the deals created since the oldest intent of the drain**,
  shared by every recovery of that drain (``Lookups.window``). It serves a create only when it
  started after that create was claimed here: the earlier attempt had ended by then, so the
  deal it may have made is in the listing. So every create it can serve is known when it
  starts, and it holds only the deals one of them could adopt (``_Wanted``): a listing runs to
  every deal the vendor made since (100,000 in a large load), its memory to the few candidates.
- A summary (ParsaLink's list) is put before the rule's necessary condition first
  (``intents.may_qualify``); only the few that pass are read in full, once per drain.

A vendor that makes one deal of a create however often it is sent (Salesforce's upsert,
HubSpot's unique id property) needs none of this: the create is sent again
(``prepare.resends_plainly``).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sync.connectors.base import VendorRecord
from sync.engine.context import Engine
from sync.engine.intents import SLACK, Intent, best_intent, may_qualify, rank
from sync.engine.push.prepare import _Job
from sync.mapping.errors import MappingError, UnresolvedReference
from sync.store import links
from sync.timefmt import maybe_utc

#: deals asked about per statement (SQLite takes 32,766 parameters, PostgreSQL 65,535)
LINKED_CHUNK = 1000


class AlreadyLinked(Exception):
    """The deal an unknown-outcome create made is already linked to the record that asked."""


@dataclass
class _Window:
    """One listing of the deals created since ``since``, started at ``started`` (monotonic):
    those a recovery it serves could adopt (``_Wanted``)."""

    started: float
    since: dt.datetime
    deals: list[VendorRecord]


@dataclass
class Lookups:
    """The vendor look-ups of one drain's recoveries in one system, shared by all of them
    (the drain's sending threads call in at once: everything shared is under ``_lock``)."""

    engine: Engine
    system: str
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # the recoveries claimed and not over, by row id: when claimed here, and the job
    _waiting: dict[int, tuple[float, _Job]] = field(default_factory=dict)
    _window: _Window | None = None
    _full: dict[str, VendorRecord] = field(default_factory=dict)  # full reads, by vendor id
    _taken: set[str] = field(default_factory=set)  # deals a recovery of this drain adopted

    def claimed(self, jobs: Iterable[_Job]) -> None:
        """Note the drain's newly claimed jobs: a listing serves those claimed before it."""
        with self._lock:
            # read under the lock: a job noted while a listing runs is noted after it began
            # (that listing kept nothing for it, so it must not serve it)
            now = time.monotonic()
            for job in jobs:
                if job.recover and job.intent_at is not None and job.error is None:
                    self._waiting[job.row_id] = (now, job)

    def done(self, job: _Job) -> None:
        """``job``'s recovery is over: the listings from now on keep nothing for it."""
        with self._lock:
            self._waiting.pop(job.row_id, None)

    def window(self, job: _Job) -> list[VendorRecord]:
        """The deals created since ``job``'s intent (less ``SLACK``) that it could adopt, from
        one listing shared by the drain; listed again only for a job claimed after it began
        (or older)."""
        since = _since(job)
        with self._lock:
            current = self._window
            claimed = self._waiting.get(job.row_id, (time.monotonic(), job))[0]
            if current is None or current.started < claimed or since < current.since:
                current = self._window = self._list(job)
        return [deal for deal in current.deals if _born(deal, since)]

    def _list(self, job: _Job) -> _Window:
        """One listing for ``job`` and every recovery waiting (under ``_lock``): those are
        all it can serve, so it keeps only the deals one of them could adopt."""
        jobs = [job, *(other for _, other in self._waiting.values() if other is not job)]
        oldest = min(_since(each) for each in jobs)
        started = time.monotonic()
        keep = _Wanted(self.engine, self.system, jobs)
        deals = self.engine.connector(self.system).find_candidates(None, oldest, keep)
        return _Window(started, oldest, deals)

    def held(self) -> list[VendorRecord]:
        """The deals the latest listing keeps (the rest of what it listed was dropped)."""
        with self._lock:
            return list(self._window.deals) if self._window is not None else []

    def full(self, deal: VendorRecord) -> VendorRecord:
        """The deal read in full (a summary is read once per drain; a full record as is)."""
        if not deal.partial:
            return deal
        with self._lock:
            known = self._full.get(deal.external_id)
        if known is not None:
            return known
        read = self.engine.connector(self.system).get(deal.external_id)
        with self._lock:
            return self._full.setdefault(deal.external_id, read)

    def take(self, deal: VendorRecord) -> bool:
        """Reserve a deal for the recovery adopting it; False when another one of this drain
        did already (two creates of one name, lost together: each adopts its own deal)."""
        with self._lock:
            if deal.external_id in self._taken:
                return False
            self._taken.add(deal.external_id)
            return True

    def is_taken(self, external_id: str) -> bool:
        with self._lock:
            return external_id in self._taken


def _since(job: _Job) -> dt.datetime:
    assert job.intent_at is not None
    since = maybe_utc(job.intent_at - SLACK)
    assert since is not None
    return since


def _born(deal: VendorRecord, since: dt.datetime) -> bool:
    born = maybe_utc(deal.created or deal.modified)
    return born is None or born >= since


def _intent(job: _Job) -> Intent:
    """The intent the identity rule weighs a deal against: what the create sent (what the
    record holds now where the row kept nothing)."""
    assert job.intent_at is not None
    sent = {k: v for k, v in (job.intent_sent or job.wanted).items() if v is not None}
    return Intent(job.row_id, job.record_id, job.intent_at, sent)


class _Wanted:
    """Which deals of a listing to hold: those one of ``jobs`` could adopt. A superset of
    what ``_most_alike`` can return for each, so what is adopted does not change:

    - born since the job's intent (``window`` gives a job no other);
    - carrying the job's record id: its own, kept whatever it holds (``_free`` puts it before
      any other, and ``_best`` judges it);
    - else carrying no record id, where the vendor's deals carry none (``_free`` drops a deal
      carrying another's, and any deal without ours where our creates carry it), and passing
      the identity rule's necessary condition (``intents.may_qualify``, what ``_best`` asks of
      a summary before reading it in full), or not mappable to canonical fields (``_best``
      reads such a summary in full).
    """

    def __init__(self, engine: Engine, system: str, jobs: Sequence[_Job]) -> None:
        self.engine, self.system = engine, system
        self.holds = engine.mapper.holds_record_id(system)
        self.jobs = [(job, _since(job), _intent(job)) for job in jobs]

    def __call__(self, deal: VendorRecord) -> bool:
        carried = self.engine.mapper.record_id_of(self.system, deal.data)
        born = [(job, intent) for job, since, intent in self.jobs if _born(deal, since)]
        if any(carried == job.record_id for job, _ in born):
            return True
        if carried is not None or self.holds or not born:
            return False
        theirs = _canonical(self.engine, self.system, deal.data)
        if theirs is None:
            return True
        stamp, created = maybe_utc(deal.modified), maybe_utc(deal.created)
        return any(may_qualify(i, theirs, stamp, created, job.wanted) for job, i in born)


# --------------------------------------------------------------------------- the recovery


def recover(engine: Engine, job: _Job, lookups: Lookups) -> VendorRecord | None:
    """The deal an earlier create of ``job`` made, to adopt; None when there is none (or none
    can be sure). Raises ``AlreadyLinked`` when the record got its link meanwhile."""
    if job.intent_at is None:
        return None
    try:
        return _recover(engine, job, lookups)
    finally:
        lookups.done(job)


def _recover(engine: Engine, job: _Job, lookups: Lookups) -> VendorRecord | None:
    with engine.read_session() as session:
        linked = links.id_of_record_in(session, job.record_id, job.system)
    if linked is not None:
        raise AlreadyLinked  # linked since this row was prepared (a capture adopted it)
    connector = engine.connector(job.system)
    if not connector.name_search:
        return _most_alike(engine, job, lookups, lookups.window(job))
    since = _since(job)
    if job.name:
        named = connector.find_candidates(str(job.name), since)
        # Even one deal of that name must look like what was sent: two records of one name
        # may be created at once, and the other's deal is not ours to adopt.
        if found := _most_alike(engine, job, lookups, named):
            return found
    like = _alike(engine, job, since)
    if like is not None:
        return _most_alike(engine, job, lookups, [d for ds in like for d in ds])
    return _most_alike(engine, job, lookups, lookups.window(job))


def _alike(engine: Engine, job: _Job, since: dt.datetime) -> list[list[VendorRecord]] | None:
    """Deals created since the intent whose fields other than the name equal what was sent or
    what the record holds now, found by the vendor's own list filters: one request per
    distinct payload. None when the vendor cannot filter so (list the window instead)."""
    connector = engine.connector(job.system)
    out: list[list[VendorRecord]] = []
    for fields in _expected(job):
        try:
            payload = engine.mapper.to_vendor(
                job.system, fields, engine.refs, for_create=True, record_id=job.record_id
            )
        except (MappingError, UnresolvedReference):
            return None  # what was sent cannot be put in the vendor's terms: list them all
        found = connector.find_like(payload, since)
        if found is None:
            return None
        out.append(found)
    return out


def _expected(job: _Job) -> list[dict[str, Any]]:
    """What the deal may hold besides its name: what the create sent, and the record now."""
    out: list[dict[str, Any]] = []
    for fields in (job.intent_sent, job.wanted):
        plain = {k: v for k, v in (fields or {}).items() if v is not None}
        if plain and plain not in out:
            out.append(plain)
    return out


def _free(
    engine: Engine, job: _Job, lookups: Lookups, deals: list[VendorRecord]
) -> list[VendorRecord]:
    """The candidates no other record holds; raises ``AlreadyLinked`` when ours does."""
    mapper = engine.mapper
    carried = {d.external_id: mapper.record_id_of(job.system, d.data) for d in deals}
    # a candidate carrying another deal's record id is that deal; ours wins outright
    deals = [
        d
        for d in deals
        if carried[d.external_id] in (None, job.record_id) and not lookups.is_taken(d.external_id)
    ]
    if not deals:
        return []
    taken = _linked(engine, job.system, [d.external_id for d in deals])
    if job.record_id in taken.values():
        raise AlreadyLinked  # a capture met the deal first and adopted it for this record
    free = [d for d in deals if d.external_id not in taken]
    own = [d for d in free if carried[d.external_id] == job.record_id]
    if mapper.holds_record_id(job.system):
        return own  # our create carried our id: a deal without it is somebody else's
    return own or free


def _linked(engine: Engine, system: str, external_ids: list[str]) -> dict[str, str]:
    """Which of these deals are linked, to which record (in chunks: a window may hold
    thousands, more than a statement takes parameters)."""
    out: dict[str, str] = {}
    with engine.read_session() as session:
        for start in range(0, len(external_ids), LINKED_CHUNK):
            chunk = external_ids[start : start + LINKED_CHUNK]
            out.update(links.record_ids_of(session, system, chunk))
    return out


def _most_alike(
    engine: Engine, job: _Job, lookups: Lookups, deals: list[VendorRecord]
) -> VendorRecord | None:
    """The free deal most like what the create sent, if one qualifies (``intents`` rule),
    reserved for this job; another recovery of the drain that took it first is passed over."""
    while True:
        best = _best(engine, job, lookups, _free(engine, job, lookups, deals))
        if best is None or lookups.take(best):
            return best


def _best(
    engine: Engine, job: _Job, lookups: Lookups, free: list[VendorRecord]
) -> VendorRecord | None:
    intent = _intent(job)
    now = {job.record_id: job.wanted}  # the record may have been edited since
    best: tuple[VendorRecord, tuple[bool, float]] | None = None
    renames = 0  # candidates that qualify only as a rename of what was sent
    for candidate in free:
        if candidate.partial and not _may_be(engine, job, intent, candidate):
            continue  # its summary already rules it out: no full read
        full = lookups.full(candidate)
        theirs = _canonical(engine, job.system, full.data)
        if theirs is None:
            continue
        modified, created = maybe_utc(full.modified), maybe_utc(full.created)
        match = best_intent([intent], theirs, modified, now, created)
        if match is None:
            continue
        score = rank(match[1])
        renames += not score[0]
        if best is None or score > best[1]:
            best = (full, score)
    if best is None or (not best[1][0] and renames > 1):
        return None  # several renamed deals could be ours: none can be sure
    return best[0]


def _may_be(engine: Engine, job: _Job, intent: Intent, summary: VendorRecord) -> bool:
    """Could the deal of this summary be ours, once read in full?"""
    theirs = _canonical(engine, job.system, summary.data)
    if theirs is None:
        return True  # the summary alone cannot be judged: read it
    stamp, created = maybe_utc(summary.modified), maybe_utc(summary.created)
    return may_qualify(intent, theirs, stamp, created, job.wanted)


def _canonical(engine: Engine, system: str, data: Mapping[str, Any]) -> dict[str, Any] | None:
    try:
        return dict(engine.mapper.to_canonical(system, dict(data), engine.refs))
    except (MappingError, UnresolvedReference):
        return None
