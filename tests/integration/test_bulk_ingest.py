"""Bulk ingest (issue 14 §2): many messages per transaction, a savepoint each.

A batch must store exactly what one transaction per message stores (the same resources,
versions, search index rows and outbox rows), and one bad message in it (a value the
database refuses, bytes that cannot be translated, the same bytes twice) must cost the
others nothing and lose nothing itself: it is kept, quarantined with its located issue or
answered as a duplicate, and the audit chain holds no record of a rolled-back attempt.
Runs on SQLite and, in the ``-m db`` pass, on PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.audit.verify import verify
from adapter.pipeline.receipt import Receipt
from adapter.store import make_engine, migrate
from adapter.store import session_factory as make_factory
from adapter.store.audit_log import AuditRecord
from adapter.store.models import InboundMessage, Outbox, Resource, ResourceVersion, SearchIndex
from tests.integration.connector_helpers import example_pipeline, example_translator
from tests.integration.test_long_values import (
    REFUSED_WORD,
    _assert_located,
    _refused_oru,
    long_oru,
    refusing_database,  # noqa: F401  (a fixture, found by its name)
)

ROOT = Path(__file__).resolve().parents[2]
ORU = ROOT / "fixtures" / "hl7v2" / "oru"


def _fixtures() -> list[tuple[bytes, Receipt]]:
    consortium = example_translator().consortium
    known = {s.id for f in consortium.facilities for s in f.sources}
    items = []
    for path in sorted(ORU.glob("*/*.hl7")):
        if path.parent.name in known:
            items.append((path.read_bytes(), Receipt(path.parent.name, "cli", peer=path.name)))
    return items


def _stored(factory: sessionmaker[Session]) -> dict[str, Any]:
    """What the store holds, without the moments and message ids that differ between runs."""
    with factory() as session:
        resources = {
            (r.resource_type, r.id): (r.version_id, r.content_hash, r.patient_key)
            for r in session.scalars(select(Resource))
        }
        versions = Counter(
            (v.resource_type, v.id, v.version_id) for v in session.scalars(select(ResourceVersion))
        )
        index = Counter(
            (i.resource_type, i.resource_id, i.param, i.kind, i.system, i.code, i.value)
            for i in session.scalars(select(SearchIndex))
            if i.resource_type != "Provenance"  # names the message and the moment
        )
        outbox = Counter(
            (o.destination, o.resource_type, o.resource_id, o.version_id, o.reason)
            for o in session.scalars(select(Outbox))
            if o.resource_type != "Provenance"
        )
        statuses = Counter(m.status for m in session.scalars(select(InboundMessage)))
    resources = {k: v for k, v in resources.items() if k[0] != "Provenance"}
    versions = Counter({k: n for k, n in versions.items() if k[0] != "Provenance"})
    return {
        "resources": resources,
        "versions": versions,
        "index": index,
        "outbox": outbox,
        "statuses": statuses,
    }


def test_a_batch_stores_what_one_transaction_per_message_stores(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    items = _fixtures()
    assert len(items) >= 20
    bulk = list(example_pipeline(session_factory).ingest_many(items, batch=7))
    assert [r.duplicate for r in bulk] == [False] * len(items)

    alone_engine = make_engine(f"sqlite:///{tmp_path / 'alone.db'}")
    migrate(alone_engine)
    try:
        alone_factory = make_factory(alone_engine)
        pipeline = example_pipeline(alone_factory)
        alone = [pipeline.ingest(raw, receipt) for raw, receipt in items]
        assert [r.status for r in bulk] == [r.status for r in alone]
        assert [r.resources for r in bulk] == [r.resources for r in alone]
        assert _stored(session_factory) == _stored(alone_factory)
    finally:
        alone_engine.dispose()
    with session_factory() as session:
        assert verify(session).ok


def test_one_bad_message_in_a_batch_costs_the_others_nothing(
    session_factory: sessionmaker[Session],
    engine: Engine,
    refusing_database: None,  # noqa: F811
) -> None:
    pipeline = example_pipeline(session_factory)
    first, second = long_oru(control="BULK0001"), long_oru(control="BULK0002")
    refused = _refused_oru("BULK0003")
    garbage = b"MSH|^~\\&|broken\rPID|1\rOBX|cut off"
    batch = [
        (first, Receipt("std-hl7v2", "cli")),
        (refused, Receipt("std-hl7v2", "cli")),
        (garbage, Receipt("std-hl7v2", "cli")),
        (second, Receipt("std-hl7v2", "cli")),
        (first, Receipt("std-hl7v2", "cli")),  # the same bytes again in the same batch
    ]
    results = list(pipeline.ingest_many(batch, batch=10))
    assert [r.status for r in results] == [
        "processed",
        "quarantined",
        "quarantined",
        "processed",
        "processed",
    ]
    assert [r.duplicate for r in results] == [False, False, False, False, True]
    assert results[4].message_id == results[0].message_id
    _assert_located(results[1].issues[0].as_dict())
    with session_factory() as session:
        kept = {m.id: m for m in session.scalars(select(InboundMessage))}
        assert len(kept) == 4  # every distinct message is kept, the refused one too
        assert bytes(kept[results[1].message_id].raw) == refused
        assert bytes(kept[results[2].message_id].raw) == garbage
        # nothing of the refused message was stored; the good ones were (the second is
        # the same report again, its resources unchanged)
        refused_rows = session.scalars(
            select(Resource.id).where(Resource.message_id == results[1].message_id)
        ).all()
        assert refused_rows == []
        assert results[0].resources == results[3].resources
        assert session.scalars(
            select(Resource.id).where(Resource.message_id == results[0].message_id)
        ).all()
        values = session.scalars(select(SearchIndex.value)).all()
        assert not any(REFUSED_WORD in (v or "") for v in values)
        # the audit chain is whole and names no message that was not kept: the events of
        # the refused message's rolled-back attempt in the batch went with its savepoint
        report = verify(session)
        assert report.ok, report.findings
        records = session.scalars(select(AuditRecord)).all()
        assert {r.message_id for r in records} == set(kept)
        received = Counter(r.message_id for r in records if r.action == "message.received")
        assert received[results[0].message_id] == 2  # received, then the duplicate answered
        assert received[results[3].message_id] == 1
        assert received[results[1].message_id] == 1  # kept on its own: its receipt too


def test_a_batch_sent_again_is_answered_as_duplicates(
    session_factory: sessionmaker[Session],
) -> None:
    pipeline = example_pipeline(session_factory)
    items = _fixtures()[:6]
    first = list(pipeline.ingest_many(items, batch=4))
    again = list(pipeline.ingest_many(items, batch=4))
    assert [r.duplicate for r in again] == [True] * len(items)
    assert [r.message_id for r in again] == [r.message_id for r in first]
    with session_factory() as session:
        assert len(session.scalars(select(InboundMessage.id)).all()) == len(items)
