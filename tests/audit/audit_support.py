"""Shared by the audit tests: a log with a few messages in it, and ways to tamper with it
the way someone with the database's owner rights could."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from adapter.audit.chain import canonical, chain_hash
from adapter.audit.verify import Report, verify
from adapter.audit.writer import row_of
from adapter.pipeline import Receipt
from adapter.store.audit_log import AuditLink, AuditRecord
from adapter.store.audit_reference import unpack_links
from adapter.store.body_codec import is_frame
from tests.integration.connector_helpers import example_pipeline

ROOT = Path(__file__).resolve().parents[2]
ORU = ROOT / "fixtures" / "hl7v2" / "oru" / "std-hl7v2" / "two-orders.hl7"
BAD = ROOT / "fixtures" / "hl7v2" / "bad" / "obx14-bad-date.hl7"


def fill(factory: sessionmaker[Session]) -> list[str]:
    """Three messages: stored, quarantined, a duplicate; their message ids."""
    pipeline = example_pipeline(factory)
    stored = pipeline.ingest(ORU.read_bytes(), Receipt("std-hl7v2", "cli"))
    kept = pipeline.ingest(BAD.read_bytes(), Receipt("std-hl7v2", "cli"))
    pipeline.ingest(ORU.read_bytes(), Receipt("std-hl7v2", "cli"))
    assert stored.message_id and kept.message_id
    return [stored.message_id, kept.message_id]


def check(factory: sessionmaker[Session], **kw: Any) -> Report:
    with factory() as session:
        return verify(session, **kw)


def records(factory: sessionmaker[Session]) -> list[dict[str, Any]]:
    """Every record's columns, ``body`` as its canonical text (stored as a frame, or plain
    text before migration 0027)."""
    with factory() as session:
        rows = session.execute(select(AuditRecord.__table__).order_by(AuditRecord.seq)).mappings()
        return [dict(r) for r in rows]


def stored_body(factory: sessionmaker[Session], seq: int) -> bytes | str:
    """The body as the database holds it (a zstd frame; plain text in older rows)."""
    with factory() as session:
        value = session.execute(
            text("SELECT body FROM audit_record WHERE seq = :s"), {"s": seq}
        ).scalar_one()
    return value if isinstance(value, str) else bytes(value)


def set_stored_body(factory: sessionmaker[Session], seq: int, value: bytes | str) -> None:
    with factory.begin() as session:
        session.execute(
            text("UPDATE audit_record SET body = :b WHERE seq = :s"), {"b": value, "s": seq}
        )


def flip_byte(factory: sessionmaker[Session], seq: int) -> None:
    """Change one byte of a record's body as stored (a frame: the middle byte)."""
    stored = stored_body(factory, seq)
    assert isinstance(stored, bytes) and is_frame(stored)
    changed = bytearray(stored)
    changed[len(changed) // 2] ^= 0x01
    set_stored_body(factory, seq, bytes(changed))


def change_text(factory: sessionmaker[Session], seq: int) -> None:
    """Replace a record's body by its text with one character changed, stored as plain text
    (the form of the rows written before migration 0027: read as it is)."""
    body = next(r["body"] for r in records(factory) if r["seq"] == seq)
    at = body.index('"outcome":"') + len('"outcome":"')
    changed = body[:at] + ("X" if body[at] != "X" else "Y") + body[at + 1 :]
    assert len(changed.encode()) == len(body.encode())
    with factory() as session:
        sqlite = session.get_bind().dialect.name == "sqlite"
    set_stored_body(factory, seq, changed if sqlite else changed.encode())


def link_rows(conn: Connection) -> list[tuple[int, str, Any]]:
    """Every link as stored, ``(seq, kind, reference)`` in seq order: audit_link's rows, or
    on PostgreSQL since migration 0048 the elements of ``audit_record.links`` (the kind
    its first byte)."""
    if "audit_link" in inspect(conn).get_table_names():
        rows = conn.execute(text("SELECT seq, kind, reference FROM audit_link ORDER BY seq"))
        return [tuple(r) for r in rows]
    arrays = conn.execute(
        text("SELECT seq, links FROM audit_record WHERE links IS NOT NULL ORDER BY seq")
    )
    return [(seq, chr(e[0]), e[1:]) for seq, links in arrays for e in unpack_links(bytes(links))]


def _sqlite(session: Session) -> bool:
    """SQLite keeps the links as audit_link rows; PostgreSQL on the record (migration 0048)."""
    return session.get_bind().dialect.name == "sqlite"


def delete_row(factory: sessionmaker[Session], seq: int) -> None:
    with factory.begin() as session:
        if _sqlite(session):
            session.execute(text("DELETE FROM audit_link WHERE seq = :s"), {"s": seq})
        session.execute(text("DELETE FROM audit_record WHERE seq = :s"), {"s": seq})


def insert_row(factory: sessionmaker[Session], after: int) -> None:
    """A forged record after ``after``, chained correctly to it, the rest renumbered: the
    best an intruder without the checkpoint key can do."""
    with factory.begin() as session:
        links = []
        if _sqlite(session):  # on PostgreSQL the links move with their record
            links = session.execute(
                text("SELECT seq, kind, reference FROM audit_link WHERE seq > :a"), {"a": after}
            ).all()
            session.execute(text("DELETE FROM audit_link WHERE seq > :a"), {"a": after})
        # renumber in two steps: the key must hold after every row on PostgreSQL
        session.execute(text("UPDATE audit_record SET seq = -seq - 1 WHERE seq > :a"), {"a": after})
        session.execute(text("UPDATE audit_record SET seq = -seq WHERE seq < 0"))
        if links:
            session.execute(
                insert(AuditLink), [{"seq": q + 1, "kind": k, "reference": r} for q, k, r in links]
            )
        prev = session.execute(
            select(AuditRecord.hash).where(AuditRecord.seq == after)
        ).scalar_one()
        fields = {
            "recorded": "2026-03-01T08:00:00.000+00:00",
            "action": "fhir.read",
            "outcome": "success",
            "actor": "anonymous",
            "client": "anonymous",
            "facility": None,
            "address": None,
            "channel": "http",
            "request": None,
            "correlation": None,
            "message": None,
            "subject": None,
            "entities": [],
            "patients": [],
            "detail": {},
        }
        body = canonical(fields)
        digest = chain_hash(prev, body)
        session.execute(insert(AuditRecord), [row_of(after + 1, fields, body, prev, digest)])
