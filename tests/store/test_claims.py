"""``claims.lock_due`` picks the due rows of a system in queue order whatever their status:
unsent and due, or in flight under a claim that ran out — read from the index a status at a
time on SQLite (no scan of the system's settled rows)."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from sync.store import bulk, claims
from sync.store.db import make_engine, upgrade
from sync.store.models import Outbox, Record

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
STATUSES = ("pending", "retry", "parked", "in_flight", "done", "dead")


def rows(n: int) -> list[dict[str, Any]]:
    rng = random.Random(5)
    out = []
    for i in range(n):
        status = rng.choice(STATUSES)
        out.append(
            {
                "record_id": f"rec_{i % 7}",
                "system": rng.choice(("close", "parsalink")),
                "op": rng.choice(("create", "update")),
                "status": status,
                "idempotency_key": f"key_{i}",
                # ties on purpose: the id decides among rows due at the same moment
                "next_attempt_at": NOW + dt.timedelta(seconds=rng.randint(-5, 2)),
                "claimed_until": NOW + dt.timedelta(seconds=rng.randint(-3, 3))
                if status == "in_flight"
                else None,
            }
        )
    return out


def expected(stored: list[dict[str, Any]], limit: int, creates: bool) -> list[int]:
    due = [
        row
        for row in stored
        if row["system"] == "close"
        and (creates or row["op"] != "create")
        and (
            (row["status"] in ("pending", "retry", "parked") and row["next_attempt_at"] <= NOW)
            or (row["status"] == "in_flight" and row["claimed_until"] < NOW)
        )
    ]
    due.sort(key=lambda row: (row["next_attempt_at"], row["id"]))
    return [row["id"] for row in due[:limit]]


@pytest.mark.parametrize("creates", [True, False])
@pytest.mark.parametrize("limit", [1, 7, 500])
def test_due_rows_come_in_queue_order_across_statuses(
    tmp_path: Path, limit: int, creates: bool
) -> None:
    """Among 300 rows of every status, two systems and both ops, ``lock_due`` returns the
    first ``limit`` rows of the system that are due — by ``next_attempt_at``, then id — and
    leaves creates out when told to."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    engine = make_engine(url)
    stored = rows(300)
    records = [{"id": f"rec_{i}", "fields": {}, "provenance": {}, "held": {}} for i in range(7)]
    with Session(engine) as session:
        bulk.insert_rows(session, Record.__table__, records)  # type: ignore[attr-defined]
        bulk.insert_rows(session, Outbox.__table__, stored)  # type: ignore[attr-defined]
        session.commit()
    for row_id, row in enumerate(stored, start=1):
        row["id"] = row_id
    with Session(engine) as session:
        found = claims.lock_due(session, "close", NOW, limit, creates=creates)
    assert found == expected(stored, limit, creates)
    engine.dispose()
