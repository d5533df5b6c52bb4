"""Helpers of the delivery tests: a consortium with one FHIR destination on the loopback
receiver, resources with a version mark, queuing them, a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import Consortium
from adapter.delivery.breaker import BreakerConfig
from adapter.delivery.service import build_worker
from adapter.delivery.worker import DeliveryWorker, WorkerOptions
from adapter.store import enqueue_many, save_resources
from adapter.store.models import DeliveryAttempt, DeliveryDestination, Outbox, Resource
from tests.integration.delivery_receiver import Receiver, running_receiver

DEST = "hospital-fhir"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


class Clock:
    """A clock that only moves when the test says so."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def consortium_data(
    base_url: str,
    *,
    retry: dict[str, Any] | None = None,
    bundle: str = "none",
    timeout: float = 5.0,
) -> dict[str, Any]:
    destination: dict[str, Any] = {
        "id": DEST,
        "kind": "fhir",
        "settings": {
            "base_url": base_url,
            "bundle": bundle,
            "timeout_seconds": timeout,
            "connect_timeout_seconds": 1.0,
        },
    }
    if retry:
        destination["retry"] = retry
    return {
        "version": 1,
        "id": "test-ygt",
        "name": "测试医共体",
        "facilities": [
            {
                "id": "county",
                "name": "县医院",
                "level": "county",
                "namespace": "https://example.cn/fhir/sid/county",
                "sources": [{"id": "lis", "format": "hl7v2", "mapping": "_shared"}],
                "destinations": [destination],
            }
        ],
        "routes": [{"from": ["*"], "to": [DEST]}],
    }


def consortium(base_url: str, **kw: Any) -> Consortium:
    return Consortium.model_validate(consortium_data(base_url, **kw))


def write_consortium(path: Path, base_url: str, **kw: Any) -> Path:
    path.write_text(
        yaml.safe_dump(consortium_data(base_url, **kw), allow_unicode=True), encoding="utf-8"
    )
    return path


_OPEN: list[DeliveryWorker] = []


def close_workers() -> None:
    """Close the destinations of every worker built so far (their HTTP clients)."""
    while _OPEN:
        _OPEN.pop().close()


def receiving() -> Iterator[Receiver]:
    """For a ``receiver`` fixture: the loopback FHIR receiver; the workers built in the test
    are closed after it."""
    with running_receiver() as running:
        yield running
    close_workers()


def worker(
    factory: sessionmaker[Session],
    base_url: str,
    *,
    clock: Clock | None = None,
    batch_size: int = 20,
    lease_seconds: float = 60.0,
    worker_id: str = "w1",
    breaker: BreakerConfig | None = None,
    poll_seconds: float = 1.0,
    **kw: Any,
) -> DeliveryWorker:
    built = build_worker(
        consortium(base_url, **kw),
        factory,
        worker_id=worker_id,
        options=WorkerOptions(
            batch_size=batch_size,
            lease_seconds=lease_seconds,
            poll_seconds=poll_seconds,
            breaker=breaker or BreakerConfig(),
        ),
    )
    if clock is not None:
        built.clock = clock
    _OPEN.append(built)
    return built


def observation(oid: str, patient: str | None, mark: str) -> dict[str, Any]:
    """An Observation whose ``valueString`` marks the version the test wrote."""
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"text": "test"},
        "valueString": mark,
    }
    if patient:
        body["subject"] = {"reference": f"Patient/{patient}"}
    return body


def patient(pid: str, mark: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "valueString": mark,
        "identifier": [{"system": "urn:test", "value": pid}],
    }


def store_named(session: Session, items: list[dict[str, Any]], *, now: datetime = T0) -> None:
    """Store a small body for each outbox item's resource the store does not have yet (an
    outbox row names a stored resource: decision 0084), about the item's patient."""
    r = Resource.__table__
    wanted: dict[tuple[str, str], str | None] = {
        (i["resource_type"], i["resource_id"]): i.get("patient_key") for i in items
    }
    have = {
        (t, i)
        for t, i in session.execute(select(r.c.resource_type, r.c.id)).all()
        if (t, i) in wanted
    }
    bodies = []
    for (rtype, rid), patient in wanted.items():
        if (rtype, rid) in have:
            continue
        body: dict[str, Any] = {"resourceType": rtype, "id": rid}
        if patient and rtype != "Patient":
            body["subject"] = {"reference": patient}
        bodies.append(body)
    if bodies:
        save_resources(session, bodies, message_id=None, now=now)


def queue(
    factory: sessionmaker[Session],
    resources: list[dict[str, Any]],
    *,
    now: datetime = T0,
    destination: str = DEST,
) -> list[int]:
    """Store the resources and queue each changed one for the destination (as ingest does);
    returns the new outbox ids."""
    with factory.begin() as session:
        saved = save_resources(session, resources, message_id=None, now=now)
        before = session.scalar(select(Outbox.id).order_by(Outbox.id.desc()).limit(1)) or 0
        enqueue_many(
            session,
            [
                {
                    "destination": destination,
                    "resource_type": s.resource_type,
                    "resource_id": s.id,
                    "version_id": s.version_id,
                    "patient_key": s.patient_key,
                }
                for s in saved
                if s.changed
            ],
            now=now,
        )
        return list(
            session.scalars(select(Outbox.id).where(Outbox.id > before).order_by(Outbox.id))
        )


def queue_message(session: Session, message_id: str) -> list[Any]:
    """Every resource the message stored queued for DEST, as routing would for an enabled
    destination; the stored (resource_type, id, version_id, patient_key) rows."""
    r = Resource.__table__
    stored = session.execute(
        select(r.c.resource_type, r.c.id, r.c.version_id, r.c.patient_key).where(
            r.c.message_id == message_id  # bound as the column stores it (decision 0081)
        )
    ).all()
    enqueue_many(
        session,
        [
            {
                "destination": DEST,
                "resource_type": t,
                "resource_id": i,
                "version_id": v,
                "patient_key": p,
                "message_id": message_id,
            }
            for t, i, v, p in stored
        ],
        now=datetime.now(UTC),
    )
    return list(stored)


def breaker_state(factory: sessionmaker[Session]) -> DeliveryDestination:
    """The destination's row: its circuit breaker's state, failures, open-until."""
    with factory() as session:
        destination = session.get(DeliveryDestination, DEST)
        assert destination is not None
        return destination


def rows(factory: sessionmaker[Session]) -> dict[int, Outbox]:
    with factory() as session:
        return {r.id: r for r in session.scalars(select(Outbox).order_by(Outbox.id))}


def attempts(factory: sessionmaker[Session], outbox_id: int) -> list[DeliveryAttempt]:
    with factory() as session:
        return list(
            session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.outbox_id == outbox_id)
                .order_by(DeliveryAttempt.id)
            )
        )
