"""The store's writers on one SQLite file queue in order inside the process
(``sync.store.writer``) instead of polling SQLite's lock until its busy timeout runs out."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import sync.store.db as db
from sync.store.db import make_engine
from sync.store.writer import WriterGate


@pytest.fixture
def impatient_sqlite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> sa.Engine:
    """A store whose SQLite gives up on a held write lock after 1 ms."""
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 1)
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE counter (n INTEGER)")
        connection.exec_driver_sql("INSERT INTO counter VALUES (0)")
    return engine


def test_writers_of_one_process_wait_their_turn_however_long_the_holder_takes(
    impatient_sqlite: sa.Engine,
) -> None:
    """Eight threads whose write transactions each hold the lock far longer than SQLite's busy
    timeout all commit: none meets ``database is locked``, no increment is lost."""
    errors: list[Exception] = []

    def work() -> None:
        try:
            for _ in range(10):
                with impatient_sqlite.begin() as connection:
                    n = connection.exec_driver_sql("SELECT n FROM counter").scalar_one()
                    time.sleep(0.003)  # holds the lock 3× the busy timeout
                    connection.exec_driver_sql(f"UPDATE counter SET n = {n + 1}")
        except Exception as exc:  # reported below: threads do not fail the test by themselves
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with impatient_sqlite.connect() as connection:
        assert connection.exec_driver_sql("SELECT n FROM counter").scalar_one() == 80
    impatient_sqlite.dispose()


def test_a_rolled_back_or_failed_transaction_gives_the_turn_back(
    impatient_sqlite: sa.Engine,
) -> None:
    """A write transaction that rolls back (an exception inside it) lets the next writer in."""
    with pytest.raises(ZeroDivisionError), impatient_sqlite.begin() as connection:
        connection.exec_driver_sql("UPDATE counter SET n = 5")
        _ = 1 / 0
    done = threading.Event()

    def write() -> None:
        with impatient_sqlite.begin() as connection:
            connection.exec_driver_sql("UPDATE counter SET n = 7")
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    thread.join(timeout=30)
    assert done.is_set()
    impatient_sqlite.dispose()


def test_a_second_write_transaction_on_the_same_thread_fails_instead_of_hanging(
    impatient_sqlite: sa.Engine,
) -> None:
    """A thread that holds the write lock and begins another write transaction on a second
    connection does not queue behind itself for ever: SQLite refuses it, as before the gate."""
    with impatient_sqlite.begin() as first:
        first.exec_driver_sql("UPDATE counter SET n = 1")
        with (
            pytest.raises(sa.exc.OperationalError, match="locked"),
            impatient_sqlite.begin() as second,
        ):
            second.exec_driver_sql("UPDATE counter SET n = 2")
    impatient_sqlite.dispose()


def test_the_gate_serves_waiters_in_the_order_they_came() -> None:
    """Writers that queue behind a holder get the gate first come, first served."""
    gate = WriterGate()
    assert gate.acquire()
    order: list[int] = []

    def wait_turn(n: int) -> None:
        assert gate.acquire()
        order.append(n)
        gate.release()

    threads = []
    for n in range(5):
        thread = threading.Thread(target=wait_turn, args=(n,))
        thread.start()
        threads.append(thread)
        while gate.waiting() < n + 1:  # this one is queued before the next starts
            time.sleep(0.001)
    gate.release()
    for thread in threads:
        thread.join()
    assert order == [0, 1, 2, 3, 4]
    assert not gate.busy()


def test_a_waiter_that_times_out_leaves_the_queue() -> None:
    """A writer that waited its limit gives up its place: the gate, once free, is free."""
    gate = WriterGate()
    assert gate.acquire()
    assert not gate.acquire(timeout=0.01)
    gate.release()
    assert not gate.busy() and gate.waiting() == 0
