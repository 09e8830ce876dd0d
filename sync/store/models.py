"""SQLModel tables of the store — the contract of shared/DESIGN.md §2 made durable.

One canonical ``Record`` per deal; one ``Link`` per (record, system) holding the shadow (the
canonical projection of what that system held when we last read or wrote it) and the vendor's
modified stamp. ``Cursor`` per system, ``Outbox`` rows (one pending row per record and system:
the drainer recomputes the diff at send time, so coalescing is free), ``Conflict``, ``Journal``
(per-record history with reasons), ``Run`` (per-run counts), ``DeadLetter``, ``RefMap``
(reference map: canonical key <-> vendor id per system and kind) and ``RecordKey`` (identity
keys: external ids such as a Salesforce id, and configured natural keys).

Timestamps are timezone-aware UTC (SQLModel's UTCDateTime: SQLite keeps UTC without an offset
and hands it back as UTC); ``sync.timefmt.utcnow()`` makes them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from sync.timefmt import utcnow


def _new_dict() -> dict[str, Any]:
    return {}


def _new_list() -> list[Any]:
    return []


# The factories are Python functions, not the builtins ``dict``/``list``: pydantic inspects a
# default factory's signature on every construction, and for a builtin that means parsing its
# text signature (~40 µs a field) — a third of the cost of capturing a record.
def _json(**kw: Any) -> Any:
    return Field(default_factory=_new_dict, sa_column=Column(JSON, nullable=False), **kw)


class Record(SQLModel, table=True):
    """A canonical deal. ``fields`` in canonical normal form (sync.model); ``provenance`` says,
    per field, which system last set it and that system's modified stamp (for ``latest``);
    ``held`` lists fields frozen by an open manual conflict."""

    __tablename__ = "records"

    id: str = Field(primary_key=True, max_length=40)
    fields: dict[str, Any] = _json()
    provenance: dict[str, Any] = _json()
    held: list[str] = Field(default_factory=_new_list, sa_column=Column(JSON, nullable=False))
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)
    deleted_at: dt.datetime | None = Field(default=None, index=True)
    deleted_by: str | None = None


class Link(SQLModel, table=True):
    """A record's presence in one system, with its shadow copy."""

    __tablename__ = "links"
    __table_args__ = (
        UniqueConstraint("system", "external_id", name="uq_links_system_external"),
        UniqueConstraint("record_id", "system", name="uq_links_record_system"),
    )

    id: int | None = Field(default=None, primary_key=True)
    record_id: str = Field(foreign_key="records.id", index=True, max_length=40)
    system: str = Field(max_length=64)
    external_id: str = Field(max_length=128)
    shadow: dict[str, Any] = _json()
    # field -> [value we sent, value the vendor answered]: a lossy vendor (Close's integer
    # confidence) keeps our 0.7512 as 0.75; this pair says the two are the same for it.
    sent: dict[str, Any] = _json()
    vendor_modified: dt.datetime | None = None
    # vendor clock: when a scan last found the summary of a whole-second stamp equal to the
    # shadow. Once this is 2 s past ``vendor_modified`` the stamp's second had closed, so an
    # equal stamp cannot hide a later same-second edit and later scans skip the compare.
    confirmed_at: dt.datetime | None = None
    # vendor clock: the stamp the answer to our own last write (create or update) carried,
    # when that answer is the deal as the shadow holds it; null once anything else moved the
    # stamp. ``verify`` trusts an equal summary stamp on it (``engine.summaries``).
    written_stamp: dt.datetime | None = None
    linked_at: dt.datetime = Field(default_factory=utcnow)
    synced_at: dt.datetime = Field(default_factory=utcnow)
    deleted_at: dt.datetime | None = None  # tombstone: the deal is gone from this system
    # the system's ``filter`` left this deal out at its last read: nothing is written to it
    # (nor read from it) until a read finds it passing again
    filtered_at: dt.datetime | None = None


class RecordKey(SQLModel, table=True):
    """An identity key of a record: ``(namespace, value)`` — e.g. ``("salesforce", "006…")``."""

    __tablename__ = "record_keys"
    __table_args__ = (UniqueConstraint("namespace", "value", name="uq_record_keys_ns_value"),)

    id: int | None = Field(default=None, primary_key=True)
    record_id: str = Field(foreign_key="records.id", index=True, max_length=40)
    namespace: str = Field(max_length=64)
    value: str = Field(max_length=255)


class Cursor(SQLModel, table=True):
    """Capture progress of one system: the compound cursor (stamp, external id), and the
    ``watermark``: the vendor's own clock at the start of the last *complete* listing (from its
    HTTP ``Date``). Every record the vendor had committed before it was seen, so the next
    incremental poll asks from ``watermark - lookback`` instead of re-reading from the newest
    stamp; null until a complete listing answered with a ``Date``. ``budget``: the request
    allowance the vendor's rate-limit headers last announced (``remaining``, ``limit``,
    ``reset_at``, ``window``, ``seen_at``), written with the poll's own commit so the admin
    process, which sends no requests, can show it; null when the vendor reports none.
    ``pace``: a scan system's last complete listing (``listing_seconds``, ``listing_requests``,
    ``listed``, ``at``), from which its poll interval stretches (``sync.engine.pace``)."""

    __tablename__ = "cursors"

    system: str = Field(primary_key=True, max_length=64)
    stamp: dt.datetime | None = None
    external_id: str | None = Field(default=None, max_length=128)
    watermark: dt.datetime | None = None
    deletes_stamp: dt.datetime | None = None
    last_poll_at: dt.datetime | None = None
    last_full_scan_at: dt.datetime | None = None
    last_error: str | None = None
    budget: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    pace: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    updated_at: dt.datetime = Field(default_factory=utcnow)


class Outbox(SQLModel, table=True):
    """A pending push of one record to one system. ``op``: create | update | delete.

    ``status``: pending -> done, or retry (waiting for ``next_attempt_at``), parked (waiting
    for a reference to resolve: ``waiting`` names it; every other field was written), dead
    (moved to dead letters). ``intent_at`` is set before a create is sent: a later attempt
    first looks the deal up in the target and adopts it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_drain", "system", "status", "next_attempt_at"),
        Index("ix_outbox_record_system", "record_id", "system"),
    )

    id: int | None = Field(default=None, primary_key=True)
    record_id: str = Field(foreign_key="records.id", max_length=40)
    system: str = Field(max_length=64)
    op: str = Field(max_length=16)
    status: str = Field(default="pending", max_length=16)
    reason: str = Field(default="", max_length=500)
    attempts: int = 0
    next_attempt_at: dt.datetime = Field(default_factory=utcnow)
    intent_at: dt.datetime | None = None
    # the canonical fields a create sent (None where it sent nothing): a capture that meets an
    # unlinked deal before the create's retry compares it with this to adopt it (both orders)
    intent: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    idempotency_key: str = Field(default="", max_length=80)
    # references this push could not resolve ([{field, kind, key, fallback}]): the rest was
    # written, these fields wait (status ``parked``) until the reference exists there
    waiting: list[Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    last_error: str | None = None
    claimed_by: str | None = Field(default=None, max_length=80)
    claimed_until: dt.datetime | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)


class Conflict(SQLModel, table=True):
    """A conflicting edit of one field. Automatic policies open it already resolved (for the
    record); ``manual`` leaves it open and the field held until an admin resolves it."""

    __tablename__ = "conflicts"
    __table_args__ = (Index("ix_conflicts_status", "status", "record_id"),)

    id: int | None = Field(default=None, primary_key=True)
    record_id: str = Field(foreign_key="records.id", max_length=40)
    field: str = Field(max_length=64)
    policy: str = Field(max_length=32)
    base: Any = Field(default=None, sa_column=Column(JSON))
    ours: Any = Field(default=None, sa_column=Column(JSON))
    ours_system: str | None = Field(default=None, max_length=64)
    theirs: Any = Field(default=None, sa_column=Column(JSON))
    theirs_system: str = Field(max_length=64)
    winner: str | None = Field(default=None, max_length=64)
    status: str = Field(default="open", max_length=16)
    reason: str = Field(default="", max_length=500)
    created_at: dt.datetime = Field(default_factory=utcnow)
    resolved_at: dt.datetime | None = None


class Journal(SQLModel, table=True):
    """One decision about one record: what happened, from where, and why."""

    __tablename__ = "journal"
    __table_args__ = (Index("ix_journal_record_at", "record_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    record_id: str = Field(max_length=40)
    run_id: str | None = Field(default=None, max_length=40)
    at: dt.datetime = Field(default_factory=utcnow)
    system: str | None = Field(default=None, max_length=64)
    action: str = Field(max_length=32)
    field: str | None = Field(default=None, max_length=64)
    old: Any = Field(default=None, sa_column=Column(JSON))
    new: Any = Field(default=None, sa_column=Column(JSON))
    reason: str = Field(default="", max_length=1000)


class Run(SQLModel, table=True):
    """One run (a cycle, a poll, a drain, a reconcile): when, how it ended, what it counted."""

    __tablename__ = "runs"

    id: str = Field(primary_key=True, max_length=40)
    kind: str = Field(max_length=32)
    system: str | None = Field(default=None, max_length=64)
    started_at: dt.datetime = Field(default_factory=utcnow, index=True)
    finished_at: dt.datetime | None = None
    status: str = Field(default="running", max_length=16)
    counts: dict[str, Any] = _json()
    error: str | None = None
    #: the process running it (``host:pid:boot:n``): a run still ``running`` whose holder is
    #: provably dead shows as ``died``
    holder: str | None = Field(default=None, max_length=80)


class DeadLetter(SQLModel, table=True):
    """Something that could not be synced, with the vendor's own message and the payload."""

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_status", "status", "system"),)

    id: int | None = Field(default=None, primary_key=True)
    record_id: str | None = Field(default=None, max_length=40)
    system: str = Field(max_length=64)
    direction: str = Field(max_length=16)  # inbound | outbound
    op: str = Field(max_length=16)
    external_id: str | None = Field(default=None, max_length=128)
    payload: Any = Field(default=None, sa_column=Column(JSON))
    error: str = Field(default="", max_length=4000)
    status: str = Field(default="open", max_length=16)  # open | replayed
    attempts: int = 1
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)


class RefMap(SQLModel, table=True):
    """Reference map: a canonical key (company name, owner e-mail, stage name) <-> vendor id."""

    __tablename__ = "ref_maps"
    __table_args__ = (
        UniqueConstraint("system", "kind", "key", name="uq_ref_maps_system_kind_key"),
        Index("ix_ref_maps_vendor_id", "system", "kind", "vendor_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    system: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    key: str = Field(max_length=255)
    vendor_id: str = Field(max_length=128)
    source: str = Field(default="lookup", max_length=16)  # config | lookup | created
    updated_at: dt.datetime = Field(default_factory=utcnow)


class FirstRun(SQLModel, table=True):
    """The guided first run (README, Quickstart): one row, ``key = "store"``. ``state`` is
    ``review`` (two or more systems held deals at their first read: creates wait for
    ``crmsync match --approve``), ``open`` (nothing to match), ``approved``, ``waived`` or
    ``automatic``. ``deals`` counts what each system held at that first read; ``summary`` is
    what the match found when it was approved."""

    __tablename__ = "first_run"

    key: str = Field(primary_key=True, max_length=16)
    state: str = Field(max_length=16)
    deals: dict[str, Any] = _json()
    summary: dict[str, Any] = _json()
    decided_by: str | None = Field(default=None, max_length=80)
    decided_at: dt.datetime | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)


class SystemState(SQLModel, table=True):
    """What crmsync knows of one configured system beyond its deals (issue 17).

    ``binding``: what the system's links are bound to — type, base URL, account (Truto's
    integrated account, later a HubSpot portal or Salesforce org id); a config that points the
    system elsewhere is caught at start instead of reading every deal as deleted. ``shelved``:
    links set aside when the operator said a new binding is a new account, keyed by binding
    fingerprint, so switching back restores them. ``mapping``: a fingerprint per mapped
    canonical field, so a changed mapping backfills exactly those fields. ``held``: why the
    system takes no part until an operator decides (``binding`` or ``deletes``), with the
    message ``status`` shows. ``removed_at``: a cycle ran without the system in the config;
    when it comes back it is read completely before anything is pushed to it."""

    __tablename__ = "system_states"

    system: str = Field(primary_key=True, max_length=64)
    binding: dict[str, Any] = _json()
    pending_binding: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    shelved: dict[str, Any] = _json()
    mapping: dict[str, Any] = _json()
    held: str | None = Field(default=None, max_length=16)
    held_message: str | None = Field(default=None, max_length=2000)
    held_at: dt.datetime | None = None
    removed_at: dt.datetime | None = None
    updated_at: dt.datetime = Field(default_factory=utcnow)


class PendingDelete(SQLModel, table=True):
    """A delete the mass-delete guard stopped: applied by ``crmsync deletes --confirm``,
    dropped by ``--discard``."""

    __tablename__ = "pending_deletes"
    __table_args__ = (Index("ix_pending_deletes_system", "system"),)

    id: int | None = Field(default=None, primary_key=True)
    system: str = Field(max_length=64)
    link_id: int
    record_id: str = Field(max_length=40)
    external_id: str = Field(max_length=128)
    how: str = Field(default="", max_length=200)
    detected_at: dt.datetime = Field(default_factory=utcnow)
