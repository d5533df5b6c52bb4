"""The delivery worker: claim due outbox rows, send them, record what happened.

One pass for one destination (``process``):

1. ask the breaker (``send``, ``probe`` = one item, or ``wait``) and claim due rows, in
   one short transaction;
2. read the current bodies and send them through the destination, outside any
   transaction, while a helper thread extends the rows' lease;
3. in a second transaction, record an attempt per row and move it on: delivered (with the
   older pending rows of the same resource: coalesced), rescheduled with the destination's
   retry policy, or dead; then count the batch into the breaker.

The decisions of step 3 are in :mod:`adapter.delivery.settlement`, the lease keeping of
step 2 in :mod:`adapter.delivery.lease`, the SQL in the outbox repository
(:mod:`adapter.store.outbox`).

A worker killed between 1 and 3 leaves ``in-flight`` rows whose lease runs out; another
worker (or this one restarted) sends them again. Destinations receive PUTs on deterministic
ids, so a resend updates, it never duplicates.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from adapter import audit
from adapter.consortium import RetryPolicy
from adapter.credentials import destination_secrets, redact_credentials
from adapter.delivery import breaker as breakers
from adapter.delivery import settlement
from adapter.delivery.breaker import BreakerConfig, Tally
from adapter.delivery.lease import LeaseKeeper
from adapter.delivery.policy import Schedule
from adapter.errors import DeliveryError, FatalDeliveryError
from adapter.identity import keys_of
from adapter.outbound.base import DeliveryItem, Destination, ItemResult
from adapter.store import care, outbox
from adapter.store.outbox import OutboxRow, Settlement

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_worker_id() -> str:
    """``host:pid:random``: names the worker in leases and attempt rows."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(slots=True)
class BatchReport:
    destination: str
    admission: str = "send"  # send | probe | wait
    claimed: int = 0
    tally: Tally = field(default_factory=Tally)
    breaker: str | None = None
    next_due: datetime | None = None  # nothing claimed: when a waiting row falls due


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    batch_size: int = 20
    lease_seconds: float = 120.0  # an in-flight row is another worker's to take after this
    # Idle waits (nothing claimed): the first is ``idle_first_seconds``, each next one
    # twice as long, up to ``idle_max_seconds`` on PostgreSQL while the worker listens for
    # queued rows (LISTEN/NOTIFY wakes it at once), else up to ``poll_seconds`` (SQLite, a
    # paused or open destination, the listener reconnecting); never past the time the next
    # retry or lease expiry of the destination falls due; each jittered (x 0.5-1).
    poll_seconds: float = 1.0
    idle_first_seconds: float = 0.05
    idle_max_seconds: float = 30.0
    breaker: BreakerConfig = field(default_factory=BreakerConfig)


def _unsendable(
    session: Session,
    rows: list[OutboxRow],
    bodies: Mapping[tuple[str, str], tuple[int, bool, dict[str, Any]]],
    now: datetime,
) -> list[Settlement]:
    """Claimed rows settled without sending: the resource is gone (``local``), or the row was
    routed by a facility's care of a person and that care has ended or was revoked since
    (``withdrawn``: deliveries stop within one worker cycle)."""
    out: list[Settlement] = []
    for row in rows:
        found = bodies.get((row.resource_type, row.resource_id))
        if found is None or found[1]:
            gone = "deleted" if found else "no longer stored"
            error = f"{row.resource_type}/{row.resource_id} is {gone}; nothing to send"
            out.append(Settlement(row, "dead", now, cause="local", error=error))
        elif row.care_facility and row.person_id:
            persons = keys_of(session, row.person_id)
            if not care.is_caring(session, persons, row.care_facility, now):
                error = (
                    f"withdrawn: {row.care_facility} no longer cares for person "
                    f"{row.person_id} (routed for: {row.reason})"
                )
                out.append(Settlement(row, "dead", now, cause="withdrawn", error=error))
    return out


def failed_requests(results: list[ItemResult]) -> tuple[int, float | None]:
    """How many requests the retriable failures went out in, and the longest Retry-After
    among them (None unless each one said). Rows failed by one request (a Bundle, a batch
    the connector gave up as a whole) share one error object: that is one failure."""
    errors: dict[int, DeliveryError | None] = {}
    for n, result in enumerate(results):
        if result.ok or result.held or isinstance(result.error, FatalDeliveryError):
            continue
        key = id(result.error) if result.error is not None else -1 - n
        errors.setdefault(key, result.error)
    waits = [e.retry_after if e is not None else None for e in errors.values()]
    if not waits or any(w is None for w in waits):
        return len(errors), None
    return len(errors), max(w for w in waits if w is not None)


class DeliveryWorker:
    """Delivers the outbox of some destinations; safe to run in several processes and hosts
    on PostgreSQL (one process on SQLite)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        destinations: Mapping[str, Destination],
        policies: Mapping[str, RetryPolicy],
        *,
        worker_id: str | None = None,
        options: WorkerOptions | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.factory = factory
        self.destinations = dict(destinations)
        self.schedules = {d: Schedule(policies.get(d) or RetryPolicy()) for d in destinations}
        self.worker_id = worker_id or new_worker_id()
        self.options = options or WorkerOptions()
        self.clock = clock
        self._listener: outbox.Listener | None = None
        self._jitter = random.Random()

    # -- one batch ----------------------------------------------------------------------------
    def process(self, destination_id: str) -> BatchReport:
        """One batch for one destination (nothing when the breaker says wait)."""
        destination = self.destinations[destination_id]
        report = BatchReport(destination_id)
        options = self.options
        now = self.clock()
        with self.factory.begin() as session:
            report.admission = breakers.admit(
                session, destination_id, worker=self.worker_id, now=now, config=options.breaker
            )
            if report.admission == "wait":
                return report
            limit = 1 if report.admission == "probe" else options.batch_size
            # an ordered destination (one transaction Bundle) takes whole patient queues,
            # a probe or any other destination at most each patient's head (decision 0070)
            take = (
                outbox.claim_queues
                if report.admission == "send" and getattr(destination, "ordered", False)
                else outbox.claim
            )
            rows = take(
                session,
                destination=destination_id,
                worker=self.worker_id,
                now=now,
                lease_seconds=options.lease_seconds,
                limit=limit,
            )
            bodies = outbox.current_bodies(session, rows)
            settlements = _unsendable(session, rows, bodies, now)
            left = {s.row.id for s in settlements}
            if not rows:
                report.next_due = outbox.next_due(session, destination=destination_id, now=now)
            # last: it locks the destination's row (its sequence counter) until the commit
            numbers = outbox.number(
                session,
                destination_id,
                [r.id for r in rows if r.id not in left],
                known={r.id: r.sequence for r in rows},
            )
        report.claimed = len(rows)
        if not rows:
            if report.admission == "probe":
                report.breaker = self._probe_by_check(destination)
            return report

        items = [
            DeliveryItem(
                outbox_id=row.id,
                destination=destination_id,
                resource_type=row.resource_type,
                resource_id=row.resource_id,
                version_id=row.version_id,
                resource=bodies[(row.resource_type, row.resource_id)][2],
                patient_key=row.patient_key,
                message_id=row.message_id,
                sequence=numbers.get(row.id),
                order_key=row.order_key,
            )
            for row in rows
            if row.id not in left
        ]
        versions = {i.outbox_id: int(bodies[(i.resource_type, i.resource_id)][0]) for i in items}
        by_id = {row.id: row for row in rows}

        started = self.clock()
        held: list[int] = []  # not sent: behind a retriable failure of their patient
        if items:
            keeper = LeaseKeeper(
                self.factory,
                [i.outbox_id for i in items],
                worker=self.worker_id,
                lease_seconds=options.lease_seconds,
                clock=self.clock,
            )
            with keeper:
                results, elapsed_ms = self._send(destination, items)
            finished = self.clock()
            schedule = self.schedules[destination_id]
            # answers are stored and shown: what the destination echoes of our credentials
            # (and their current values, e.g. a fresh OAuth2 token) is taken out first
            secrets = destination_secrets(destination)
            report.tally.failed_requests, report.tally.retry_after = failed_requests(results)
            for result in results:
                if result.held:
                    held.append(result.outbox_id)
                    continue
                row = by_id[result.outbox_id]
                settlements.append(
                    settlement.decide(
                        row,
                        result,
                        schedule,
                        started=started,
                        finished=finished,
                        sent_version=versions[row.id],
                        duration_ms=result.duration_ms or elapsed_ms / len(items),
                        secrets=secrets,
                    )
                )

        last_error = None
        with self.factory.begin() as session:
            # the batch's outcomes in a few set-based statements (decision 0040)
            settled = outbox.settle_many(session, settlements, worker=self.worker_id)
            # back to the queue untouched (no attempt): they go after the row they wait for
            outbox.release(session, held, worker=self.worker_id)
            for s in settlements:
                if s.row.id not in settled:
                    log.warning(
                        "outbox %d: the lease ran out during the send; another worker has it now",
                        s.row.id,
                    )
                settlement.count(report.tally, s)
                if s.outcome != "delivered" and s.cause != "local":
                    last_error = s.error
            # one delivered record per message and patient of the batch (decision 0065)
            events = settlement.audit_events(settlements, worker=self.worker_id, sequences=numbers)
            for event in events:
                audit.record(event, session=session)
            delivered = [s for s in settlements if s.outcome == "delivered"]
            coalesced = outbox.settle_coalesced_many(session, delivered, worker=self.worker_id)
            report.tally.delivered += coalesced
            report.tally.coalesced += coalesced
        # the breaker and totals: the destination's one shared row, in a transaction of its
        # own so that it is locked for one statement (not for the settlements and the audit
        # chain's write). A worker killed between the two loses this batch's count in the
        # running totals and the breaker, never a row's state; so the commit need not wait
        # for the disk either (PostgreSQL: synchronous_commit off for this one transaction).
        with self.factory.begin() as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("SET LOCAL synchronous_commit = off"))
            report.breaker = breakers.record(
                session,
                destination_id,
                now=self.clock(),
                config=options.breaker,
                tally=report.tally,
                error=last_error,
            )
        self._log(report, settlements)
        return report

    def _send(
        self, destination: Destination, items: list[DeliveryItem]
    ) -> tuple[list[ItemResult], float]:
        started = time.perf_counter()
        try:
            results = destination.send(items)
        except DeliveryError as exc:  # the whole batch failed the same way
            results = [ItemResult(i.outbox_id, False, exc, exc.status) for i in items]
        except Exception as exc:  # a connector bug must not lose the batch: try again later
            log.exception("destination %s: send raised", destination.id)
            error = DeliveryError(f"send raised {type(exc).__name__}")
            results = [ItemResult(i.outbox_id, False, error) for i in items]
        elapsed_ms = (time.perf_counter() - started) * 1000
        # one result per item: the first one a connector gave, a retry for any it skipped
        first: dict[int, ItemResult] = {}
        for result in results:
            first.setdefault(result.outbox_id, result)
        return [
            first.get(i.outbox_id)
            or ItemResult(i.outbox_id, False, DeliveryError("the destination returned no result"))
            for i in items
        ], elapsed_ms

    def _probe_by_check(self, destination: Destination) -> str:
        try:
            check = destination.check()
            reachable = check.reachable
            error = redact_credentials(check.error, destination_secrets(destination))
        except Exception as exc:  # a failing check is a finding
            reachable, error = False, type(exc).__name__
        with self.factory.begin() as session:
            state = breakers.record_probe_check(
                session,
                destination.id,
                now=self.clock(),
                config=self.options.breaker,
                reachable=reachable,
                error=error,
            )
        log.info("destination %s: probe by check -> breaker %s", destination.id, state)
        return state

    def _log(self, report: BatchReport, settlements: list[Settlement]) -> None:
        t = report.tally
        log.info(
            "destination %s: %d claimed, %d delivered (%d coalesced), %d retry, %d dead; "
            "breaker %s",
            report.destination,
            report.claimed,
            t.delivered,
            t.coalesced,
            t.retried,
            t.dead,
            report.breaker,
        )
        for s in settlements:
            if s.outcome == "dead":
                log.warning(
                    "outbox %d -> %s: dead letter (%s)", s.row.id, report.destination, s.cause
                )

    # -- loops ----------------------------------------------------------------------------------
    def drain(
        self, destinations: Iterable[str] | None = None, *, max_batches: int | None = None
    ) -> list[BatchReport]:
        """Process batches until nothing is due in any of ``destinations`` (``--once``)."""
        chosen = list(destinations or self.destinations)
        reports: list[BatchReport] = []
        while True:
            progressed = False
            for destination_id in chosen:
                report = self.process(destination_id)
                if report.claimed:
                    reports.append(report)
                    progressed = True
                if max_batches is not None and len(reports) >= max_batches:
                    return reports
            if not progressed:
                return reports

    def run(self, stop: threading.Event, destinations: Iterable[str] | None = None) -> None:
        """Until ``stop`` is set: one thread per destination, so that a slow hospital holds up
        only its own queue. On PostgreSQL a listener thread wakes a destination's idle
        thread when rows are queued for it (``outbox.Listener``)."""
        chosen = list(destinations or self.destinations)
        wakes = {d: threading.Event() for d in chosen}

        def wake(destination: str | None) -> None:
            for name, event in wakes.items():
                if destination is None or destination == name:
                    event.set()

        engine = self.factory.kw.get("bind")
        if engine is not None and outbox.Listener.available(engine):
            self._listener = outbox.Listener(engine, wake, stop).start()
        threads = [
            threading.Thread(
                target=self._loop, args=(d, stop, wakes[d]), daemon=True, name=f"deliver-{d}"
            )
            for d in chosen
        ]
        # ``stop`` ends the idle waits at once
        threading.Thread(
            target=lambda: (stop.wait(), wake(None)), daemon=True, name="deliver-stop"
        ).start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if self._listener is not None:
            self._listener.join(5.0)
            self._listener = None

    def _loop(
        self, destination_id: str, stop: threading.Event, wake: threading.Event | None = None
    ) -> None:
        wake = wake or threading.Event()
        pause = self.options.poll_seconds
        idle = 0  # passes in a row that claimed nothing
        while not stop.is_set():
            wake.clear()  # a notification from now on ends the coming wait
            try:
                report = self.process(destination_id)
                pause = self.options.poll_seconds
            except Exception:  # database down, a bug: log, wait, try again
                log.exception("destination %s: delivery pass failed", destination_id)
                stop.wait(pause)
                pause = min(pause * 2, 60.0)
                continue
            if report.claimed:
                idle = 0
                continue
            wait = self.idle_wait(report, idle)
            idle += 1
            if wait > 0:
                wake.wait(wait)

    def idle_wait(self, report: BatchReport, idle: int) -> float:
        """Seconds to wait after a pass that claimed nothing, the ``idle``-th in a row (see
        ``WorkerOptions``)."""
        options = self.options
        listening = self._listener is not None and self._listener.listening
        cap = (
            options.idle_max_seconds
            if listening and report.admission == "send"
            else options.poll_seconds
        )
        wait = min(cap, options.idle_first_seconds * 2 ** min(idle, 30))
        wait *= self._jitter.uniform(0.5, 1.0)
        if report.next_due is not None:
            until = (report.next_due - self.clock()).total_seconds()
            if until < wait:  # a retry or an expired lease is due before: be there
                wait = max(until, 0.0) + self._jitter.uniform(0.0, 0.02)
        return wait

    def close(self) -> None:
        for destination in self.destinations.values():
            try:
                destination.close()
            except Exception:  # closing is best effort
                log.exception("destination %s: close failed", destination.id)
