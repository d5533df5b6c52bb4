"""Migration 0034 (decision 0082) on a database holding an audit log, patient index rows and
care rows (SQLite, and PostgreSQL in the -m db pass): the downgrade writes them back as 0030
stored them (ids, key hashes, features and instants as text), the upgrade packs them again,
and every read answers the same on both sides: the records' columns, the correlation-id
search, verify (the chain holds after each step, and a record written after the upgrade
chains to the old ones), the index's key lookups and care's open relationships."""

from __future__ import annotations

import hashlib
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select, text

from adapter.audit import context, writer
from adapter.audit.events import AuditEvent, record
from adapter.audit.search import search_records
from adapter.identity.index import records
from adapter.store import make_engine, migrate
from adapter.store import session_factory as make_factory
from adapter.store.audit_log import AuditRecord
from adapter.store.care import list_care, note_activity
from adapter.store.engine import downgrade
from adapter.store.identity_tables import IdentityRecord
from tests.integration.test_migration_0027 import _ok

T0 = datetime(2026, 12, 5, 8, 0, 0, 123456, tzinfo=UTC)
U1, U2 = "8f14e45f-ceea-467f-a1c4-1f5e3b9a1c2d", "0b6f1c2a-3d4e-4f50-8a6b-7c8d9e0f1a2b"
# a UUID, one not in canonical form, a text of 16 bytes (PostgreSQL marks it), any text
CORRELATIONS = (U1, U2.upper(), "sixteen-chars-16", "corr-m3")
FEATURES = {"record": "r1", "name": "谢建军", "phones": ["13574310915"], "cards": []}


def _key(text_: str) -> str:
    return hashlib.sha256(text_.encode()).hexdigest()


KEYS = {"r1": [_key("a"), _key("b")], "r2": [_key("b")], "r3": ["not-a-digest"]}


def _fill(engine: Engine) -> None:
    factory = make_factory(engine)
    for n, correlation in enumerate(CORRELATIONS):
        # the first as the API records one: with the request's id (a UUID)
        caller = context.Caller(request_id=U2, channel="http") if n == 0 else None
        with factory.begin() as session, context.serving(caller) if caller else nullcontext():
            record(
                AuditEvent(
                    "message.received",
                    "warning" if n == 1 else "success",
                    "source:county-lis",
                    f"InboundMessage/m{n}",
                    correlation,
                    T0 + timedelta(minutes=n),
                    message_id=f"m{n}",
                    patients=(f"Patient/{U1}",),
                ),
                session=session,
            )
    with factory.begin() as session:
        for n, (patient, keys) in enumerate(KEYS.items()):
            at = T0 + timedelta(seconds=n, microseconds=n)
            row = {
                "patient_id": patient,
                "person_id": f"person-{patient}",
                "facility_id": "qingshan-county-hospital",
                "link_kind": "auto",
                "rule_version": 1,
                "rule": "no-match",
                "score": 0.5,
                "evidence": {},
                "features": {**FEATURES, "record": patient},
                "created_at": at,
                "updated_at": at + timedelta(hours=1),
            }
            records.insert_record(session, row, keys)
        for n, facility in enumerate(("f1", "f2")):
            at = T0 + timedelta(days=n, microseconds=7)
            note_activity(
                session, "person-r1", facility, at=at, until=at + timedelta(days=365), detail="x"
            )


def _reads(engine: Engine) -> dict[str, Any]:
    with make_factory(engine)() as session:
        rows = session.scalars(select(AuditRecord).order_by(AuditRecord.seq)).all()
        columns = [(r.seq, r.correlation_id, r.request_id, r.hash) for r in rows]
        searches = [[("correlation-id", c)] for c in CORRELATIONS]
        searches += [[("subtype", "message.received")], [("outcome", "4")], [("action", "C")]]
        found = {
            str(q): [r.seq for r in search_records(session, q, count=10, offset=0)[1]]
            for q in searches
        }
        columns = [(*c, r.action, r.outcome, r.channel) for c, r in zip(columns, rows, strict=True)]
        identity = [
            (r.patient_id, r.features, r.created_at, r.updated_at)
            for r in session.scalars(select(IdentityRecord).order_by(IdentityRecord.patient_id))
        ]
        near = records.near(session, "r2", [_key("b")], limit=10)
        care = [
            (r.facility_id, r.start_at, r.end_at, r.created_at)
            for r in list_care(session, persons=["person-r1"], open_at=T0 + timedelta(days=2))
        ]
        return {
            "columns": columns,
            "found": found,
            "identity": identity,
            "keys": sorted(records.stored_hashes(session, ["r1", "r2", "r3"])),
            "candidates": [r.patient_id for r in records.candidates(session, [_key("b")], "r9")],
            "near": (sorted(near.stored_keys), sorted(o.patient_id for o, _k, _b in near.others)),
            "care": care,
        }


def _stored(engine: Engine) -> dict[str, Any]:
    """What the database holds: the values' Python types (str: text, bytes: packed)."""
    sqlite = engine.dialect.name == "sqlite"

    def kinds(sql: str) -> set[str]:
        with engine.connect() as conn:
            return {type(v).__name__ for (v,) in conn.execute(text(sql)) if v is not None}

    with engine.connect() as conn:
        coded = {
            tuple(r)
            for r in conn.execute(text("SELECT action, outcome, channel FROM audit_record"))
        }
    out = {
        "coded": coded,
        "correlation": kinds("SELECT correlation_id FROM audit_record"),
        "key_hash": kinds("SELECT key_hash FROM identity_key"),
        "features": kinds("SELECT features FROM identity_record"),
    }
    if sqlite:
        out["times"] = kinds(
            "SELECT created_at FROM identity_record UNION ALL SELECT start_at "
            "FROM care_relationship UNION ALL SELECT end_at FROM care_relationship"
        )
        with engine.connect() as conn:
            out["rowid"] = conn.exec_driver_sql(
                "SELECT sql LIKE '%WITHOUT ROWID%' FROM sqlite_master WHERE name = 'identity_key'"
            ).scalar_one()
    return out


@pytest.mark.db  # blank_database_url is PostgreSQL's in the -m db pass
def test_0034_packs_ids_keys_features_and_instants_and_reads_the_same(
    blank_database_url: str,
) -> None:
    engine = make_engine(blank_database_url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        migrate(engine)
        _fill(engine)
        expected = _reads(engine)
        every = [4, 3, 2, 1]
        assert list(expected["found"].values()) == [[1], [2], [3], [4], every, [2], every]
        assert expected["columns"][0][1:3] == (U1, U2)
        assert expected["keys"] == sorted([_key("a"), _key("b"), _key("b"), "not-a-digest"])
        assert expected["candidates"] == ["r1", "r2"] and expected["near"][1] == ["r1"]
        assert [c[0] for c in expected["care"]] == ["f2", "f1"]
        assert expected["identity"][0][1] == {**FEATURES, "record": "r1"}
        assert expected["identity"][0][2] == T0  # every microsecond kept
        packed = {
            # message.received; success, warning; http, none
            "coded": {("0", "0", "0"), ("0", "1", None), ("0", "0", None)},
            "correlation": {"bytes"},  # a UUID as its 16 bytes, any other text as its own
            "key_hash": {"bytes"},  # a non-digest as its text's bytes
            "features": {"bytes"},
        }
        if sqlite:
            packed |= {"times": {"int"}, "rowid": 1}
        assert _stored(engine) == packed
        with engine.connect() as conn:  # the sizes: a UUID in 16 bytes, a digest in 32
            sizes = conn.execute(
                text("SELECT correlation_id FROM audit_record ORDER BY seq")
            ).scalars()
            assert [len(v) for v in sizes][:1] == [16]
        assert _ok(engine) == 4

        downgrade(engine, "0030")
        plain = {
            "coded": {
                ("message.received", "success", "http"),
                ("message.received", "warning", None),
                ("message.received", "success", None),
            },
            "correlation": {"str"},
            "key_hash": {"str"},
            "features": {"str"},
        }
        if sqlite:
            plain |= {"times": {"str"}, "rowid": 0}
        assert _stored(engine) == plain
        with engine.connect() as conn:  # as 0030 wrote them: orjson text, hex, UTC text
            features = conn.execute(
                text("SELECT features FROM identity_record WHERE patient_id = 'r1'")
            ).scalar_one()
            assert features == orjson.dumps({**FEATURES, "record": "r1"}).decode()
            stored = conn.execute(text("SELECT key_hash FROM identity_key")).scalars().all()
            assert sorted(stored) == expected["keys"]
            ids = conn.execute(
                text("SELECT correlation_id, request_id FROM audit_record ORDER BY seq")
            ).all()
            assert [tuple(r) for r in ids] == [
                (U1, U2),
                *((c, None) for c in CORRELATIONS[1:]),
            ]
            if sqlite:
                start = conn.execute(
                    text("SELECT min(start_at) FROM care_relationship")
                ).scalar_one()
                assert start == "2026-12-05 08:00:00.123463"
        # the code searches only the head's stored forms: its answers are read after the
        # upgrade; verify walks every row as it is, and the chain holds over 0030's forms
        # (SQLite; on PostgreSQL this tree's verify reads the links of 0048's form)
        if sqlite:
            assert _ok(engine) == 4

        migrate(engine)
        assert _stored(engine) == packed
        assert _reads(engine) == expected
        assert _ok(engine) == 4
        with make_factory(engine).begin() as session:  # a new record chains to the old ones
            record(
                AuditEvent(
                    "message.received",
                    "success",
                    "source:county-lis",
                    "InboundMessage/m9",
                    U1,
                    T0 + timedelta(hours=1),
                    message_id="m9",
                ),
                session=session,
            )
        assert _ok(engine) == 5
        writer._correlations.clear()  # the receipt's correlation read from the database
        with make_factory(engine).begin() as session:  # (through the receipts' index)
            record(
                AuditEvent(
                    "message.stored",
                    "success",
                    "source:county-lis",
                    "InboundMessage/m0",
                    None,
                    T0 + timedelta(hours=2),
                    message_id="m0",
                ),
                session=session,
            )
        with make_factory(engine)() as session:
            stored = session.get(AuditRecord, 6)
            assert stored is not None
            assert (stored.action, stored.correlation_id) == ("message.stored", U1)
        assert _ok(engine) == 6
        with make_factory(engine)() as session:
            found = search_records(session, [("correlation-id", U1)], count=10, offset=0)[1]
            assert [r.seq for r in found] == [6, 5, 1]  # m0's records: its receipt's id
    finally:
        engine.dispose()
