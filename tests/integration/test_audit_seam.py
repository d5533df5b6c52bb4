"""The audit seam (adapter.audit.record): the pipeline and the delivery worker report who
did what, when, with what outcome and which message it belongs to, inside their own
transaction. Nothing keeps the events yet; a test sink listens."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from adapter import audit
from adapter.consortium import load_consortium
from adapter.pipeline.receipt import Receipt
from adapter.runtime import make_pipeline
from adapter.settings import Settings
from tests.integration.delivery_receiver import Receiver
from tests.integration.delivery_support import DEST, Clock, observation, queue, worker

ROOT = Path(__file__).resolve().parents[2]
ORU = ROOT / "fixtures" / "hl7v2" / "oru" / "std-hl7v2" / "two-orders.hl7"
BAD = ROOT / "fixtures" / "hl7v2" / "bad" / "obx14-bad-date.hl7"
MOMENT = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[audit.AuditEvent, Session | None]] = []

    def __call__(self, event: audit.AuditEvent, session: Session | None) -> None:
        self.events.append((event, session))


@pytest.fixture
def sink() -> Iterator[Sink]:
    listener = Sink()
    with audit.listening(listener):
        yield listener


def test_the_pipeline_reports_each_stored_and_quarantined_message(
    settings: Settings, session_factory: sessionmaker[Session], sink: Sink
) -> None:
    pipeline = make_pipeline(settings, load_consortium(settings.config), session_factory)
    stored = pipeline.ingest(ORU.read_bytes(), Receipt("std-hl7v2", "cli", received_at=MOMENT))
    kept = pipeline.ingest(BAD.read_bytes(), Receipt("std-hl7v2", "cli", received_at=MOMENT))
    again = pipeline.ingest(ORU.read_bytes(), Receipt("std-hl7v2", "cli", received_at=MOMENT))
    assert stored.accepted and kept.status == "quarantined" and again.duplicate

    events = [event for event, _ in sink.events]
    stored_as, kept_as = f"InboundMessage/{stored.message_id}", f"InboundMessage/{kept.message_id}"
    assert [(e.action, e.outcome, e.subject) for e in events] == [
        ("message.received", "success", stored_as),
        ("message.translated", "success", stored_as),
        ("message.stored", "success", stored_as),
        ("message.received", "success", kept_as),
        ("message.translated", "failure", kept_as),
        ("message.quarantined", "failure", kept_as),
        ("message.received", "success", stored_as),  # the duplicate, answered as before
    ]
    assert all(e.actor == "source:std-hl7v2" for e in events)
    assert all(e.at == MOMENT for e in events[:-1])
    assert events[-1].detail["duplicate"] == 1
    assert events[2].detail["resources"] == len(stored.resources)
    assert all(session is not None for _, session in sink.events)  # in the transaction
    assert {e.channel for e in events} == {"cli"}  # how each came in

    pipeline.reprocess(kept.message_id, now=MOMENT)
    redone = sink.events[-1][0]
    # the writer gives it the correlation id its receipt was recorded with
    assert (redone.message_id, redone.channel) == (kept.message_id, "reprocess")


def test_the_worker_reports_each_settled_delivery(
    session_factory: sessionmaker[Session], receiver: Receiver, sink: Sink
) -> None:
    ids = queue(session_factory, [observation("a1", "pa", "v1"), observation("b1", "pb", "v1")])
    receiver.rule = lambda t, i, body, n: (503, {}, None) if i == "b1" else None
    w = worker(session_factory, receiver.base_url, clock=Clock())
    w.drain(max_batches=1)

    by_subject = {e.subject: e for e, _ in sink.events}
    delivered, retried = by_subject[f"outbox/{ids[0]}"], by_subject[f"outbox/{ids[1]}"]
    assert (delivered.action, delivered.outcome) == ("delivery.delivered", "success")
    assert (retried.action, retried.outcome) == ("delivery.retry", "warning")
    assert delivered.actor == retried.actor == f"worker:{w.worker_id}"
    assert delivered.detail["destination"] == DEST
    assert retried.detail["status"] == "503"
    assert all(session is not None for _, session in sink.events)


def test_a_failing_sink_does_not_break_ingest(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    def broken(event: audit.AuditEvent, session: Session | None) -> None:
        raise RuntimeError("audit store down")

    pipeline = make_pipeline(settings, load_consortium(settings.config), session_factory)
    with audit.listening(broken):
        result = pipeline.ingest(ORU.read_bytes(), Receipt("std-hl7v2", "cli", received_at=MOMENT))
    assert result.accepted
