"""The engine's reference map (:class:`StoreRefs`): company, owner and stage references between
canonical keys and vendor ids, shared by every thread of a process.

Every deal read or written asks it a few times, from up to eight pushes per system at once, so a
reference already known is answered without a lock: the cached listings and the stored map are
read by single dict and set look-ups (atomic under the GIL), and only a miss, a refresh or a
change takes a lock. Changes publish whole objects (a listing is swapped in complete; ``forget``
swaps in empty caches), so a reader racing with them sees the old state or the new, never half.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from sync.engine.normalise import CompanyNames, normalise_company
from sync.store import refs as stored_refs
from sync.store.models import RefMap
from sync.timefmt import utcnow

if TYPE_CHECKING:
    from sync.engine.context import Engine

#: (system, kind), e.g. ("close", "owner")
Slot = tuple[str, str]
_NONE: frozenset[str] = frozenset()


class _Listing:
    """One (system, kind)'s references: the vendor's listing with the stored map over it.
    Read without a lock; changed (``learn``) only under its system's lock."""

    __slots__ = ("_by_company", "by_id", "by_key")

    def __init__(self, by_id: dict[str, str], by_key: dict[str, str]) -> None:
        self.by_id = by_id  # vendor id -> canonical key
        self.by_key = by_key  # folded key -> vendor id
        self._by_company: dict[str, set[str]] | None = None  # built on the first name match

    def learn(self, vendor_id: str, key: str) -> None:
        old = self.by_id.get(vendor_id)
        self.by_id[vendor_id] = key
        self.by_key[_fold(key)] = vendor_id
        if self._by_company is not None:
            if old is not None:
                self._by_company.get(normalise_company(old), set()).discard(vendor_id)
            self._by_company.setdefault(normalise_company(key), set()).add(vendor_id)

    def same_company(self, key: str) -> str | None:
        """The one company here whose name is ``key`` but for case, punctuation and a
        legal-form suffix ("Hooli" / "Hooli, Inc."), as the first-run match compares them;
        None when there is none or several (never a guess)."""
        if self._by_company is None:
            by_company: dict[str, set[str]] = {}
            for vendor_id, name in self.by_id.items():
                by_company.setdefault(normalise_company(name), set()).add(vendor_id)
            self._by_company = by_company
        found = self._by_company.get(normalise_company(key), set())
        return next(iter(found)) if len(found) == 1 else None


class _Stored:
    """The stored reference map (``ref_maps`` and the rows learnt since), indexed for the
    company questions asked per deal. Grows under ``StoreRefs._lock``; read without it only by
    single membership tests."""

    def __init__(self, rows: list[RefMap]) -> None:
        self.rows: dict[Slot, list[RefMap]] = {}
        self._company_ids: dict[str, set[str]] = {}  # system -> vendor ids with a row
        self._company_keys: dict[str, set[str]] = {}  # system -> folded keys of its rows
        self.companies = CompanyNames()  # every canonical company key, any system
        for row in rows:
            self.add(row)

    def add(self, row: RefMap) -> None:
        self.rows.setdefault((row.system, row.kind), []).append(row)
        if row.kind == "company":
            self._company_keys.setdefault(row.system, set()).add(_fold(row.key))
            self.companies.add(row.key)
            self._company_ids.setdefault(row.system, set()).add(row.vendor_id)

    def is_linked(self, system: str, vendor_id: str) -> bool:
        return vendor_id in self._company_ids.get(system, _NONE)

    def has_company_key(self, system: str, key: str) -> bool:
        return _fold(key) in self._company_keys.get(system, _NONE)


class StoreRefs:
    """Resolves references (company, owner, stage) between canonical keys and vendor ids.

    Order: explicit entries in ``ref_maps`` (source ``config`` or ``created``), then the
    vendor's own listing (cached for the run), then auto-create where the system allows it.
    Keys match case-insensitively, ignoring surrounding spaces.

    Companies are linked across systems by identity (DESIGN §2.6): the first time a vendor
    company is seen — read on a deal, or found by name for a write — it is linked to a canonical
    company (a ``ref_maps`` row, source ``linked``): the one whose name is the same but for
    case, punctuation and a legal-form suffix, else a new one named as it is there. From then
    on its id alone decides, so a company renamed in one system keeps its deals everywhere
    (``sync.engine.companies`` lists the names that differ across a link).

    Shared by every thread of a process (one drain per system, several pushes per drain). A
    reference already known (and a company already linked) is answered without a lock. Anything
    else takes that system's lock — held across the listing request, so concurrent pushes wait
    for one listing instead of each sending their own, an auto-created company is created once
    and a company seen for the first time is linked once — and looks again under it. The stored
    map and the pending rows are guarded by ``_lock``.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._listings: dict[Slot, _Listing] = {}
        self._refreshed: set[Slot] = set()
        self._stored: _Stored | None = None  # None until ``prime``
        self.pending: list[RefMap] = []
        self._lock = threading.RLock()
        # made up front, so finding one takes no other lock
        self._system_locks = {system: threading.RLock() for system in engine.config.systems}
        self._listed_at = 0.0  # time.monotonic() of the last full forget

    def _lock_for(self, system: str) -> threading.RLock:
        found = self._system_locks.get(system)
        if found is not None:
            return found
        with self._lock:  # a system the config did not name when this was built
            return self._system_locks.setdefault(system, threading.RLock())

    def prime(self) -> None:
        """Load the stored reference map once per run, before any transaction is open (on
        SQLite a second connection inside a write transaction would wait for the first)."""
        with self._lock:
            if self._stored is not None:
                return
            # a read: no write lock (a writer that waits for this lock meanwhile, inside
            # its transaction, would otherwise wait for us while we wait for it)
            with self._engine.read_session() as session:
                rows = [*stored_refs.every(session), *self.pending]  # learnt, not yet stored
            self._stored = _Stored(rows)

    def key_for(self, system: str, kind: str, vendor_id: str) -> str | None:
        if kind != "company" or self._is_linked(system, vendor_id):
            # read after the link is seen: ``_remember`` put its key there first
            listing = self._listings.get((system, kind))
            found = None if listing is None else listing.by_id.get(vendor_id)
            if found is not None:
                return found
        with self._lock_for(system):
            return self._key_for(system, kind, vendor_id)

    def id_for(self, system: str, kind: str, key: str) -> str | None:
        listing = self._listings.get((system, kind))
        found = None if listing is None else listing.by_key.get(_fold(key))
        if found is not None and (kind != "company" or self._is_linked(system, found)):
            return found
        with self._lock_for(system):
            return self._id_for(system, kind, key)

    def _key_for(self, system: str, kind: str, vendor_id: str) -> str | None:
        """``key_for`` on a miss; the caller holds the system's lock."""
        listing = self._load(system, kind)
        found = listing.by_id.get(vendor_id)
        if found is None and (system, kind) not in self._refreshed:
            # a reference created since the listing was cached (a new company): look again once
            self._refreshed.add((system, kind))
            listing = self._load(system, kind, again=True)
            found = listing.by_id.get(vendor_id)
        if found is not None and kind == "company":
            return self._link_company(listing, system, vendor_id, found)
        return found

    def _id_for(self, system: str, kind: str, key: str) -> str | None:
        """``id_for`` on a miss; the caller holds the system's lock."""
        listing = self._load(system, kind)
        found = listing.by_key.get(_fold(key))
        if found is None and kind != "company" and (system, kind) not in self._refreshed:
            # a user (or stage) added there since the listing was cached: a deal waiting
            # for it heals without anyone's help (engine.unresolved); once per run
            self._refreshed.add((system, kind))
            listing = self._load(system, kind, again=True)
            found = listing.by_key.get(_fold(key))
        if kind != "company":
            return found
        return self._company_id(listing, system, key, found)

    def _company_id(
        self, listing: _Listing, system: str, key: str, found: str | None
    ) -> str | None:
        """The company of ``system`` named ``key`` — by name but for its legal form, else
        auto-created where allowed — linked to ``key`` if it is seen for the first time."""
        if found is None:
            found = listing.same_company(key)
        if found is not None:
            if not self._is_linked(system, found):
                self._remember(listing, system, "company", key, found, "linked")
            return found
        if self._engine.dry_run or not self._engine.config.systems[system].auto_create_companies:
            return None
        ref = self._engine.connector(system).create_reference("company", key)
        self._remember(listing, system, "company", key, ref.id, "created")
        return ref.id

    def _load(self, system: str, kind: str, *, again: bool = False) -> _Listing:
        """The cached listing of one (system, kind), fetched if there is none (or ``again``);
        the caller holds the system's lock."""
        slot = (system, kind)
        listings = self._listings  # a ``forget`` meanwhile swaps in a new dict: not filled
        if not again and slot in listings:
            return listings[slot]
        connector = self._engine.connector(system)
        if again:
            connector.forget_references(kind)
        by_id: dict[str, str] = {}
        by_key: dict[str, str] = {}
        try:
            refs = connector.references(kind)
        except NotImplementedError:
            refs = []
        for ref in refs:
            by_id[ref.id] = ref.key
            by_key.setdefault(_fold(ref.key), ref.id)
        with self._lock:
            explicit = list(self._stored.rows.get(slot, [])) if self._stored else []
        for row in explicit:
            by_id[row.vendor_id] = row.key
            by_key[_fold(row.key)] = row.vendor_id
        if kind == "company":  # a linked company is found by its link's name only (a rename
            linked = {row.vendor_id: _fold(row.key) for row in explicit}  # is not a move)
            by_key = {k: v for k, v in by_key.items() if linked.get(v, k) == k}
        listings[slot] = listing = _Listing(by_id, by_key)
        return listing

    def _is_linked(self, system: str, vendor_id: str) -> bool:
        """A stored (or learnt) row names this vendor company; never before ``prime``."""
        stored = self._stored
        return stored is not None and stored.is_linked(system, vendor_id)

    def _link_company(self, listing: _Listing, system: str, vendor_id: str, name: str) -> str:
        """The canonical company of a vendor company seen for the first time (``name`` is its
        name there), linked to it from now on; a linked one's canonical key as it is."""
        if self._is_linked(system, vendor_id):
            return name  # the link's key (``_load`` put it over the listing's name)
        with self._lock:
            stored = self._stored
            key = (stored.companies.same(name) if stored else None) or name
            taken = stored is not None and stored.has_company_key(system, key)
        if not taken:  # else a second company of that name there: read as the linked one
            self._remember(listing, system, "company", key, vendor_id, "linked")
        return key

    def _remember(
        self, listing: _Listing, system: str, kind: str, key: str, vendor_id: str, source: str
    ) -> None:
        """A reference learnt (linked or created): cached, and pending until stored. The
        caller holds the system's lock."""
        # cached before the stored map says "linked": a lock-free ``key_for`` that sees the
        # link reads its key, never the vendor's name the listing had
        listing.learn(vendor_id, key)
        row = RefMap(
            system=system,
            kind=kind,
            key=key,
            vendor_id=vendor_id,
            source=source,
            updated_at=utcnow(),
        )
        with self._lock:
            self.pending.append(row)
            # Known from now on without a re-read: another thread may be loading this slot.
            if self._stored is not None:
                self._stored.add(row)

    def take_pending(self) -> list[RefMap]:
        """Reference-map rows learnt during a transaction, for the caller to add to it."""
        with self._lock:
            rows, self.pending = self.pending, []
        return rows

    def give_back(self, rows: list[RefMap]) -> None:
        """Rows taken by a transaction that rolled back: the next transaction stores them."""
        if rows:
            with self._lock:
                self.pending[:0] = [_fresh(row) for row in rows]

    def forget(self, max_age: float | None = None) -> None:
        """Drop cached listings (a new run sees new companies and users). With ``max_age``
        (seconds), listings younger than that are kept — a cycle every 30 s need not re-read
        every owner and company list — but the once-per-run look-again on a miss is re-armed,
        so a company created since is still found; a renamed one shows within ``max_age``."""
        with self._lock:
            self._refreshed.clear()
            self._stored = None
            if max_age is not None and time.monotonic() - self._listed_at < max_age:
                return
            self._listed_at = time.monotonic()
            self._listings = {}  # a reader holding the old one finishes with it
            for connector in self._engine.connectors():
                connector.forget_references()


def _fresh(row: RefMap) -> RefMap:
    """A transient copy of a reference-map row (the original may be bound to a dead session)."""
    return RefMap(
        system=row.system,
        kind=row.kind,
        key=row.key,
        vendor_id=row.vendor_id,
        source=row.source,
        updated_at=row.updated_at,
    )


def _fold(key: str) -> str:
    return key.strip().casefold()
