"""Waking idle delivery workers when there is something to send (PostgreSQL LISTEN/NOTIFY).

Whoever makes rows claimable now (``enqueue_many``, a replay, an operator's resume) calls
``notify`` in its transaction: PostgreSQL delivers the destination's name on the channel
``adapter_outbox`` when that transaction commits (never if it rolls back), once per
destination and transaction. A worker process keeps one connection ``LISTEN``ing
(``Listener``, a thread) and wakes its loop for that destination, so an idle worker can
wait long (no claim every second) and still start within milliseconds of a commit.

The channel is the database's, shared by every schema in it (a test and a production
schema, the test suite's parallel workers): the payload is the schema, a unit separator
(0x1F) and the destination, and a listener wakes only for its own schema's notifications.
A notification is only a hint: a worker that misses one (its connection was down) still
finds the rows at its next pass, at the latest after its longest idle wait; a spurious one
costs one empty claim.
SQLite has no such channel: there the worker polls (``WorkerOptions.poll_seconds``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CHANNEL = "adapter_outbox"
SEPARATOR = "\x1f"  # between the schema and the destination in a notification's payload
RECONNECT_SECONDS = 5.0


def notify(session: Session, destinations: Iterable[str]) -> None:
    """Tell listening workers (at this transaction's commit) that these destinations have
    rows due now. Nothing on SQLite."""
    names = sorted(set(destinations))
    if names and session.get_bind().dialect.name == "postgresql":
        schema = func.coalesce(func.current_schema(), "")
        session.execute(
            select(*(func.pg_notify(CHANNEL, schema.concat(SEPARATOR + name)) for name in names))
        )


def _destination(payload: str, schema: str) -> str | None:
    """The destination of a notification for ``schema``; None for another schema's."""
    owner, separator, name = payload.partition(SEPARATOR)
    return name if separator and owner == schema else None


class Listener:
    """One connection of ``engine`` that LISTENs on the outbox channel in a daemon thread and
    calls ``wake(destination)`` for every notification; ``wake(None)`` once each time it
    starts listening (rows queued while it was not listening are then looked for).
    ``listening`` says whether notifications can arrive now. PostgreSQL only."""

    def __init__(
        self, engine: Engine, wake: Callable[[str | None], None], stop: threading.Event
    ) -> None:
        self.engine = engine
        self.wake = wake
        self.stop = stop
        self.listening = False
        self.thread = threading.Thread(target=self._run, daemon=True, name="outbox-listen")

    @staticmethod
    def available(engine: Engine) -> bool:
        return engine.dialect.name == "postgresql"

    def start(self) -> Listener:
        self.thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def _run(self) -> None:
        while not self.stop.is_set():
            proxy: Any = None
            try:
                proxy = self.engine.raw_connection()
                connection = proxy.driver_connection
                connection.autocommit = True
                found = connection.execute("SELECT coalesce(current_schema(), '')").fetchone()
                schema = found[0] if found else ""
                connection.execute(f"LISTEN {CHANNEL}")
                self.listening = True
                self.wake(None)
                while not self.stop.is_set():
                    for note in connection.notifies(timeout=1.0):
                        destination = _destination(note.payload, schema)
                        if destination:  # another schema's rows are not this worker's
                            self.wake(destination)
            except Exception as exc:  # the database went away: poll until it is back
                if not self.stop.is_set():
                    log.warning(
                        "outbox listener: %s; workers poll until it reconnects",
                        type(exc).__name__,
                    )
            finally:
                self.listening = False
                if proxy is not None:
                    try:
                        proxy.invalidate()  # a connection in autocommit and LISTEN: not reused
                    except Exception:  # closing is best effort
                        log.debug("outbox listener: closing failed", exc_info=True)
            self.stop.wait(RECONNECT_SECONDS)
