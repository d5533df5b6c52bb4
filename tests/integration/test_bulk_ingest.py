"""Bulk ingest (issue 14 §2): many messages per transaction, a savepoint each.

A batch must store exactly what one transaction per message stores (the same resources,
versions, search index rows and outbox rows), and one bad message in it (a value the
database refuses, bytes that cannot be translated, the same bytes twice) must cost the
others nothing and lose nothing itself: it is kept, quarantined with its located issue or
answered as a duplicate, and the audit chain holds no record of a rolled-back attempt.
Runs on SQLite and, in the ``-m db`` pass, on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from adapter.audit.verify import verify
from adapter.pipeline.receipt import Receipt
from adapter.store import content_hash, make_engine, migrate
from adapter.store import session_factory as make_factory
from adapter.store.audit_log import AuditRecord
from adapter.store.identity_tables import (
    IdentityHistory,
    IdentityKey,
    IdentityRecord,
    IdentityReview,
)
from adapter.store.models import (
    InboundMessage,
    Outbox,
    Resource,
    ResourceVersion,
    SearchIndex,
    SearchParam,
    SearchSystem,
)
from adapter.store.search_tokens import index_rows
from tests.integration.connector_helpers import example_pipeline, example_translator
from tests.integration.referral_support import UP_SLIP, consortium_by_care, pipeline_for
from tests.integration.test_index_orphans import orphan_index_rows
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


def _systems(session: Session) -> dict[int, str]:
    return dict(session.execute(select(SearchSystem.system_id, SearchSystem.system)).all())


def _index_rows(session: Session) -> list[Any]:
    """Every index row with its type and parameter name; PostgreSQL's arrays as rows too
    (decisions 0088, 0103): the same rows on either database."""
    si, sp = index_rows(), SearchParam.__table__
    query = select(si, sp.c.resource_type, sp.c.param).join(sp, sp.c.param_id == si.c.param_id)
    return list(session.execute(query))


def _values(session: Session) -> list[str | None]:
    """Every index row's ``value``; PostgreSQL's arrays as rows too (a string value is a
    dictionary id there, decision 0114)."""
    return list(session.scalars(select(index_rows().c.value)))


def _stored(factory: sessionmaker[Session]) -> dict[str, Any]:
    """What the store holds, without the moments and message ids that differ between runs."""
    with factory() as session:
        resources = {
            (r.resource_type, r.id): (r.version_id, r.content_hash, r.patient_key)
            for r in session.scalars(select(Resource))
        }
        ids = {r.resource_key: r.id for r in session.scalars(select(Resource))}
        systems = _systems(session)
        versions = Counter(  # a superseded version keeps its body (decision 0042)
            (v.resource_type, v.id, v.version_id, v.body is not None)
            for v in session.scalars(select(ResourceVersion))
        )
        index = Counter(
            (
                i.resource_type,
                ids[i.resource_key],
                i.param,
                i.kind,
                systems.get(i.system_id),  # the text: ids depend on the order of first use
                i.code,
                i.value,
                i.value_norm,
                i.value_date_start,
                i.value_date_end,
                # a token row's number is the system of the type it carries (decision 0098)
                systems.get(int(i.value_number))
                if i.kind == 1 and i.value_number
                else i.value_number,
                i.reference,
                i.code_full,
                i.value_norm_full,
                i.reference_full,
            )
            for i in _index_rows(session)
            if i.resource_type != "Provenance"  # names the message and the moment
        )
        outbox = [  # in the order queued: the order of delivery
            (o.destination, o.resource_type, o.resource_id, o.version_id, o.reason)
            for o in session.scalars(select(Outbox).order_by(Outbox.id))
            if o.resource_type != "Provenance"
        ]
        statuses = Counter(  # a batch updates the rows at its commit (decision 0050)
            (m.status, m.attempts, tuple(m.resources), len(m.issues), m.processed_at is not None)
            for m in session.scalars(select(InboundMessage))
        )
        provenance = _provenance(session)
        identity = _identity(session)
    resources = {k: v for k, v in resources.items() if k[0] != "Provenance"}
    versions = Counter({k: n for k, n in versions.items() if k[0] != "Provenance"})
    return {
        "resources": resources,
        "versions": versions,
        "index": index,
        "outbox": outbox,
        "statuses": statuses,
        "provenance": provenance,
        "identity": identity,
    }


def _identity(session: Session) -> dict[str, Any]:
    """The patient index: records and their links, keys, history rows in the order written
    (a batch holds them to its commit: decision 0050, amended) and review items, without
    the moments."""
    records = {
        r.patient_id: (
            r.person_id,
            r.facility_id,
            r.link_kind,
            r.rule_version,
            r.rule,
            r.score,
            r.evidence,
            r.features,
        )
        for r in session.scalars(select(IdentityRecord))
    }
    keys = {(k.patient_id, k.key_hash) for k in session.scalars(select(IdentityKey))}
    history = [
        (
            h.action,
            h.patient_id,
            h.person_id,
            h.previous_person_id,
            h.actor,
            h.reason,
            h.rule_version,
            h.rule,
            h.score,
            h.evidence,
        )
        for h in session.scalars(select(IdentityHistory).order_by(IdentityHistory.id))
    ]
    reviews = Counter(
        (v.patient_id, v.other_id, v.reason, v.state, v.rule, v.score)
        for v in session.scalars(select(IdentityReview))
    )
    return {"records": records, "keys": keys, "history": history, "reviews": reviews}


def _provenance(session: Session) -> dict[str, Any]:
    """Each message's Provenance (a batch holds its rows to the commit: decision 0050), by
    the message's bytes, without what names the message or the moment: its row, targets,
    agents and policy, history rows, and index rows."""
    message = {m.id: (m.source_system, m.sha256) for m in session.scalars(select(InboundMessage))}
    rows = {}
    ids = {r.resource_key: r.id for r in session.scalars(select(Resource))}
    systems = _systems(session)
    for r in session.scalars(select(Resource).where(Resource.resource_type == "Provenance")):
        body = r.body
        rows[message[r.id]] = (
            r.version_id,
            r.deleted,
            r.patient_key,
            r.facility_id,
            r.message_id == r.id,
            body["id"] == r.id,
            body["meta"]["versionId"],
            [t["reference"] for t in body["target"]],
            body["agent"],
            body.get("policy"),
            body["entity"][0]["what"]["identifier"],
        )
    versions = Counter(
        (message[v.id], v.version_id, v.body is not None, v.message_id == v.id)
        for v in session.scalars(
            select(ResourceVersion).where(ResourceVersion.resource_type == "Provenance")
        )
    )
    index = Counter(
        (
            message[ids[i.resource_key]],
            i.param,
            i.kind,
            systems.get(i.system_id),
            i.code,
            i.value_norm,
            i.reference,
        )
        for i in _index_rows(session)
        if i.resource_type == "Provenance"
        and i.value_date_start is None  # recorded: the moment
        and not any(ids[i.resource_key] in (v or "") for v in (i.code, i.value_norm, i.reference))
    )
    # a Provenance is written once: its current version, the resource row, and no history
    # row (decision 0075)
    assert rows and not versions and index
    return {"rows": rows, "versions": versions, "index": index}


def _routed(tmp_path: Path) -> Path:
    """The example consortium with its destinations enabled: messages queue outbox rows."""
    config = tmp_path / "routed.yaml"
    text = (ROOT / "fixtures" / "consortium.yaml").read_text(encoding="utf-8")
    config.write_text(text.replace("enabled: false", "enabled: true"), encoding="utf-8")
    return config


def test_a_batch_stores_what_one_transaction_per_message_stores(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    items = _fixtures()
    assert len(items) >= 20
    config = _routed(tmp_path)
    bulk = list(pipeline_for(config, session_factory).ingest_many(items, batch=7))
    assert [r.duplicate for r in bulk] == [False] * len(items)

    alone_engine = make_engine(f"sqlite:///{tmp_path / 'alone.db'}")
    migrate(alone_engine)
    try:
        alone_factory = make_factory(alone_engine)
        pipeline = pipeline_for(config, alone_factory)
        alone = [pipeline.ingest(raw, receipt) for raw, receipt in items]
        assert [r.status for r in bulk] == [r.status for r in alone]
        assert [r.resources for r in bulk] == [r.resources for r in alone]
        stored = _stored(session_factory)
        assert stored["outbox"]  # routed rows too, compared in the order queued
        assert stored == _stored(alone_factory)
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
        values = _values(session)
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


# -- the batch's search index rows, written once at its commit (decision 0047) ------------

BATCH_FAILED = "bulk ingest: a batch of"  # logged when a whole batch goes one by one
KEPT_OUT = "拒存"  # a word whose message the database refuses (below)
KEPT_OUT_MESSAGE = long_oru(obx5=f"结果{KEPT_OUT}", control="ROLL0002")


def _kept_out_hash() -> str:
    """The content hash of the KEPT_OUT message's Observation (no message id in it)."""
    translator = example_translator()
    facility, source = translator.source("std-hl7v2")
    outcome = translator.translate_for(KEPT_OUT_MESSAGE, facility, source, "kept-out")
    (kept,) = [r for r in outcome.resources if KEPT_OUT in str(r)]
    return content_hash(kept)


def _refuse_bodies(engine: Engine) -> None:
    """The database refuses the resource rows of the message that holds KEPT_OUT: the
    failure comes inside its savepoint, after save_resources buffered its index rows. The
    trigger knows the message by its sha256 (its 32 bytes, decision 0081): bodies and raw
    bytes are stored compressed (decisions 0049, 0065)."""
    digest = hashlib.sha256(KEPT_OUT_MESSAGE).hexdigest()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # also by the content hash of its Observation: a bulk batch on PostgreSQL writes
            # the message's row after its resources (decision 0089)
            conn.execute(
                text(
                    "CREATE FUNCTION test_kept_out() RETURNS trigger LANGUAGE plpgsql AS $$ "
                    f"BEGIN IF NEW.content_hash = decode('{_kept_out_hash()}', 'hex') "
                    "OR EXISTS (SELECT 1 FROM inbound_message m WHERE m.id = "
                    f"NEW.message_id AND m.sha256 = decode('{digest}', 'hex')) "
                    "THEN RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'check_violation'; "
                    "END IF; RETURN NEW; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER test_kept_out BEFORE INSERT OR UPDATE ON resource "
                    "FOR EACH ROW EXECUTE FUNCTION test_kept_out()"
                )
            )
            return
        for event in ("INSERT", "UPDATE"):
            conn.execute(
                text(
                    f"CREATE TRIGGER test_kept_out_{event.lower()} BEFORE {event} ON resource "
                    "WHEN EXISTS (SELECT 1 FROM inbound_message m WHERE m.id = NEW.message_id "
                    f"AND m.sha256 = X'{digest}') "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )


def _accept_bodies(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("DROP TRIGGER test_kept_out ON resource"))
            conn.execute(text("DROP FUNCTION test_kept_out()"))
            return
        for event in ("insert", "update"):
            conn.execute(text(f"DROP TRIGGER test_kept_out_{event}"))


@pytest.fixture
def refusing_bodies(engine: Engine) -> Iterator[None]:
    _refuse_bodies(engine)
    try:
        yield
    finally:
        _accept_bodies(engine)


def _alone(
    tmp_path: Path,
    items: list[tuple[bytes, Receipt]],
    refuse: Callable[[Engine], None] | None = None,
    name: str = "alone",
) -> Any:
    """Results and stored state of ``items`` ingested one transaction each (SQLite, the
    destinations enabled; ``refuse`` prepares the database to refuse something)."""
    engine = make_engine(f"sqlite:///{tmp_path / name}.db")
    migrate(engine)
    if refuse is not None:
        refuse(engine)
    try:
        factory = make_factory(engine)
        pipeline = pipeline_for(_routed(tmp_path), factory)
        return [pipeline.ingest(raw, receipt) for raw, receipt in items], _stored(factory)
    finally:
        engine.dispose()


def _observation_values(factory: sessionmaker[Session]) -> set[str]:
    """The searchable free-text results the tests below write (each ends with 结果)."""
    si, sp = index_rows(), SearchParam.__table__
    query = (
        select(si.c.value)
        .join(sp, sp.c.param_id == si.c.param_id)
        .where(sp.c.resource_type == "Observation", sp.c.param == "value-string")
    )
    with factory() as session:
        return {v for v in session.scalars(query) if v and v.endswith("结果")}


def test_a_resource_changed_twice_in_a_batch_keeps_its_last_index_rows(
    session_factory: sessionmaker[Session], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the same report three times, its free-text result changed each time: one Observation
    # with three versions, of which only the last is searchable
    items = [
        (long_oru(obx5=f"第{n}次复查结果", control=f"TWICE{n:03d}"), Receipt("std-hl7v2", "cli"))
        for n in (1, 2, 3)
    ]
    with caplog.at_level(logging.WARNING, logger="adapter.pipeline.bulk"):
        pipeline = pipeline_for(_routed(tmp_path), session_factory)
        bulk = list(pipeline.ingest_many(items, batch=10))
    assert BATCH_FAILED not in caplog.text
    alone, stored = _alone(tmp_path, items)
    assert [r.status for r in bulk] == [r.status for r in alone] == ["processed"] * 3
    assert _stored(session_factory) == stored
    assert _observation_values(session_factory) == {"第3次复查结果"}
    with session_factory() as session:
        history = session.execute(
            select(ResourceVersion.id, ResourceVersion.version_id, ResourceVersion.body).where(
                ResourceVersion.resource_type == "Observation"
            )
        ).all()
        current = {r.id: r.version_id for r in session.scalars(select(Resource))}
    # the superseded versions 1 and 2 are history rows with their bodies; the current one,
    # 3, is the resource row only (decision 0075)
    changed = {rid for rid, _, _ in history}
    assert changed and all(current[rid] == 3 for rid in changed)
    assert sorted({v for _, v, _ in history}) == [1, 2]
    assert all(body is not None for _, _, body in history)


def test_a_stored_resource_changed_twice_in_a_batch_keeps_its_last_index_rows(
    session_factory: sessionmaker[Session],
    engine: Engine,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the Observation stored by a first batch, then changed twice in a second: the first
    # change's rows (superseded in the batch) are written while the stored rows are still
    # there, and deleted with them (decision 0085 numbers them apart on SQLite)
    items = [
        (long_oru(obx5=f"第{n}次结果", control=f"AGAIN{n:03d}"), Receipt("std-hl7v2", "cli"))
        for n in (1, 2, 3)
    ]
    with caplog.at_level(logging.WARNING, logger="adapter.pipeline.bulk"):
        pipeline = pipeline_for(_routed(tmp_path), session_factory)
        bulk = list(pipeline.ingest_many(items[:1], batch=10))
        bulk += list(pipeline.ingest_many(items[1:], batch=10))
    assert BATCH_FAILED not in caplog.text
    alone, stored = _alone(tmp_path, items)
    assert [r.status for r in bulk] == [r.status for r in alone] == ["processed"] * 3
    assert _stored(session_factory) == stored
    assert _observation_values(session_factory) == {"第3次结果"}
    if engine.dialect.name == "sqlite":  # each resource's rows numbered 0, 1, ...
        with engine.connect() as conn:
            counts = conn.execute(
                text(
                    "SELECT count(*), min(row_id), max(row_id) FROM search_index"
                    " GROUP BY resource_key"
                )
            ).all()
        assert counts and all((low, high) == (0, n - 1) for n, low, high in counts)


def test_a_message_rolled_back_in_a_batch_drops_its_buffered_index_rows(
    session_factory: sessionmaker[Session],
    engine: Engine,
    tmp_path: Path,
    refusing_bodies: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the second message changes the Observation the first stored, its index rows are
    # buffered, then the database refuses its resource row: its savepoint rolls back, and
    # its rows must go with it (the first message's rows come back), the third's stay
    items = [
        (long_oru(obx5="首次结果", control="ROLL0001"), Receipt("std-hl7v2", "cli")),
        (KEPT_OUT_MESSAGE, Receipt("std-hl7v2", "cli")),
        (long_oru(obx5="再次结果", control="ROLL0003"), Receipt("std-hl7v2", "cli")),
        (long_oru(obx5="末次结果", control="ROLL0004", code="OTHER1"), Receipt("std-hl7v2", "cli")),
    ]
    pipeline = pipeline_for(_routed(tmp_path), session_factory)
    with caplog.at_level(logging.WARNING, logger="adapter.pipeline.bulk"):
        first = list(pipeline.ingest_many(items[:2], batch=10))
    assert BATCH_FAILED not in caplog.text
    assert [r.status for r in first] == ["processed", "quarantined"]
    assert _observation_values(session_factory) == {"首次结果"}  # the first one's, restored
    assert _stored(session_factory) == _alone(tmp_path, items[:2], _refuse_bodies, name="first")[1]

    bulk = first + list(pipeline.ingest_many(items[2:], batch=10))
    alone, stored = _alone(tmp_path, items, _refuse_bodies)
    assert [r.status for r in bulk] == [r.status for r in alone]
    assert stored["outbox"]
    assert _stored(session_factory) == stored
    with session_factory() as session:
        values = _values(session)
        assert not any(KEPT_OUT in (v or "") for v in values)
        assert verify(session).ok


LATE_PEER = "refused-late"  # the database refuses to mark this peer's message processed


def _refuse_late(engine: Engine) -> None:
    """The database refuses the last write of a message from LATE_PEER (its status), after
    every step queued its rows: versions, index rows, outbox rows (PostgreSQL's bulk batch:
    the message row's one INSERT, decision 0089)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION test_refuse_late() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.status LIKE 'processed%' AND NEW.peer = '{LATE_PEER}' THEN "
                    "RAISE EXCEPTION 'refused by the test' USING ERRCODE = '23514'; "
                    "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            # INSERT too: a bulk batch on PostgreSQL inserts the message's row once, with
            # its result (decision 0089)
            conn.execute(
                text(
                    "CREATE TRIGGER test_refuse_late BEFORE INSERT OR UPDATE ON inbound_message "
                    "FOR EACH ROW EXECUTE FUNCTION test_refuse_late()"
                )
            )
            return
        conn.execute(
            text(
                "CREATE TRIGGER test_refuse_late BEFORE UPDATE ON inbound_message "
                f"WHEN NEW.status LIKE 'processed%' AND NEW.peer = '{LATE_PEER}' "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        )


@pytest.fixture
def refusing_late(engine: Engine) -> Iterator[None]:
    _refuse_late(engine)
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(
                text("DROP TRIGGER test_refuse_late ON inbound_message")
                if engine.dialect.name == "postgresql"
                else text("DROP TRIGGER test_refuse_late")
            )
            if engine.dialect.name == "postgresql":
                conn.execute(text("DROP FUNCTION test_refuse_late()"))


def test_a_message_failing_after_it_queued_its_rows_drops_them_all(
    session_factory: sessionmaker[Session],
    engine: Engine,
    tmp_path: Path,
    refusing_late: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the middle message changes the Observation the first stored, queues its versions,
    # index rows and deliveries, then fails: all of them go with its savepoint
    items = [
        (long_oru(obx5="甲结果", control="LATE0001"), Receipt("std-hl7v2", "cli")),
        (long_oru(obx5="乙结果", control="LATE0002"), Receipt("std-hl7v2", "cli", peer=LATE_PEER)),
        (long_oru(obx5="丙结果", control="LATE0003", code="OTHER2"), Receipt("std-hl7v2", "cli")),
    ]
    with caplog.at_level(logging.INFO, logger="adapter.pipeline.bulk"):
        pipeline = pipeline_for(_routed(tmp_path), session_factory)
        bulk = list(pipeline.ingest_many(items, batch=10))
    assert BATCH_FAILED not in caplog.text  # the others' work stayed in the batch
    assert caplog.text.count("goes on its own") == 1
    alone, stored = _alone(tmp_path, items, _refuse_late)
    assert [r.status for r in bulk] == [r.status for r in alone]
    assert bulk[1].status == "quarantined"
    assert stored["outbox"]
    assert _stored(session_factory) == stored
    assert _observation_values(session_factory) == {"丙结果"}  # the last one kept
    with session_factory() as session:  # no foreign key on PostgreSQL (decision 0060)
        assert orphan_index_rows(session) == 0


def _new_patient(raw: bytes, national_id: str, name: str, birth: str, sex: str) -> bytes:
    """``raw`` (long_oru) about another patient: a new record, a new person, a history row."""
    text_ = raw.decode("utf-8")
    pid = (
        "PID|1||430999200107142461^^^&2.16.156.10011.1.3&ISO^NNCHN~0000614420^^^QSXRMYY^PI||"
        "胡^小燕||20010714|F|"
    )
    assert pid in text_
    local = national_id[-10:]
    new = (
        f"PID|1||{national_id}^^^&2.16.156.10011.1.3&ISO^NNCHN~{local}^^^QSXRMYY^PI||"
        f"{name}||{birth}|{sex}|"
    )
    return text_.replace(pid, new).encode("utf-8")


def test_a_new_patient_s_message_failing_late_takes_its_index_rows_with_it(
    session_factory: sessionmaker[Session],
    engine: Engine,
    tmp_path: Path,
    refusing_late: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the middle message links a new patient (its record, keys and held history row), then
    # its status is refused: it alone goes on its own, without any of its index rows, and
    # the others' records and history rows stay in the batch, as one by one
    items = [
        (long_oru(control="NEWP0001"), Receipt("std-hl7v2", "cli")),
        (
            _new_patient(
                long_oru(control="NEWP0002", code="OTHER3"),
                "430999198503021231",
                "王^大明",
                "19850302",
                "M",
            ),
            Receipt("std-hl7v2", "cli", peer=LATE_PEER),
        ),
        (
            _new_patient(
                long_oru(control="NEWP0003", code="OTHER4"),
                "430999199006114562",
                "李^秀兰",
                "19900611",
                "F",
            ),
            Receipt("std-hl7v2", "cli"),
        ),
    ]
    with caplog.at_level(logging.INFO, logger="adapter.pipeline.bulk"):
        pipeline = pipeline_for(_routed(tmp_path), session_factory)
        bulk = list(pipeline.ingest_many(items, batch=10))
    assert BATCH_FAILED not in caplog.text
    assert caplog.text.count("goes on its own") == 1
    assert [r.status for r in bulk] == ["processed", "quarantined", "processed"]
    alone, stored = _alone(tmp_path, items, _refuse_late)
    assert [r.status for r in bulk] == [r.status for r in alone]
    assert len(stored["identity"]["records"]) == 2  # the refused one's patient is not linked
    assert [h[0] for h in stored["identity"]["history"]] == ["link", "link"]
    assert _stored(session_factory) == stored
    with session_factory() as session:  # no foreign key on PostgreSQL (decision 0060)
        assert orphan_index_rows(session) == 0


def test_a_new_patient_twice_in_a_batch_is_linked_once(
    session_factory: sessionmaker[Session], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # on SQLite a batch keeps the patient index's answers while the index is unchanged
    # (decision 0050, amended): the first message's new record must be seen by the second,
    # or it inserts the record again (a duplicate key: the message would go on its own)
    patient = ("430999198503021231", "王^大明", "19850302", "M")
    items = [
        (long_oru(control="TWICE001"), Receipt("std-hl7v2", "cli")),
        (_new_patient(long_oru(control="TWICE002"), *patient), Receipt("std-hl7v2", "cli")),
        (long_oru(control="TWICE003", code="OTHER5"), Receipt("std-hl7v2", "cli")),
        (
            _new_patient(long_oru(control="TWICE004", code="OTHER6"), *patient),
            Receipt("std-hl7v2", "cli"),
        ),
    ]
    with caplog.at_level(logging.INFO, logger="adapter.pipeline.bulk"):
        pipeline = pipeline_for(_routed(tmp_path), session_factory)
        bulk = list(pipeline.ingest_many(items, batch=10))
    assert "goes on its own" not in caplog.text
    alone, stored = _alone(tmp_path, items)
    assert [r.status for r in bulk] == [r.status for r in alone] == ["processed"] * 4
    assert len(stored["identity"]["records"]) == 2
    assert _stored(session_factory) == stored


def test_a_failed_write_of_the_index_rows_fails_the_batch_as_a_whole(
    session_factory: sessionmaker[Session],
    engine: Engine,
    refusing_database: None,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the index value the database refuses is only written at the batch's commit: the whole
    # batch fails there, and each message goes the single-message way (the refused one is
    # quarantined with its located issue, the others stored as if alone)
    items = [
        (long_oru(control="FLUSH001"), Receipt("std-hl7v2", "cli")),
        (long_oru(control="FLUSH002", code="OTHER02"), Receipt("std-hl7v2", "cli")),
        (_refused_oru("FLUSH003"), Receipt("std-hl7v2", "cli")),
    ]
    with caplog.at_level(logging.WARNING, logger="adapter.pipeline.bulk"):
        results = list(example_pipeline(session_factory).ingest_many(items, batch=10))
    assert f"{BATCH_FAILED} 3 failed" in caplog.text
    assert [r.status for r in results] == ["processed", "processed", "quarantined"]
    _assert_located(results[2].issues[0].as_dict())
    with session_factory() as session:
        values = _values(session)
        assert not any(REFUSED_WORD in (v or "") for v in values)
        stored = session.scalars(
            select(Resource.id).where(Resource.message_id == results[1].message_id)
        ).all()
        assert stored
        keys = select(Resource.resource_key).where(Resource.message_id == results[1].message_id)
        indexed = session.scalars(
            select(SearchIndex.resource_key).where(SearchIndex.resource_key.in_(keys))
        ).all()
        assert indexed  # the single-message way wrote their index rows
        assert verify(session).ok


def test_a_search_in_a_batch_sees_what_the_batch_stored(
    tmp_path: Path, database_url: str, session_factory: sessionmaker[Session]
) -> None:
    # the up-slip (a referral Task) and the patient's admission at the county in one batch:
    # the admission step searches for the patient's open Task, which must find the one the
    # batch just stored (the buffered index rows are written before the search)
    pipeline = pipeline_for(consortium_by_care(tmp_path), session_factory)
    adt = (ROOT / "fixtures/hl7v2/adt/county-his/a01-admit.hl7").read_text(encoding="utf-8")
    for old, new in (
        ("430999196207071534", "430999196704151244"),
        ("彭^志刚", "张^秀英"),
        ("|19620707|M|", "|19670415|F|"),
        ("QSHIS2612010088", "BULKREF01"),
    ):
        assert old in adt
        adt = adt.replace(old, new)
    now = datetime.now(UTC)
    items = [
        (UP_SLIP.read_bytes(), Receipt("shiqiao-his", "cli", received_at=now)),
        (adt.encode("utf-8"), Receipt("county-his", "cli", received_at=now)),
    ]
    slip, admitted = pipeline.ingest_many(items, batch=10)
    assert admitted.status.startswith("processed"), admitted.issues
    notes = " | ".join(str(i.as_dict().get("diagnostics")) for i in admitted.issues)
    assert "moved to in-progress / admitted" in notes
    task = next(r for r in slip.resources if r.startswith("Task/")).split("/", 1)[1]
    with session_factory() as session:
        body = session.get(Resource, ("Task", task))
        assert body is not None
        assert body.body["status"] == "in-progress"
