"""Migration 0027 on a database that holds an audit log (SQLite, and PostgreSQL in the -m db
pass): records written at 0024 as plain text are read as the same text after the upgrade
(to the head: the code reads the head's stored forms),
the chain verifies across them and the records written after it (zstd frames), the
searches, the disclosure report and the writer's correlation lookup answer as before; the
downgrade writes every frame back as plain text and the old schema's chain still holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, select, text

from adapter.audit.chain import GENESIS, canonical, chain_hash, links_of
from adapter.audit.disclosures import disclosures
from adapter.audit.events import AuditEvent, record
from adapter.audit.search import search_records
from adapter.audit.verify import verify
from adapter.audit.writer import row_of
from adapter.store import make_engine, migrate
from adapter.store import session_factory as make_factory
from adapter.store.audit_log import AuditRecord
from adapter.store.body_codec import is_frame
from adapter.store.engine import downgrade

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
P1, P2 = "Patient/p1", "Patient/p2"


def _body(n: int, action: str, message: str, **fields: Any) -> dict[str, Any]:
    return {
        "recorded": (T0 + timedelta(minutes=n)).isoformat(timespec="milliseconds"),
        "action": action,
        "outcome": "success",
        "actor": "source:county-lis" if action.startswith("message.") else "worker:w1",
        "client": None,
        "facility": "qingshan-county-hospital",
        "address": None,
        "channel": "cli",
        "request": None,
        "correlation": f"corr-{message}",
        "message": message,
        "subject": f"InboundMessage/{message}",
        "entities": [],
        "patients": [],
        "detail": {},
        **fields,
    }


def _old_log() -> list[dict[str, Any]]:
    """Two messages received, stored and delivered, one read: as the writer made them."""
    out = []
    for m, patient in (("m1", P1), ("m2", P2)):
        obs = f"Observation/o-{m}/_history/1"
        out += [
            _body(len(out), "message.received", m, detail={"size": 900}),
            _body(len(out) + 1, "message.stored", m, entities=[obs], patients=[patient]),
            _body(
                len(out) + 2,
                "delivery.delivered",
                m,
                entities=[obs],
                patients=[patient],
                detail={"destination": "shiqiao-fhir", "rows": "1:written:4"},
            ),
        ]
    read = _body(len(out), "fhir.read", "m1", entities=["Observation/o-m1/_history/1"])
    out.append({**read, "message": None, "correlation": "req-1", "patients": [P1]})
    return out


def _write_plain(engine: Engine, bodies: list[dict[str, Any]]) -> None:
    """The rows as the code at 0024 stored them: the canonical text as it is."""
    prev, rows, links = GENESIS, [], []
    for seq, body in enumerate(bodies, start=1):
        text_body = canonical(body)
        digest = chain_hash(prev, text_body)
        row = row_of(seq, body, text_body, prev, digest)
        rows.append({**row, "recorded": row["recorded"].isoformat()})
        links += [{"seq": seq, "kind": k, "reference": r} for k, r in sorted(links_of(body))]
        prev = digest
    columns = ", ".join(rows[0])
    values = ", ".join(f":{c}" for c in rows[0])
    with engine.begin() as conn:
        conn.execute(
            text(f"INSERT INTO audit_record ({columns}) VALUES ({values})"),
            rows,
        )
        conn.execute(
            text("INSERT INTO audit_link (seq, kind, reference) VALUES (:seq, :kind, :reference)"),
            links,
        )


SEARCHES: list[list[tuple[str, str]]] = [
    [("patient", "p1")],
    [("patient", P2)],
    [("entity", "Observation/o-m1")],  # any version
    [("entity", "Observation/o-m2/_history/1")],
    [("correlation-id", "corr-m2")],
    [("subtype", "delivery.delivered")],
    [("agent", "worker:w1")],
    [("date", "ge2026-11-30")],
]


def _answers(engine: Engine) -> list[Any]:
    with make_factory(engine)() as session:
        found = [
            [r.seq for r in search_records(session, q, count=50, offset=0)[1]] for q in SEARCHES
        ]
        report = disclosures(session, [P1, P2], every_action=True)
        bodies = session.execute(select(AuditRecord.seq, AuditRecord.body)).all()
    return [found, report, sorted(bodies)]


def _stored(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return [v for (v,) in conn.execute(text("SELECT body FROM audit_record ORDER BY seq"))]


def _shape(engine: Engine) -> tuple[set[str], list[str] | None, set[str]]:
    """audit_record's index names, audit_link's key columns, audit_link's index names
    (None and none where it is gone: PostgreSQL since 0048)."""
    found = inspect(engine)
    record_ix = {i["name"] for i in found.get_indexes("audit_record")}
    if "audit_link" not in found.get_table_names():
        return record_ix, None, set()
    key = found.get_pk_constraint("audit_link")["constrained_columns"]
    link_ix = {i["name"] for i in found.get_indexes("audit_link")}
    return record_ix, key, link_ix


def _ok(engine: Engine) -> int:
    with make_factory(engine)() as session:
        report = verify(session)
    assert report.ok, [str(f) for f in report.findings]
    return report.records


@pytest.mark.db  # blank_database_url is PostgreSQL's in the -m db pass
def test_0027_reads_old_records_as_they_were_and_downgrades_to_plain_text(
    blank_database_url: str,
) -> None:
    engine = make_engine(blank_database_url)
    try:
        migrate(engine, "0024")
        bodies = _old_log()
        _write_plain(engine, bodies)
        assert _shape(engine) == (
            {
                "ix_audit_record_recorded",
                "ix_audit_record_correlation_id",
                "ix_audit_record_message_id",
                "ix_audit_record_action_recorded",
                "ix_audit_record_actor",
            },
            ["seq", "kind", "reference"],
            {"ix_audit_link_kind_reference_seq"},
        )

        # up to the head: the code reads only the head's stored forms (0029 packs the
        # hashes and references; the plain bodies of 0024 are still read as themselves)
        migrate(engine)
        before = _answers(engine)
        assert [len(seqs) for seqs in before[0]] == [3, 2, 3, 2, 3, 2, 3, 7]
        assert not any(is_frame(v) for v in _stored(engine))  # old rows are not rewritten
        assert _ok(engine) == 7
        record_ix, key, link_ix = _shape(engine)
        assert "ix_audit_record_actor" not in record_ix
        if engine.dialect.name == "postgresql":  # the links on the record since 0048 (0119)
            assert key is None and not link_ix and "ix_audit_record_links" in record_ix
        else:
            assert key == ["kind", "reference", "seq"] and link_ix == {"ix_audit_link_seq"}
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                ddl = conn.execute(
                    text("SELECT sql FROM sqlite_master WHERE name = 'audit_link'")
                ).scalar_one()
            assert "WITHOUT ROWID" in ddl

        # a delivery of an old message after the upgrade: its receipt's correlation id is
        # found through the index of receipts, and the record is a frame chained to the old
        with make_factory(engine).begin() as session:
            record(
                AuditEvent(
                    "delivery.delivered",
                    "success",
                    "worker:w2",
                    "outbox/9",
                    None,
                    T0 + timedelta(hours=1),
                    detail={"destination": "liuhe-fhir"},
                    message_id="m1",
                    entities=("Observation/o-m1/_history/1",),
                    patients=(P1,),
                ),
                session=session,
            )
        stored = _stored(engine)
        assert is_frame(stored[-1]) and len(stored) == 8
        assert _ok(engine) == 8
        after = _answers(engine)
        with make_factory(engine)() as session:
            late = session.get(AuditRecord, 8)
            assert late is not None and late.correlation_id == "corr-m1"
        assert after[0][0] == [8, *before[0][0]]  # patient p1 finds the new record first

        downgrade(engine, "0024")
        plain = _stored(engine)
        assert not any(is_frame(v) for v in plain)
        texts = [v if isinstance(v, str) else bytes(v).decode() for v in plain]
        assert texts == [b for _, b in after[2]]  # the exact canonical text of each
        with engine.connect() as conn:  # the chain over the stored text, as 0024 reads it
            rows = conn.execute(text("SELECT prev_hash, hash FROM audit_record ORDER BY seq"))
            assert all(chain_hash(p, t) == h for (p, h), t in zip(rows, texts, strict=True))
        assert _shape(engine) == (
            {
                "ix_audit_record_recorded",
                "ix_audit_record_correlation_id",
                "ix_audit_record_message_id",
                "ix_audit_record_action_recorded",
                "ix_audit_record_actor",
            },
            ["seq", "kind", "reference"],
            {"ix_audit_link_kind_reference_seq"},
        )
        migrate(engine)  # and up again
        assert _answers(engine) == after and _ok(engine) == 8
    finally:
        engine.dispose()
