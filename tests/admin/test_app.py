"""The admin API's authentication and conflict resolution, on a SQLite store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from sync.admin.app import create_app
from sync.config import parse_config
from sync.engine.context import Engine
from sync.runtime.backend import AdminBackend
from sync.store.db import make_engine, upgrade
from sync.store.models import Conflict, DeadLetter, Link, Outbox, Record

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "t0ken-for-tests-0123456789"


@pytest.fixture
def engine(sqlite_url: str) -> Engine:
    upgrade(sqlite_url)
    config = parse_config((ROOT / "config.yaml").read_text(), env={})
    return Engine.from_config(config, make_engine(sqlite_url))


@pytest.fixture
def client(engine: Engine) -> TestClient:
    calls: list[Any] = []
    backend = AdminBackend(engine, lambda s, f: calls.append((s, f)) or "run_x", calls.append)
    return TestClient(create_app(backend, token=TOKEN))


def test_refuses_to_build_without_a_token(engine: Engine) -> None:
    """No token configured: the app is never built."""
    backend = AdminBackend(engine, lambda s, f: "", lambda s: None)
    with pytest.raises(ValueError, match="CRMSYNC_ADMIN_TOKEN"):
        create_app(backend, token="  ")


def test_missing_or_wrong_token_is_401_and_health_is_open(client: TestClient) -> None:
    """Every route but /health needs the exact bearer token."""
    assert client.get("/health").status_code == 200
    assert client.get("/status").status_code == 401
    assert client.get("/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/status", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    ok = client.get("/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    assert {row["system"] for row in ok.json()["systems"]} >= {"ruddr", "close"}


def test_resolving_a_conflict_sets_the_field_unholds_it_and_enqueues_pushes(
    client: TestClient, engine: Engine
) -> None:
    """Taking Close's value writes it, clears the hold and queues a push to Ruddr."""
    with engine.session() as session:
        session.add(
            Record(id="rec_1", fields={"name": "Deal", "description": "ours"}, held=["description"])
        )
        session.commit()
        session.add(
            Link(
                record_id="rec_1",
                system="ruddr",
                external_id="r1",
                shadow={"name": "Deal", "description": "ours"},
            )
        )
        session.add(
            Link(
                record_id="rec_1",
                system="close",
                external_id="c1",
                shadow={"name": "Deal", "description": "theirs"},
            )
        )
        session.add(
            Conflict(
                id=7,
                record_id="rec_1",
                field="description",
                policy="manual",
                ours="ours",
                ours_system="ruddr",
                theirs="theirs",
                theirs_system="close",
            )
        )
        session.commit()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    answer = client.post("/conflicts/7/resolve", json={"take": "close"}, headers=auth)
    assert answer.status_code == 200, answer.text
    assert "ruddr" in answer.json()["queued"]
    with engine.session() as session:
        record = session.get(Record, "rec_1")
        assert record is not None
        assert record.fields["description"] == "theirs" and record.held == []
        assert session.get(Conflict, 7).status == "resolved"  # type: ignore[union-attr]
        queued = {o.system: o.op for o in session.exec(select(Outbox)).all()}
        assert queued["ruddr"] == "update" and "close" not in queued
    again = client.post("/conflicts/7/resolve", json={"take": "close"}, headers=auth)
    assert again.status_code == 409


def test_reconcile_is_started_through_the_backend_and_checks_the_system(engine: Engine) -> None:
    """POST /reconcile hands the system to the backend and answers 202 with its run id; an
    unknown system is a 400 naming it; a backend that cannot reconcile answers 501."""
    started: list[str | None] = []
    backend = AdminBackend(
        engine,
        lambda s, f: "run_x",
        lambda s: None,
        reconcile=lambda s: started.append(s) or "run_rec",
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    client = TestClient(create_app(backend, token=TOKEN))
    answer = client.post("/reconcile", json={"system": "close"}, headers=auth)
    assert answer.status_code == 202 and answer.json()["run_id"] == "run_rec"
    assert started == ["close"]
    bad = client.post("/reconcile", json={"system": "nope"}, headers=auth)
    assert bad.status_code == 400 and "nope" in bad.json()["error"]
    plain = TestClient(create_app(AdminBackend(engine, lambda s, f: "", lambda s: None), TOKEN))
    assert plain.post("/reconcile", json={}, headers=auth).status_code == 501


def test_replaying_an_inbound_dead_letter_asks_the_backend_for_a_reread(engine: Engine) -> None:
    """POST /deadletters/{id}/replay replays through sync.engine.operations (the CLI's code
    too) and re-reads the system an inbound letter names, through the backend; an outbound
    letter re-enqueues its push and re-reads nothing."""
    rereads: list[str] = []
    backend = AdminBackend(engine, lambda s, f: "", rereads.append)
    client = TestClient(create_app(backend, token=TOKEN))
    with engine.session() as session:
        session.add(Record(id="rec_1", fields={"name": "Deal"}))
        inbound = DeadLetter(system="close", direction="inbound", op="update", error="bad")
        outbound = DeadLetter(
            system="ruddr", direction="outbound", op="update", error="bad", record_id="rec_1"
        )
        session.add(inbound)
        session.add(outbound)
        session.commit()
        ids = (inbound.id, outbound.id)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    first = client.post(f"/deadletters/{ids[0]}/replay", headers=auth)
    assert first.status_code == 200, first.text
    assert first.json()["reread"] == "close"
    second = client.post(f"/deadletters/{ids[1]}/replay", headers=auth)
    assert second.status_code == 200, second.text
    assert second.json()["reread"] is None
    assert rereads == ["close"]
    again = client.post(f"/deadletters/{ids[0]}/replay", headers=auth)
    assert again.status_code == 409
    with engine.session() as session:
        assert [o.system for o in session.exec(select(Outbox)).all()] == ["ruddr"]


def test_replaying_every_dead_letter_rereads_each_system_once(engine: Engine) -> None:
    """POST /deadletters/replay replays every open letter; two inbound letters of one system
    ask for one re-read of it."""
    rereads: list[str] = []
    client = TestClient(create_app(AdminBackend(engine, lambda s, f: "", rereads.append), TOKEN))
    with engine.session() as session:
        for _ in range(2):
            session.add(DeadLetter(system="close", direction="inbound", op="update", error="x"))
        session.commit()
    answer = client.post("/deadletters/replay", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["replayed"]) == 2 and answer.json()["rereads"] == ["close"]
    assert rereads == ["close"]


def test_the_decisions_refuse_what_cannot_be_decided(client: TestClient) -> None:
    """Approving before every system was read is 409; an unknown system is 400; a choice
    other than confirm/discard is 404; rebinding a system bound as configured says so."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    early = client.post("/first-run/approve", json={}, headers=auth)
    assert early.status_code == 409 and "not every system" in early.json()["error"]
    assert client.post("/systems/nowhere/rebind", headers=auth).status_code == 400
    assert client.post("/systems/close/deletes/maybe", headers=auth).status_code == 404
    bad = client.post("/first-run/approve", json={"settle": "no"}, headers=auth)
    assert bad.status_code == 400
    done = client.post("/systems/close/rebind", json={}, headers=auth)
    assert done.status_code == 200 and done.json()["system"] == "close"
    waiting = client.get("/waiting", headers=auth).json()
    assert waiting["first_run"]["state"] == "unread" and waiting["held_systems"] == []
