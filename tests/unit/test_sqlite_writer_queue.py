"""The queue of one process's SQLite writers (adapter/store/engine.py, decision 0044):
threads wait for the write lock in Python, woken when it is freed, instead of polling in
SQLite's busy handler; nothing else changes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from adapter.store import make_engine, read_only, session_factory
from adapter.store.engine import writer_queue


@pytest.fixture
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    made = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    with made.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER, who TEXT)"))
    yield made
    made.dispose()


def test_released_after_commit_rollback_and_error(engine) -> None:  # type: ignore[no-untyped-def]
    queue = writer_queue(engine)
    assert queue is not None and queue.holder is None
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1, 'a')"))
        assert queue.holder is not None  # held while the write transaction is open
    assert queue.holder is None
    with pytest.raises(ZeroDivisionError), engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (2, 'a')"))
        1 / 0  # noqa: B018
    assert queue.holder is None
    factory = session_factory(engine)
    with factory() as session:
        session.execute(text("INSERT INTO t VALUES (3, 'a')"))
        session.rollback()
    assert queue.holder is None
    with factory() as session:  # closed without commit: rolled back on check-in
        session.execute(text("INSERT INTO t VALUES (4, 'a')"))
    assert queue.holder is None
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM t")).scalars().all() == [1]


def test_threads_writing_at_once_all_succeed(engine) -> None:  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []

    def write(who: str) -> None:
        try:
            for n in range(25):
                with engine.begin() as conn:
                    conn.execute(text("INSERT INTO t VALUES (:n, :who)"), {"n": n, "who": who})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 100
    assert writer_queue(engine).holder is None  # type: ignore[union-attr]


def test_a_deferred_read_does_not_wait_for_a_writer(engine) -> None:  # type: ignore[no-untyped-def]
    holding, read_done = threading.Event(), threading.Event()
    release = threading.Event()

    def writer() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1, 'w')"))
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(30)
        with session_factory(engine)() as session:
            read_only(session)
            assert session.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
            read_done.set()
        assert read_done.is_set()
        assert writer_queue(engine).holder is not None  # type: ignore[union-attr]
    finally:
        release.set()
        thread.join()


def test_writers_of_other_processes_queue_on_the_lock_file(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Decision 0102: a write transaction holds ``<database>-writer`` (flock) besides
    SQLite's lock, and waits while another process holds it, taking it within a few
    milliseconds of its release rather than at SQLite's busy handler's next poll."""
    import fcntl
    import os
    import time

    lock_file = tmp_path / "q.db-writer"
    other = os.open(lock_file, os.O_RDWR | os.O_CREAT)  # another process's description
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1, 'a')"))
            with pytest.raises(BlockingIOError):  # held by the write transaction
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released with its commit
        held = 0.3
        threading.Timer(held, fcntl.flock, (other, fcntl.LOCK_UN)).start()
        started = time.monotonic()
        with engine.begin() as conn:  # waits for the other holder
            waited = time.monotonic() - started
            conn.execute(text("INSERT INTO t VALUES (2, 'a')"))
        assert held - 0.05 <= waited < held + 1.0  # (a loaded machine schedules late)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with session_factory(engine)() as session:  # a deferred read takes no lock
            read_only(session)
            assert session.execute(text("SELECT count(*) FROM t")).scalar() == 2
        fcntl.flock(other, fcntl.LOCK_UN)
    finally:
        os.close(other)
