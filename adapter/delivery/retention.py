"""Pruning delivered outbox rows after the retention period (decision 0064): ``adapter
prune`` once, and ``PeriodicPrune`` in the process that runs the delivery worker (``adapter
worker``, ``adapter serve`` with ADAPTER_DELIVER_IN_PROCESS=true).

With several such processes on one PostgreSQL database one of them prunes: the lease row
``outbox-prune`` of ``sync_lease`` (adapter/sync/lease.py) is held by the process that
took it, renewed at every run, and taken over by another once it runs out (its holder
stopped or died). The SQL is the outbox repository's (adapter/store/outbox/prune.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from adapter import audit
from adapter.audit.events import AuditEvent
from adapter.settings import Settings
from adapter.store import outbox
from adapter.sync import lease

log = logging.getLogger(__name__)

LEASE = "outbox-prune"


def cutoff_for(days: int, now: datetime) -> datetime:
    """Rows delivered before this moment are older than ``days``."""
    return now - timedelta(days=days)


@dataclass(slots=True)
class PruneReport:
    rows: int = 0
    attempts: int = 0
    batches: int = 0
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def prune(
    factory: sessionmaker[Session],
    *,
    cutoff: datetime,
    batch: int,
    stop: threading.Event | None = None,
    actor: str = "cli",
) -> PruneReport:
    """Delete the delivered rows settled before ``cutoff``, ``batch`` rows per transaction,
    until none is left (or ``stop`` is set: the process is stopping)."""
    report = PruneReport()
    started = time.perf_counter()
    since = None
    try:
        while not (stop is not None and stop.is_set()):
            with factory.begin() as session:
                done = outbox.prune_batch(session, cutoff, limit=batch, since=since)
            if not done.rows:
                break
            since = done.last
            report.rows += done.rows
            report.attempts += done.attempts
            report.batches += 1
            if done.rows < batch:
                break
    finally:  # the batches committed before a failure are in the audit log too
        report.seconds = time.perf_counter() - started
        if report.rows:
            with factory.begin() as session:
                audit.record(_event(report, cutoff, actor), session=session)
    return report


def _event(report: PruneReport, cutoff: datetime, actor: str) -> AuditEvent:
    return AuditEvent(
        action="delivery.pruned",
        outcome="success",
        actor=actor,
        subject=None,
        correlation_id=None,
        at=datetime.now(UTC),
        detail={
            "rows": report.rows,
            "attempts": report.attempts,
            "delivered_before": cutoff.isoformat(),
        },
    )


class PeriodicPrune:
    """Prunes every ``minutes`` in a background thread while it holds the lease; the first
    run ``first_seconds`` after the start. A failure (the database away) is logged and
    tried again next time."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        days: int,
        minutes: float,
        batch: int,
        holder: str,
        first_seconds: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.factory, self.days, self.batch, self.holder = factory, days, batch, holder
        self.seconds, self.first_seconds, self.clock = minutes * 60, first_seconds, clock
        self.runs = 0  # runs made while holding the lease (tests, logs)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-prune", daemon=True)

    def start(self) -> PeriodicPrune:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        try:
            with self.factory.begin() as session:
                lease.release(session, LEASE, self.holder, None)
        except Exception:  # the database may be gone at shut-down: the lease runs out
            log.exception("outbox prune: could not release the lease")

    def run_once(self) -> PruneReport | None:
        """Take (or renew) the lease and prune; None when another process holds it."""
        now = self.clock()
        # held for three periods: renewed at every run, taken over when its holder is gone
        hold = max(3 * self.seconds, 300.0)
        with self.factory.begin() as session:
            if not lease.take(session, LEASE, self.holder, now.date().isoformat(), hold, now):
                return None
        self.runs += 1
        report = prune(
            self.factory,
            cutoff=cutoff_for(self.days, now),
            batch=self.batch,
            stop=self._stop,
            actor=f"worker:{self.holder}",
        )
        if report.rows:
            log.info(
                "outbox prune: %d delivered rows and %d attempts older than %d days deleted "
                "in %d batches (%.0f rows/s)",
                report.rows,
                report.attempts,
                self.days,
                report.batches,
                report.rows_per_second,
            )
        return report

    def _run(self) -> None:
        wait = self.first_seconds
        while not self._stop.wait(wait):
            wait = self.seconds
            try:
                self.run_once()
            except Exception:  # the database may be down for a while: try again next time
                log.exception("outbox prune failed")


def start_periodic(
    factory: sessionmaker[Session], settings: Settings, *, holder: str
) -> PeriodicPrune | None:
    """The periodic prune of a delivery worker's process; None when the retention is off
    (ADAPTER_OUTBOX_RETENTION_DAYS=0 or keep)."""
    if settings.outbox_retention_days <= 0:
        return None
    return PeriodicPrune(
        factory,
        days=settings.outbox_retention_days,
        minutes=settings.outbox_prune_minutes,
        batch=settings.outbox_prune_batch,
        holder=holder,
    ).start()
