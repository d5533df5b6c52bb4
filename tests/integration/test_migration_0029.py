"""Migration 0029 on a database that holds an audit log (SQLite, and PostgreSQL in the -m db
pass): records written at 0027 (hashes as hex text, references as text) answer the same
searches, disclosures and verify after the upgrade, stored as 32-byte digests and packed
references; a record written after it chains to them; the downgrade gives back the hex and
the text, and the chain over them still holds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from adapter.audit.chain import GENESIS, canonical, chain_hash, links_of
from adapter.audit.events import AuditEvent, record
from adapter.audit.writer import row_of
from adapter.store import make_engine, migrate
from adapter.store import session_factory as make_factory
from adapter.store.audit_log import AuditRecord
from adapter.store.audit_reference import pack
from adapter.store.engine import downgrade
from tests.audit.audit_support import link_rows
from tests.integration.test_migration_0027 import T0, _answers, _body, _ok

U1, U2 = "8f14e45f-ceea-467f-a1c4-1f5e3b9a1c2d", "0b6f1c2a-3d4e-4f50-8a6b-7c8d9e0f1a2b"
P1, P2 = f"Patient/{U1}", "Patient/p2"  # one UUID id (packed), one not (text)
OBS = f"Observation/{U2}"

SEARCHES: list[list[tuple[str, str]]] = [
    [("patient", U1)],
    [("patient", P2)],
    [("entity", OBS)],  # any version: the packed range
    [("entity", f"{OBS}/_history/2")],
    [("entity", "Observation/o-m2")],  # any version: the text range
    [("entity", f"Observation/{U2[:-1]}0")],  # another id: nothing
    [("date", "ge2026-11-30T08:03:00Z"), ("date", "lt2026-11-30T08:06:00.000Z")],
]


def _old_log() -> list[dict[str, Any]]:
    out = []
    for m, patient, obs in (("m1", P1, OBS), ("m2", P2, "Observation/o-m2")):
        for version in (1, 2):
            out += [
                _body(len(out), "message.received", m, detail={"size": 900}),
                _body(
                    len(out) + 1,
                    "message.stored",
                    m,
                    entities=[f"{obs}/_history/{version}", f"InboundMessage/{m}"],
                    patients=[patient],
                ),
                _body(
                    len(out) + 2,
                    "delivery.delivered",
                    m,
                    entities=[f"{obs}/_history/{version}"],
                    patients=[patient],
                    detail={"destination": "shiqiao-fhir", "rows": "1:written:4"},
                ),
            ]
    return out


def _write_at_0027(engine: Engine, bodies: list[dict[str, Any]]) -> None:
    """The rows as the code at 0027 stored them: hex hashes, text references (the body as
    plain text: 0027 reads it as such)."""
    prev, rows, links = GENESIS, [], []
    for seq, body in enumerate(bodies, start=1):
        text_body = canonical(body)
        digest = chain_hash(prev, text_body)
        row = row_of(seq, body, text_body, prev, digest)
        postgresql = engine.dialect.name == "postgresql"
        rows.append(
            {
                **row,
                "recorded": row["recorded"].isoformat(),
                "body": text_body.encode() if postgresql else text_body,
            }
        )
        links += [{"seq": seq, "kind": k, "reference": r} for k, r in sorted(links_of(body))]
        prev = digest
    columns = ", ".join(rows[0])
    values = ", ".join(f":{c}" for c in rows[0])
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO audit_record ({columns}) VALUES ({values})"), rows)
        conn.execute(
            text("INSERT INTO audit_link (seq, kind, reference) VALUES (:seq, :kind, :reference)"),
            links,
        )


def _answers_0029(engine: Engine) -> list[Any]:
    from adapter.audit.search import search_records

    with make_factory(engine)() as session:
        found = [
            [r.seq for r in search_records(session, q, count=50, offset=0)[1]] for q in SEARCHES
        ]
        heads = session.execute(
            select(AuditRecord.seq, AuditRecord.prev_hash, AuditRecord.hash)
        ).all()
    return [found, sorted(heads), *_answers(engine)[1:]]


def _stored(engine: Engine) -> tuple[list[Any], list[Any], set[str]]:
    with engine.connect() as conn:
        hashes = conn.execute(text("SELECT prev_hash, hash FROM audit_record ORDER BY seq")).all()
        links = link_rows(conn)  # audit_link, or audit_record.links (PostgreSQL, 0048)
        refs, kinds = [r for _, _, r in links], list({k for _, k, _ in links})
        if engine.dialect.name == "sqlite":  # SQLite: text before 0029, an integer after
            stored_as = conn.execute(text("SELECT DISTINCT typeof(recorded) FROM audit_record"))
            kinds = [*kinds, *(f"recorded:{t}" for t in stored_as.scalars())]
        return [tuple(h) for h in hashes], list(refs), set(kinds)


def _sqlite(engine: Engine, value: str) -> list[str]:
    return [value] if engine.dialect.name == "sqlite" else []


@pytest.mark.db  # blank_database_url is PostgreSQL's in the -m db pass
def test_0029_packs_hashes_and_references_and_answers_as_before(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    try:
        migrate(engine, "0027")
        bodies = _old_log()
        _write_at_0027(engine, bodies)
        old_hashes, _, kinds = _stored(engine)
        assert kinds == {"patient", "entity", *_sqlite(engine, "recorded:text")}
        assert all(isinstance(h, str) and len(h) == 64 for pair in old_hashes for h in pair)

        # the code reads the head's stored forms only: the answers are read after the upgrade
        migrate(engine)
        before = _answers_0029(engine)
        assert [len(seqs) for seqs in before[0]] == [4, 4, 4, 2, 4, 0, 3]
        assert [(p, h) for _, p, h in before[1]] == old_hashes  # read back as the same hex
        assert _ok(engine) == 12
        hashes, refs, kinds = _stored(engine)
        assert kinds == {"p", "e", *_sqlite(engine, "recorded:integer")}
        assert [(bytes(p), bytes(h)) for p, h in hashes] == [
            (bytes.fromhex(p), bytes.fromhex(h)) for p, h in old_hashes
        ]
        stored = {bytes(r) for r in refs}
        assert pack(P1) in stored and len(pack(P1)) == 18
        assert pack(f"{OBS}/_history/2") in stored and len(pack(f"{OBS}/_history/2")) == 20
        assert b"Patient/p2" in stored and b"InboundMessage/m1" in stored  # not a UUID: text

        # a record after the upgrade chains to the old ones and is found like them
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
                    entities=(f"{OBS}/_history/3",),
                    patients=(P1,),
                ),
                session=session,
            )
        assert _ok(engine) == 13
        after = _answers_0029(engine)
        assert after[0][0] == [13, *before[0][0]] and after[0][2] == [13, *before[0][2]]
        assert after[0][3] == before[0][3]  # version 2 only

        downgrade(engine, "0027")
        hashes, refs, kinds = _stored(engine)
        assert kinds == {"patient", "entity", *_sqlite(engine, "recorded:text")}
        assert [(s, p, h) for s, (p, h) in enumerate(hashes, start=1)] == after[1]
        assert set(refs) == {r for b in [*bodies] for _, r in links_of(b)} | {f"{OBS}/_history/3"}
        with engine.connect() as conn:  # the chain as 0027 reads it: over the hex text
            rows = conn.execute(
                text("SELECT seq, prev_hash, hash FROM audit_record ORDER BY seq")
            ).all()
        with make_factory(engine)() as session:
            texts = dict(session.execute(select(AuditRecord.seq, AuditRecord.body)).all())
        assert all(chain_hash(p, texts[s]) == h for s, p, h in rows)
        migrate(engine)  # and up again
        assert _answers_0029(engine) == after and _ok(engine) == 13
    finally:
        engine.dispose()
