"""`crmsync deletes` and `crmsync rebind`: what an operator types when a system is held."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlmodel import Session

from sync.store.db import make_engine
from sync.store.models import Link, PendingDelete, Record, Run, SystemState

if TYPE_CHECKING:
    from tests.cli.conftest import CliStore, MakeStore

pytestmark = pytest.mark.usefixtures("restore_logging")

TRUTO = """\
  truto:
    type: truto
    base_url: http://127.0.0.1:8714/unified/crm
    credentials: {token: "${TRUTO_TOKEN}"}
    options: {integrated_account_id: acct-new}
"""
ENV = {"TRUTO_TOKEN": "t", "CRMSYNC_LOG_FORMAT": "json"}


@pytest.fixture
def store(cli_store: MakeStore) -> CliStore:
    return cli_store(TRUTO, ENV)


def _seed(url: str, held: str) -> None:
    with Session(make_engine(url)) as session:
        session.add(Record(id="rec_1", fields={"name": "A"}))
        session.flush()
        link = Link(record_id="rec_1", system="truto", external_id="x1")
        session.add(link)
        session.flush()
        binding = {"type": "truto", "base_url": "http://127.0.0.1:8714/unified/crm"}
        session.add(
            SystemState(
                system="truto",
                binding={**binding, "account": "acct-old"},
                held=held,
                held_message="truto is held for a test",
            )
        )
        if held == "deletes":
            assert link.id is not None
            session.add(
                PendingDelete(system="truto", link_id=link.id, record_id="rec_1", external_id="x1")
            )
        session.commit()


def test_deletes_lists_then_discard_releases(store: CliStore) -> None:
    """`deletes` lists held deletes (exit 2); `--discard` drops them, keeps the link, releases
    the system; `status` no longer shows it held."""
    url = store.url
    _seed(url, "deletes")
    code, out = store.run("deletes")
    assert code == 2 and "x1" in out and "truto is held for a test" in out
    code, out = store.run("status")
    assert code == 0 and "HELD truto" in out
    code, out = store.run("deletes", "--discard", "truto")
    assert code == 0 and "1 held deletes discarded" in out
    code, out = store.run("deletes")
    assert code == 0 and "No held deletes" in out
    code, out = store.run("status")
    assert "HELD" not in out
    with Session(make_engine(url)) as session:
        link = session.get(Link, 1)
        assert link is not None and link.deleted_at is None


def test_deletes_confirm_applies_the_policy(store: CliStore) -> None:
    """`--confirm` applies the held deletes with the system's policy (unlink: tombstoned)."""
    url = store.url
    _seed(url, "deletes")
    code, out = store.run("deletes", "--confirm", "truto")
    assert code == 0 and "1 held deletes applied" in out
    with Session(make_engine(url)) as session:
        link = session.get(Link, 1)
        assert link is not None and link.deleted_at is not None


def test_rebind_keeps_links_and_releases(store: CliStore) -> None:
    """`rebind truto`: the same account moved — the configured binding is adopted, links kept;
    an unknown system is a clear error."""
    url = store.url
    _seed(url, "binding")
    code, out = store.run("rebind", "nowhere")
    assert code == 1 and "unknown system" in out
    code, out = store.run("rebind", "truto")
    assert code == 0 and "links kept" in out
    with Session(make_engine(url)) as session:
        state = session.get(SystemState, "truto")
        assert state is not None and state.held is None
        assert state.binding["account"] == "acct-new"
        assert session.get(Link, 1) is not None


class _FakeCelery:
    """Stands in for the Celery app of the configured broker: records what is enqueued."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[object]]] = []

    def send_task(self, name: str, args: list[object]) -> None:
        self.sent.append((name, args))


@pytest.mark.parametrize(
    ("command", "task", "kind"),
    [
        (["resync", "--system", "truto", "--full"], "crmsync.resync", "resync"),
        (["reconcile", "--system", "truto"], "crmsync.reconcile", "reconcile"),
    ],
)
def test_distributed_resync_and_reconcile_enqueue_a_queued_run(
    store: CliStore,
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    task: str,
    kind: str,
) -> None:
    """With a broker, `resync` and `reconcile` write a queued run and enqueue its task with
    that run id (as the admin API does), printing `KIND RUN enqueued`; nothing runs here."""
    import sync.celery_app

    fake = _FakeCelery()
    monkeypatch.setattr(sync.celery_app, "make_app", lambda url, systems: fake)
    url = store.url
    code, out = store.run(*command, env={"CRMSYNC_BROKER_URL": "redis://127.0.0.1:1/0"})
    assert code == 0, out
    assert len(fake.sent) == 1
    name, args = fake.sent[0]
    run_id = args[-1]
    assert name == task
    assert args[0] == "truto"
    assert out.strip() == f"{kind} {run_id} enqueued"
    with Session(make_engine(url)) as session:
        run = session.get(Run, run_id)
        assert run is not None and (run.kind, run.status, run.system) == (kind, "queued", "truto")
