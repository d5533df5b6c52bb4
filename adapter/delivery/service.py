"""Building a delivery worker from the consortium file, and running it.

On SQLite only one worker may run against a database file: a second one is refused (an
exclusive lock on ``<database>.worker-lock``, released by the OS even after SIGKILL). The one
worker then knows every ``in-flight`` row is left over from a dead predecessor and takes
them back at once instead of waiting for their leases to expire.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import Consortium
from adapter.delivery.retention import PeriodicPrune, start_periodic
from adapter.delivery.worker import DeliveryWorker, WorkerOptions
from adapter.errors import ConfigError
from adapter.settings import Settings
from adapter.store import outbox

log = logging.getLogger(__name__)


def build_worker(
    consortium: Consortium,
    factory: sessionmaker[Session],
    *,
    only: Iterable[str] | None = None,
    options: WorkerOptions | None = None,
    worker_id: str | None = None,
) -> DeliveryWorker:
    """A worker for the enabled destinations (or the ``only`` ones); ``ConfigError`` for an
    unknown or disabled destination name or bad connector settings."""
    from adapter.outbound.base import build_destination

    configured = {d.id: (f, d) for f, d in consortium.destinations()}
    wanted = list(only) if only else [i for i, (_, d) in configured.items() if d.enabled]
    for name in wanted:
        if name not in configured:
            raise ConfigError(f"no destination {name!r} in the consortium file", key="destinations")
        if not configured[name][1].enabled:
            raise ConfigError(
                f"destination {name!r} is disabled (enabled: false)",
                key=f"destinations.{name}.enabled",
            )
    destinations = {}
    try:
        for name in wanted:
            facility, config = configured[name]
            destinations[name] = build_destination(facility, config, session_factory=factory)
    except Exception:
        for built in destinations.values():
            built.close()
        raise
    policies = {name: configured[name][1].retry for name in wanted}
    return DeliveryWorker(factory, destinations, policies, options=options, worker_id=worker_id)


class SingleWorkerLock:
    """On SQLite: at most one delivery worker per database file (no-op on PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        database = engine.url.database
        self.path: Path | None = None
        if engine.dialect.name == "sqlite" and database not in (None, "", ":memory:"):
            self.path = Path(f"{database}.worker-lock")
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        """True when this process holds the lock (or none is needed)."""
        if self.path is None:
            return True
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: warn only
            log.warning("cannot lock %s here: run a single delivery worker on SQLite", self.path)
            return True
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return True

    def holder(self) -> str | None:
        if self.path is None or not self.path.exists():
            return None
        return self.path.read_text().strip() or None

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None

    @property
    def exclusive(self) -> bool:
        """Whether holding the lock means no other worker can exist (SQLite)."""
        return self.path is not None


def start_exclusive(engine: Engine, factory: sessionmaker[Session]) -> SingleWorkerLock:
    """Take the SQLite worker lock (``ConfigError`` if another worker holds it) and take
    back the rows a dead predecessor left in flight."""
    lock = SingleWorkerLock(engine)
    if not lock.acquire():
        holder = lock.holder()
        raise ConfigError(
            "another delivery worker already runs on this SQLite database"
            + (f" (pid {holder})" if holder else "")
            + "; SQLite takes one worker: stop it, or use PostgreSQL for several"
        )
    if lock.exclusive:
        with factory.begin() as session:
            taken = outbox.release_all(session)
        if taken:
            log.info("took back %d in-flight deliveries left by a stopped worker", taken)
    return lock


class BackgroundDelivery:
    """The worker loop in a background thread (``adapter serve`` with
    ADAPTER_DELIVER_IN_PROCESS=true)."""

    def __init__(
        self, worker: DeliveryWorker, lock: SingleWorkerLock, pruning: PeriodicPrune | None = None
    ) -> None:
        self.worker = worker
        self.lock = lock
        self.pruning = pruning  # the outbox retention's periodic prune (decision 0064)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(
            target=worker.run, args=(self.stop_event,), daemon=True, name="delivery"
        )

    def start(self) -> None:
        log.info(
            "delivery worker %s started in-process for %s",
            self.worker.worker_id,
            ", ".join(self.worker.destinations) or "no destinations",
        )
        self.thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self.pruning is not None:
            self.pruning.stop(timeout)
        self.stop_event.set()
        self.thread.join(timeout)
        self.worker.close()
        self.lock.release()


def start_in_process(
    worker: DeliveryWorker,
    engine: Engine,
    factory: sessionmaker[Session],
    settings: Settings | None = None,
) -> BackgroundDelivery | None:
    """Start the delivery worker of ``adapter serve`` (ADAPTER_DELIVER_IN_PROCESS=true),
    and with ``settings`` the outbox retention's periodic prune; None when another worker
    already holds the SQLite database (it delivers, and prunes, instead)."""
    try:
        lock = start_exclusive(engine, factory)
    except ConfigError as exc:
        log.warning("not delivering in-process: %s", exc.message)
        worker.close()
        return None
    pruning = None
    if settings is not None:
        pruning = start_periodic(factory, settings, holder=worker.worker_id)
    background = BackgroundDelivery(worker, lock, pruning)
    background.start()
    return background
