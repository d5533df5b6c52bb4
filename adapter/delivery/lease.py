"""Keeping claimed rows this worker's while a slow batch is being sent."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from adapter.store import outbox

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Extends the lease of rows being sent every third of the lease, so a slow batch is not
    taken over by another worker while this one is still working on it."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        ids: list[int],
        *,
        worker: str,
        lease_seconds: float,
        clock: Callable[[], datetime],
    ) -> None:
        self.factory = factory
        self.ids = ids
        self.worker = worker
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="lease-keeper")

    def __enter__(self) -> LeaseKeeper:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def _run(self) -> None:
        lease = self.lease_seconds
        while not self.stop.wait(lease / 3):
            try:
                with self.factory.begin() as session:
                    outbox.extend_lease(
                        session,
                        self.ids,
                        worker=self.worker,
                        until=self.clock() + timedelta(seconds=lease),
                    )
            except Exception:  # the next round tries again; the lease still has 2/3 left
                log.exception("could not extend the lease of %d rows", len(self.ids))
