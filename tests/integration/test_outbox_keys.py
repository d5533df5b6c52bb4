"""The outbox row names its resource by ``resource_key`` and its queue by an 8-byte hash of
the patient's key (decision 0084): readers see the type, id and patient as before, a
patient the store never received has a queue too, a resource the store does not have is
refused, and two patients whose keys share a hash share one queue without losing or
reordering anything. SQLite, and PostgreSQL in the -m db pass."""

from __future__ import annotations

import hashlib
import importlib
from datetime import timedelta

import pytest
from sqlalchemy import Engine, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.store import enqueue_many, save_resources
from adapter.store.models import Outbox, Resource
from adapter.store.outbox import claim, list_deliveries, settle_many
from adapter.store.outbox.enqueue import order_hash, order_key
from adapter.store.outbox.rows import Settlement
from tests.integration.delivery_support import T0

# the module (the package's ``enqueue`` is the function of the same name)
enqueue_module = importlib.import_module("adapter.store.outbox.enqueue")


def _observation(rid: str, patient: str | None) -> dict:
    body = {"resourceType": "Observation", "id": rid, "status": "final", "code": {"text": "t"}}
    if patient:
        body["subject"] = {"reference": patient}
    return body


def _queue(factory: sessionmaker[Session], bodies: list[dict], destination: str = "d") -> None:
    with factory.begin() as session:
        saved = save_resources(session, bodies, message_id=None, now=T0)
        enqueue_many(
            session,
            [
                {
                    "destination": destination,
                    "resource_type": s.resource_type,
                    "resource_id": s.id,
                    "version_id": s.version_id,
                    "patient_key": s.patient_key,
                    # every other row without its key: enqueue reads it from the store
                    **({"resource_key": s.resource_key} if n % 2 else {}),
                }
                for n, s in enumerate(saved)
            ],
            now=T0,
        )


def test_rows_name_their_resource_by_key_and_read_as_before(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    columns = {c["name"] for c in inspect(engine).get_columns("outbox")}
    assert {"resource_key", "order_key"} <= columns
    assert not {"resource_type", "resource_id"} & columns
    bodies = [
        {"resourceType": "Patient", "id": "p1"},
        _observation("o1", "Patient/p1"),
        _observation("o2", "Patient/never-received"),  # no Patient row in the store
        {"resourceType": "Organization", "id": "org1", "name": "x"},
    ]
    _queue(session_factory, bodies)
    with session_factory() as session:
        keys = dict(session.execute(select(Resource.id, Resource.resource_key)).tuples().all())
        stored = session.execute(
            select(Outbox.__table__.c.resource_key, Outbox.__table__.c.order_key).order_by(
                Outbox.id
            )
        ).all()
        _, rows = list_deliveries(session, limit=10)
    assert [tuple(r) for r in stored] == [
        (keys["p1"], order_hash("Patient/p1")),
        (keys["o1"], order_hash("Patient/p1")),
        (keys["o2"], order_hash("Patient/never-received")),
        (keys["org1"], order_hash("Organization/org1")),
    ]
    shown = sorted((r.resource_type, r.resource_id, r.patient_key, r.order_key) for r in rows)
    assert shown == sorted(
        [
            ("Patient", "p1", "Patient/p1", order_key("Patient", "p1", "Patient/p1")),
            ("Observation", "o1", "Patient/p1", order_hash("Patient/p1")),
            (
                "Observation",
                "o2",
                "Patient/never-received",
                order_hash("Patient/never-received"),
            ),
            ("Organization", "org1", None, order_hash("Organization/org1")),
        ]
    )
    assert {r.summary()["resource"] for r in rows} == {
        "Patient/p1",
        "Observation/o1",
        "Observation/o2",
        "Organization/org1",
    }


def test_order_hash_is_eight_bytes_of_sha256_as_a_signed_bigint() -> None:
    # the first 8 bytes of the SHA-256, big-endian, two's complement (as PostgreSQL's
    # ``('x' || ...)::bit(64)::bigint`` of migration 0035 reads them)
    digest = hashlib.sha256(b"Patient/p1").digest()
    value = order_hash("Patient/p1")
    assert value == int.from_bytes(digest[:8], "big", signed=True)
    assert -(2**63) <= value < 2**63
    assert order_hash("Patient/p1") != order_hash("Patient/p2")


def test_a_resource_the_store_does_not_have_is_refused(
    session_factory: sessionmaker[Session],
) -> None:
    with pytest.raises(ValueError, match="must be stored"), session_factory.begin() as session:
        enqueue_many(
            session,
            [
                {
                    "destination": "d",
                    "resource_type": "Observation",
                    "resource_id": "nowhere",
                    "version_id": 1,
                    "patient_key": None,
                }
            ],
            now=T0,
        )
    with session_factory() as session:
        assert session.scalar(select(Outbox.id)) is None


def test_two_patients_with_one_hash_share_a_queue_and_lose_nothing(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collision of two patients' hashes (forced here: both keys hash to 7) only merges
    their queues: their rows go out one head at a time in id order, each once, each still
    showing its own patient; another patient's queue is not held behind them."""
    real = enqueue_module.order_hash
    merged = {"Patient/a", "Patient/b"}
    monkeypatch.setattr(
        enqueue_module, "order_hash", lambda text: 7 if text in merged else real(text)
    )
    bodies = [
        _observation("a1", "Patient/a"),
        _observation("b1", "Patient/b"),
        _observation("c1", "Patient/c"),
        _observation("a2", "Patient/a"),
        _observation("b2", "Patient/b"),
    ]
    for body in bodies:  # one message each: ids in this order
        _queue(session_factory, [body])
    sent: list[tuple[str, str | None]] = []
    at = T0 + timedelta(seconds=1)
    for _ in range(10):
        with session_factory.begin() as session:
            taken = claim(session, destination="d", worker="w", now=at, lease_seconds=30, limit=5)
            if not taken:
                break
            sent.append(tuple((r.resource_id, r.patient_key) for r in taken))  # type: ignore[arg-type]
            settle_many(
                session,
                [Settlement(r, "delivered", at, status="200", sent_version=1) for r in taken],
                worker="w",
            )
    # first claim: the merged queue's head (a1) and c's; then b1, a2, b2 one at a time
    assert sent == [
        (("a1", "Patient/a"), ("c1", "Patient/c")),
        (("b1", "Patient/b"),),
        (("a2", "Patient/a"),),
        (("b2", "Patient/b"),),
    ]
    with session_factory() as session:
        states = session.scalars(select(Outbox.state)).all()
    assert states == ["delivered"] * 5
