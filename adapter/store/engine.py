"""Engine, sessions and schema migration."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from adapter.store.sqlite_binds import register_identity_adapters

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BEGIN = "sqlite_begin"  # execution option: "IMMEDIATE" (default) or "DEFERRED"
_QUEUES: weakref.WeakKeyDictionary[Engine, _WriterQueue] = weakref.WeakKeyDictionary()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``: SQLite (WAL, foreign keys) or PostgreSQL via psycopg 3."""
    parsed = make_url(url)
    # statement parameters hold patient data (names, ID numbers, addresses): never put them
    # into exception texts, which end up in logs and tracebacks
    kwargs.setdefault("hide_parameters", True)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, **kwargs)
        _configure_sqlite(engine)
        register_identity_adapters()  # None and bytes bound without a failed look-up (0140)
    else:
        kwargs.setdefault("pool_pre_ping", True)
        engine = create_engine(parsed, **kwargs)
    _savepoints_as_text(engine)
    return engine


_SAVEPOINT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _savepoints_as_text(engine: Engine) -> None:
    """``SAVEPOINT`` / ``RELEASE`` / ``ROLLBACK TO`` sent as the text SQLAlchemy compiles
    them to, without compiling: every savepoint has a name of its own
    (``sa_savepoint_N``), so its statement missed the compiled cache each time, two
    compilations per message in bulk ingest (a savepoint each; decision 0050, amended
    2026-12-05 bulkcpu). On SQLite straight to the driver when nothing observes the
    connection's statements (``fast_insert.driver_execute``, decision 0100), else through
    the connection: the statement events and error wrapping are unchanged. A name that is
    not a plain identifier goes the usual way."""
    dialect = engine.dialect
    plain = (dialect.do_savepoint, dialect.do_release_savepoint, dialect.do_rollback_to_savepoint)

    from adapter.store.fast_insert import driver_execute  # it imports the store's types

    def sent(verb: str, usual: Any) -> Any:
        def send(connection: Any, name: str) -> None:
            if isinstance(name, str) and _SAVEPOINT_NAME.fullmatch(name):
                # on SQLite to the driver itself when nothing observes the statements
                # (decision 0100); through the connection otherwise
                if connection.dialect.name == "sqlite":
                    driver_execute(connection, f"{verb} {name}")
                else:
                    connection.exec_driver_sql(f"{verb} {name}")
            else:
                usual(connection, name)

        return send

    dialect.do_savepoint = sent("SAVEPOINT", plain[0])  # type: ignore[method-assign]
    dialect.do_release_savepoint = sent("RELEASE SAVEPOINT", plain[1])  # type: ignore[method-assign]
    dialect.do_rollback_to_savepoint = sent("ROLLBACK TO SAVEPOINT", plain[2])  # type: ignore[method-assign]


def _configure_sqlite(engine: Engine) -> None:
    # The sqlite3 module's own transaction handling starts transactions late and never
    # for SELECT; let SQLAlchemy issue BEGIN itself so a session is one real transaction.
    # BEGIN IMMEDIATE takes the write lock up front: a deferred transaction that reads
    # first and writes later fails at once with "database is locked" when another writer
    # committed in between (busy_timeout cannot help it). Read-only sessions can ask for
    # a deferred BEGIN with the execution option SQLITE_BEGIN: "DEFERRED" (read_only()).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL
        cursor.close()

    database = engine.url.database
    on_disk = database not in (None, "", ":memory:") and not database.startswith("file:")
    writers = _QUEUES[engine] = _WriterQueue(f"{database}-writer" if on_disk else None)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN, "IMMEDIATE")
        if mode != "DEFERRED":
            writers.enter(connection.connection)
        try:
            connection.exec_driver_sql(f"BEGIN {'DEFERRED' if mode == 'DEFERRED' else 'IMMEDIATE'}")
        except BaseException:
            writers.leave(connection.connection)
            raise

    dialect = engine.dialect
    plain_commit, plain_rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection: Any) -> None:
        try:
            plain_commit(dbapi_connection)
        finally:
            writers.leave(dbapi_connection)

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            plain_rollback(dbapi_connection)
        finally:
            writers.leave(dbapi_connection)

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]

    @event.listens_for(engine.pool, "checkin")
    def _on_checkin(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        writers.leave(dbapi_connection)  # never kept past the connection's use

    @event.listens_for(engine.pool, "invalidate")
    def _on_invalidate(dbapi_connection: Any, _record: Any, _exc: Any) -> None:
        writers.leave(dbapi_connection)


def writer_queue(engine: Engine) -> _WriterQueue | None:
    """The queue of a SQLite engine's writing threads (None for PostgreSQL)."""
    return _QUEUES.get(engine)


class _WriterQueue:
    """The writers of one database queue here for SQLite's write lock (BEGIN IMMEDIATE):
    the threads of this process on a lock, the processes on a lock file beside the
    database (``<database>-writer``, ``flock``).

    Waiting inside SQLite, a writer sleeps in steps of up to 100 ms (its busy handler polls)
    and is not woken when the lock is freed: four ``POST /ingest`` clients on one server got
    half the rate of one (decision 0044, bench_post_ingest.py), and receipts waiting for a
    drain in another process (``adapter drain --follow``, the server's drain process) lost
    up to 100 ms each time (decision 0102). Here the next thread is woken at once and
    another process's writer within 2 ms. Processes that do not take the lock file (an
    older adapter, the sqlite3 shell) still meet SQLite's own lock and busy timeout; a
    writer that waits here longer than that timeout goes on to SQLite as before, and a
    thread that opens a second write transaction while holding one goes straight to
    SQLite's lock, as before (no new way to hang). Released when the transaction ends
    (commit, rollback) or its connection goes back to the pool, by whichever thread does
    it. A lock file that cannot be opened (a read-only folder) is done without."""

    WAIT_SECONDS = 10.0  # = PRAGMA busy_timeout
    POLL_SECONDS = 0.002  # longest sleep between two tries of the lock file

    def __init__(self, path: str | None = None) -> None:
        self.lock = threading.Lock()
        self.holder: int | None = None  # id() of the DBAPI connection holding the lock
        self.owner: int | None = None  # the thread that took it
        self.path = path
        self._file: int | None = None  # this process's descriptor of the lock file
        self._pid = 0  # the process that opened it (a forked child opens its own)
        self._filed = False  # the lock file is held (by the holder)

    @staticmethod
    def _key(connection: Any) -> int:
        return id(getattr(connection, "dbapi_connection", None) or connection)

    def enter(self, connection: Any) -> None:
        if self.owner == threading.get_ident():
            return  # a second write transaction of the holding thread: SQLite decides
        started = time.monotonic()
        if self.lock.acquire(timeout=self.WAIT_SECONDS):
            self.holder, self.owner = self._key(connection), threading.get_ident()
            self._take_file(started + self.WAIT_SECONDS)

    def leave(self, connection: Any) -> None:
        if self.holder is not None and self.holder == self._key(connection):
            if self._filed:
                self._filed = False
                fcntl.flock(self._file, fcntl.LOCK_UN)  # type: ignore[arg-type]
            self.holder = self.owner = None
            self.lock.release()

    def _take_file(self, deadline: float) -> None:
        """The lock file, by the thread holding ``lock``; given up at ``deadline``."""
        if self.path is None:
            return
        if self._file is None or self._pid != os.getpid():
            try:  # a descriptor of this process's own: one inherited shares its lock
                self._file = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                log.warning("SQLite writers: no lock file %s (%s)", self.path, exc.strerror)
                self.path = None
                return
            self._pid = os.getpid()
        pause = 0.0002
        while True:
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return  # SQLite's busy timeout decides, as before
                time.sleep(pause)
                pause = min(pause * 2, self.POLL_SECONDS)
                continue
            self._filed = True
            return


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (expire_on_commit=False)."""
    return sessionmaker(engine, expire_on_commit=False)


def read_only(session: Session) -> Session:
    """Mark a fresh session as reading only: on SQLite it then does not take the write
    lock (no effect on PostgreSQL). Call before the first query."""
    session.connection(execution_options={SQLITE_BEGIN: "DEFERRED"})
    return session


def alembic_config() -> Config:
    """Alembic configuration pointing at the packaged migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


@contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """One connection in one transaction for running migrations.

    On SQLite the foreign keys are off while it runs, as SQLite's own procedure for changing
    a table asks: a migration that copies a table (create, copy, ``DROP TABLE``, rename)
    would otherwise have the drop cascade to the rows that refer to the old table (0030's
    copy of the outbox deleted every ``delivery_attempt`` row so). The pragma has no effect
    inside a transaction, so it is set before the BEGIN; before the commit, a violation the
    migrations added (one not there before) aborts them."""
    with engine.connect() as connection:
        sqlite = engine.dialect.name == "sqlite"
        raw = connection.connection.dbapi_connection
        if sqlite and raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                before = _foreign_key_violations(connection) if sqlite else set()
                yield connection
                if sqlite:
                    added = _foreign_key_violations(connection) - before
                    if added:
                        tables = sorted({table for table, *_ in added})
                        raise RuntimeError(
                            f"the migration left {len(added)} rows whose foreign key finds no "
                            f"row (tables {', '.join(tables)}); nothing was changed"
                        )
        finally:
            if sqlite and raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


def _foreign_key_violations(connection: Connection) -> set[tuple[Any, ...]]:
    return {tuple(r) for r in connection.exec_driver_sql("PRAGMA foreign_key_check")}


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (alembic upgrade), on one connection of ``engine``."""
    config = alembic_config()
    with migration_connection(engine) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    # a migration may have rebuilt an interning table (0026's downgrade drops search_param,
    # its upgrade numbers the rows again): ids this engine cached may no longer hold
    from adapter.store.interning import forget_all  # interning imports this module

    forget_all(engine)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to ``revision`` (alembic downgrade), as ``migrate`` goes up."""
    config = alembic_config()
    with migration_connection(engine) as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
    from adapter.store.interning import forget_all

    forget_all(engine)
