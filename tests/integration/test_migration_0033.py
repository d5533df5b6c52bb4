"""Migration 0033 (decision 0081) on a database that holds messages, resources, their
history, outbox rows and audit records (SQLite, and PostgreSQL in the -m db pass): every
reader answers the same before and after, both ways (messages listed, found by their
sha256 and by id, their raw bytes, issues and resources; resources read, their history,
``_lastUpdated``, ``_since``, ``_source`` and sorts; the outbox; the audit log's receipts
and chain), the stored forms are the small ones at head and the text ones at 0030."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, inspect, select, text

from adapter.audit.events import message_event
from adapter.audit.verify import verify
from adapter.audit.writer import _receipt_correlations, record_now
from adapter.fhir.search_query import parse_search
from adapter.store import (
    create_message,
    find_message,
    get_message,
    list_messages,
    make_engine,
    migrate,
    read_history,
    read_resource,
    save_resources,
    set_message_result,
    verified_raw,
)
from adapter.store import session_factory as make_factory
from adapter.store.audit_log import AuditRecord
from adapter.store.engine import downgrade
from adapter.store.history import HistoryQuery, read_history_page
from adapter.store.outbox import enqueue_many, list_deliveries
from adapter.store.search import find

T0 = datetime(2026, 12, 5, 3, 0, 0, 123000, tzinfo=UTC)  # FHIR instants: milliseconds
UUID = "0f5c3f0e-8a5e-4b8e-9a57-1c2d3e4f5a6b"
# ids that are no UUID: kept as their text (the 16-character one after a NUL byte)
IDS = (UUID, "m-1", "sixteen-chars-id")
ISSUES = [
    {"severity": "warning", "code": "value", "diagnostics": "PID-19 校验位错误", "location": "PID"}
]
SEARCHES = [
    ("Observation", [("_lastUpdated", "ge2026-12-05T03:01:00Z")]),
    ("Observation", [("_lastUpdated", "lt2026-12-05T03:01:00Z")]),
    ("Observation", [("_sort", "-_lastUpdated")]),
    ("Observation", [("_sort", "_source")]),
    ("Observation", [("_source", f"urn:uuid:{UUID}")]),
    ("Observation", [("_source", "m-1")]),
    ("Patient", [("_lastUpdated", "eq2026-12-05")]),
]


def _raw(n: int) -> bytes:
    return f"MSH|^~\\&|LIS|H1|||20261205||ORU^R01|C{n}|P|2.5\rPID|1||{n}\r".encode()


def _write(engine: Engine) -> None:
    factory = make_factory(engine)
    for n, mid in enumerate(IDS):
        at = T0 + timedelta(minutes=n)
        raw = _raw(n)
        observation = {
            "resourceType": "Observation",
            "id": f"o{n}",
            "status": "final",
            "subject": {"reference": "Patient/11111111-2222-4333-8444-555555555555"},
        }
        patient = {
            "resourceType": "Patient",
            "id": "11111111-2222-4333-8444-555555555555",
            "gender": ("female", "male", "other")[n],
        }
        with factory.begin() as session:
            message = create_message(
                session,
                source_system="lis",
                facility_id="h1",
                raw=raw,
                content_type="x-application/hl7-v2+er7",
                sha256=hashlib.sha256(raw).hexdigest(),
                detected_format="hl7v2",
                encoding="utf-8",
                received_at=at,
                message_id=mid,
                channel="cli",
            )
            save_resources(session, [patient, observation], message_id=mid, now=at)
            resources = [f"Patient/{patient['id']}", f"Observation/o{n}"]
            if n == 1:
                resources.append("Observation/not-a-uuid")
            set_message_result(
                session,
                message,
                status="processed" if n != 2 else "quarantined",
                issues=ISSUES if n != 0 else [],
                resources=resources,
                now=at + timedelta(seconds=1),
            )
            items = [
                {
                    "destination": "d",
                    "resource_type": "Observation",
                    "resource_id": f"o{n}",
                    "version_id": 1,
                    "message_id": mid,
                }
            ]
            enqueue_many(session, items, now=at)
        record_now(
            factory,
            message_event(
                "message.received", "success", message_id=mid, source_system="lis", at=at
            ),
        )


def _reads(engine: Engine) -> dict[str, Any]:
    factory = make_factory(engine)
    with factory() as session:
        listed = list_messages(session, limit=10)
        messages = [
            (
                m.id, m.sha256, m.received_at, m.processed_at, m.status, m.issues, m.resources,
                m.size, verified_raw(m),
            )
            for m in listed
        ]  # fmt: skip
        found = [
            find_message(session, "lis", hashlib.sha256(_raw(n)).hexdigest()).id  # type: ignore[union-attr]
            for n in range(len(IDS))
        ]
        by_id = [get_message(session, mid).sha256 for mid in IDS]  # type: ignore[union-attr]
        searches = []
        for rtype, params in SEARCHES:
            parsed = parse_search(rtype, [*params, ("_count", "50")])
            page = find(
                session, [rtype], parsed.criteria, count=50, sort=parsed.sort, total="accurate"
            )
            searches.append(
                ([(b["id"], b["meta"]["lastUpdated"]) for b in page.bodies], page.total)
            )
        patient = "11111111-2222-4333-8444-555555555555"
        total, versions = read_history(session, "Patient", patient)
        since = read_history_page(session, HistoryQuery("Patient", since=T0 + timedelta(minutes=1)))
        _, outbox = list_deliveries(session, limit=50)
        audit = session.execute(select(AuditRecord.seq, AuditRecord.message_id)).all()
        return {
            "messages": messages,
            "found": found,
            "by_id": by_id,
            "searches": searches,
            "read": read_resource(session, "Patient", patient),
            "history": (total, [(v.version_id, v.last_updated, v.message_id) for v in versions]),
            "since": (since[0], [(v.version_id, v.last_updated) for v in since[1]]),
            "outbox": sorted((r.resource_id, r.message_id) for r in outbox),
            "audit": sorted(audit),
            "receipts": _receipt_correlations(session, list(IDS)),
            "chain": verify(session).ok,
        }


def _stored(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """The values as the database holds them (bytes as bytes)."""
    queries = {
        "inbound_message": "SELECT id, sha256, received_at, processed_at, issues, resources "
        "FROM inbound_message ORDER BY received_at",
        "resource": "SELECT id, message_id, content_hash, last_updated FROM resource ORDER BY id",
        "resource_version": "SELECT id, version_id, message_id, last_updated "
        "FROM resource_version ORDER BY version_id",
        # the resource's id through its resource_key since 0035 (decision 0084)
        "outbox": "SELECT r.id, o.message_id FROM outbox o JOIN resource r"
        " ON r.resource_key = o.resource_key ORDER BY o.id"
        if "resource_key" in {c["name"] for c in inspect(engine).get_columns("outbox")}
        else "SELECT resource_id, message_id FROM outbox ORDER BY id",
        "audit_record": "SELECT seq, message_id FROM audit_record ORDER BY seq",
    }
    with engine.connect() as conn:
        return {
            name: [
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                for row in conn.execute(text(sql))
            ]
            for name, sql in queries.items()
        }


def test_0033_packs_message_and_resource_rows_and_downgrades(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        migrate(engine)
        _write(engine)
        expected = _reads(engine)
        assert [m[0] for m in expected["messages"]] == list(reversed(IDS))  # newest first
        assert expected["found"] == list(IDS) and expected["chain"]
        assert [n for n, _ in expected["searches"][0][0]] == ["o2", "o1"]  # newest first
        assert [n for n, _ in expected["searches"][1][0]] == ["o0"]
        assert expected["searches"][4][0][0][0] == "o0" and expected["searches"][5][1] == 1
        assert expected["history"][0] == 3 and expected["since"][0] == 2
        assert set(expected["receipts"]) == set(IDS)
        assert expected["outbox"] == [("o0", UUID), ("o1", "m-1"), ("o2", "sixteen-chars-id")]
        assert expected["messages"][1][5] == ISSUES  # m-1, its issues read back

        head = _stored(engine)
        first = head["inbound_message"][0]  # the UUID's message (the first received)
        assert first[0] == bytes.fromhex(UUID.replace("-", ""))
        assert first[1] == hashlib.sha256(_raw(0)).digest()
        assert [len(m[0]) for m in head["inbound_message"]] == [16, 3, 17]
        # 16 bytes since decision 0092 (migration 0040's downgrade pads them to 32)
        assert all(isinstance(v, bytes) and len(v) == 16 for _, _, v, _ in head["resource"])
        assert not any(r[4].startswith(b"[") for r in head["inbound_message"][1:])  # packed
        if sqlite:
            assert all(
                isinstance(r[2], int) and isinstance(r[3], int) for r in head["inbound_message"]
            )
            assert all(isinstance(r[3], int) for r in head["resource"] + head["resource_version"])

        downgrade(engine, "0030")
        old = _stored(engine)
        message = old["inbound_message"][0]
        assert message[0] == UUID and message[1] == hashlib.sha256(_raw(0)).hexdigest()
        assert [m[0] for m in old["inbound_message"]] == list(IDS)
        assert {r[1] for r in old["resource"]} == set(IDS)
        assert [r[1] for r in old["outbox"]] == list(IDS)
        assert {r[1] for r in old["audit_record"]} == set(IDS)
        issues = old["inbound_message"][1][4]
        assert json.loads(issues if isinstance(issues, str) else json.dumps(issues)) == ISSUES
        if sqlite:
            assert message[2] == "2026-12-05 03:00:00.123000"
            assert message[3] == "2026-12-05 03:00:01.123000"
            assert old["resource"][0][3].startswith("2026-12-05 03:0")
            assert isinstance(old["resource"][0][2], str) and len(old["resource"][0][2]) == 64

        migrate(engine)
        again = _stored(engine)
        # the 16-byte content hashes come back padded by 0040's downgrade (decision 0092)
        assert again.pop("resource") == [
            (a, b, v + bytes(16), t) for a, b, v, t in head["resource"]
        ]
        assert again == {k: v for k, v in head.items() if k != "resource"}
        assert _reads(engine) == expected
    finally:
        engine.dispose()
