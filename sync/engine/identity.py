"""Identity resolution: is an unlinked incoming deal one we already know?

In order (shared/DESIGN.md §1 and §2.5): an external id the record carries (Ruddr's
``salesforceId`` / ``hubspotId``, a Truto Salesforce deal's own id — both mapped into canonical
``external_ids``) matched against every record's identity keys; then the configured natural key
(e.g. name + company). Identity keys live in ``record_keys`` with a unique (namespace, value).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session

from sync.store import records
from sync.store.models import Record, RecordKey


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


def find_record(
    session: Session, fields: dict[str, Any], natural_key: Sequence[str]
) -> tuple[Record | None, str]:
    """The live record an unlinked deal belongs to, and the reason we think so."""
    for namespace, value in keys_of(fields, natural_key):
        key = records.key_owner(session, namespace, value)
        if key is None:
            continue
        record = records.get(session, key.record_id)
        if record is not None:
            label = (
                "natural key " + "+".join(natural_key)
                if namespace == "natural"
                else (f"{namespace} id {value}")
            )
            return record, f"matched by {label}"
    return None, ""


def index_keys(session: Session, record: Record, natural_key: Sequence[str]) -> None:
    """Make sure every identity key of the record points at it (first come keeps a key)."""
    wanted = keys_of(record.fields, natural_key)
    if not wanted:
        return
    existing = records.keys_among(session, [ns for ns, _ in wanted], [v for _, v in wanted])
    taken = {(k.namespace, k.value) for k in existing}
    for namespace, value in wanted:
        if (namespace, value) not in taken:
            session.add(RecordKey(record_id=record.id, namespace=namespace, value=value))
            taken.add((namespace, value))
