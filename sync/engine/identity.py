"""Identity rules: which identity keys a deal has, how a key is described, and indexing the
keys of a stored record.

A deal's identity keys, in the order they are tried (shared/DESIGN.md §1 and §2.5): the external
ids it carries (Ruddr's ``salesforceId`` / ``hubspotId``, a Truto Salesforce deal's own id —
both mapped into canonical ``external_ids``), then the configured natural key (e.g. name +
company). Identity keys live in ``record_keys`` with a unique (namespace, value); the first
record to claim a key keeps it. Applying these rules to a page of captured deals, with the
page's cache of keys and records, is ``engine.capture.identity``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Protocol

from sqlmodel import Session

from sync.store import records
from sync.store.models import Record


def keys_of(fields: dict[str, Any], natural_key: Sequence[str]) -> list[tuple[str, str]]:
    """The identity keys of a canonical record."""
    keys = [
        (str(ns), str(value))
        for ns, value in sorted((fields.get("external_ids") or {}).items())
        if value not in (None, "")
    ]
    if natural_key and all(fields.get(name) not in (None, "") for name in natural_key):
        joined = json.dumps([str(fields[name]).casefold() for name in natural_key])
        keys.append(("natural", hashlib.sha256(joined.encode()).hexdigest()[:40]))
    return keys


def describe_key(namespace: str, value: str, natural_key: Sequence[str]) -> str:
    """How a journal entry names an identity key: ``natural key name+company`` for the
    natural key (its hash says nothing), ``<namespace> id <value>`` for an external id."""
    if namespace == "natural":
        return "natural key " + "+".join(natural_key)
    return f"{namespace} id {value}"


def index_keys(session: Session, record: Record, natural_key: Sequence[str]) -> None:
    """Make sure every identity key of the record points at it (first come keeps a key)."""
    index_keys_of(session, [record], natural_key)


class Identified(Protocol):
    """What indexing reads of a record: a stored ``Record``, or its id and fields alone."""

    @property
    def id(self) -> str: ...

    @property
    def fields(self) -> dict[str, Any]: ...


def index_keys_of(
    session: Session, stored: Sequence[Identified], natural_key: Sequence[str]
) -> None:
    """``index_keys`` for several records: one query for the keys already taken and one
    insert for the new ones, whatever the number of records (in order: the first record to
    want a key keeps it)."""
    wanted = [(record.id, key) for record in stored for key in keys_of(record.fields, natural_key)]
    if not wanted:
        return
    existing = records.keys_among(
        session, sorted({ns for _, (ns, _) in wanted}), sorted({v for _, (_, v) in wanted})
    )
    taken = {(k.namespace, k.value) for k in existing}
    new: list[dict[str, str]] = []
    for record_id, (namespace, value) in wanted:
        if (namespace, value) not in taken:
            new.append({"record_id": record_id, "namespace": namespace, "value": value})
            taken.add((namespace, value))
    if new:
        records.insert_keys(session, new)
