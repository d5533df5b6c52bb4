"""Long texts are stored and searchable, and a value the database refuses loses nothing
(issue 8, finding 1).

On PostgreSQL a btree index row must fit in about 2.7 KB: an OBX-5 of 900 Chinese
characters or an exam report's 2,000-character 检查所见 used to fail the whole message
(500 over HTTP, no ACK over MLLP, a stopped file-drop folder). These tests send such
messages through the real HTTP server, the MLLP listener and a file drop, and search for
them. They run on SQLite too (the search semantics of long values are the same there);
the ``-m db`` pass on PostgreSQL is where the index limit bites.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from adapter.connectors.hl7_ack import read_ack
from adapter.connectors.mllp_framing import END, START, FrameReader
from adapter.inbound import build_listener, build_source
from adapter.inbound.file_drop import FileSource
from adapter.inbound.mllp import MllpListener
from adapter.inbound.poller import poll_once
from adapter.pipeline.receipt import Receipt
from adapter.store import save_resources
from adapter.store.models import InboundMessage
from adapter.store.refusals import locate_refusal
from tests.integration.connector_helpers import example_pipeline as _pipeline
from tests.integration.connector_helpers import example_translator as _translator
from tests.live.server import LiveServer

SERVER_START = 120.0  # seconds for adapter serve to answer /health on a busy shared machine
ROOT = Path(__file__).resolve().parents[2]
URINE = ROOT / "fixtures" / "hl7v2" / "oru" / "std-hl7v2" / "urine-cwe.hl7"
THYROID = ROOT / "fixtures" / "xml" / "exam" / "county-pacs" / "us-thyroid.xml"
CT_CHEST = ROOT / "fixtures" / "xml" / "exam" / "county-pacs" / "ct-chest-no-zone.xml"

LONG_TEXT = ROOT / "fixtures" / "long-text"  # written to be real-shaped, not repetitive
OBX5_900 = (LONG_TEXT / "bone-marrow-morphology.txt").read_text(encoding="utf-8").strip()[:900]
# the paragraphs as one run of text: the exam mapping reads the element's text normalised
FINDINGS_2000 = "".join(
    (LONG_TEXT / "ct-chest-abdomen-findings.txt").read_text(encoding="utf-8").split()
)[:2000]
# a LIS without a code table for a result sends its wording as the CWE identifier
LONG_CODE = "".join(FINDINGS_2000[1000:1900].split())  # natural text, no spaces
# the findings of a follow-up report: the same first 1,500 characters, then other text
FOLLOW_UP = FINDINGS_2000[:1500] + OBX5_900[:500]


def long_oru(obx5: str = OBX5_900, code: str = LONG_CODE, control: str = "LONG0001") -> bytes:
    raw = URINE.read_text(encoding="utf-8")
    raw = raw.replace("QSLIS202611240027", control)
    raw = raw.replace("OBX|1|ST|COL^颜色^99QSLIS||淡黄色", f"OBX|1|TX|COL^颜色^99QSLIS||{obx5}")
    raw = raw.replace("10828004^阳性(+)^SCT", f"{code}^阳性(+)^99QSLIS")
    assert obx5 in raw and code in raw
    return raw.encode("utf-8")


def long_exam(findings: str = FINDINGS_2000, source: Path = THYROID) -> bytes:
    raw = source.read_text(encoding="utf-8")
    start, end = raw.index("<检查所见>") + len("<检查所见>"), raw.index("</检查所见>")
    return (raw[:start] + findings + raw[end:]).encode("utf-8")


def _search(server: LiveServer, rtype: str, **params: str) -> list[dict[str, Any]]:
    answer = httpx.get(server.url(f"/fhir/{rtype}"), params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    return [e["resource"] for e in answer.json().get("entry", [])]


def _ingest(server: LiveServer, source: str, raw: bytes, content_type: str) -> httpx.Response:
    return httpx.post(
        server.url("/ingest"),
        content=raw,
        headers={"X-Source-System": source, "Content-Type": content_type},
        timeout=60,
    )


def _differs_after(value: str, position: int) -> str:
    """``value`` up to ``position``, then one character it does not have there."""
    other = "甲" if value[position] != "甲" else "乙"
    return value[:position] + other


# -- through the real HTTP server ---------------------------------------------------------------
def test_long_results_over_http_are_stored_and_found(database_url: str, tmp_path: Path) -> None:
    with LiveServer(database_url, tmp_path, start_timeout=SERVER_START) as server:
        answer = _ingest(server, "std-hl7v2", long_oru(), "application/hl7-v2")
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "processed"

        # string search: the default is "starts with", case/accent-insensitive
        [found] = _search(server, "Observation", **{"value-string": OBX5_900[:300]})
        assert found["valueString"] == OBX5_900
        assert (
            _search(server, "Observation", **{"value-string": _differs_after(OBX5_900, 299)}) == []
        )
        [exact] = _search(server, "Observation", **{"value-string:exact": OBX5_900})
        assert exact["id"] == found["id"]
        assert _search(server, "Observation", **{"value-string:exact": OBX5_900[:-1]}) == []
        assert _search(server, "Observation", **{"value-string:contains": OBX5_900[650:]})

        # token search on the long code, with and without its system
        [coded] = _search(server, "Observation", **{"value-concept": LONG_CODE})
        [coding] = coded["valueCodeableConcept"]["coding"]
        assert coding["code"] == LONG_CODE
        both = _search(
            server, "Observation", **{"value-concept": f"{coding['system']}|{LONG_CODE}"}
        )
        assert [r["id"] for r in both] == [coded["id"]]
        miss = _differs_after(LONG_CODE, len(LONG_CODE) - 1)
        assert _search(server, "Observation", **{"value-concept": miss}) == []
        assert _search(server, "Observation", **{"value-concept": LONG_CODE[:-1]}) == []


def test_long_exam_findings_over_http_are_stored_and_found(
    database_url: str, tmp_path: Path
) -> None:
    assert len(FINDINGS_2000) == 2000
    with LiveServer(database_url, tmp_path, start_timeout=SERVER_START) as server:
        answer = _ingest(server, "county-pacs", long_exam(), "application/xml")
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "processed"
        [found] = _search(server, "Observation", **{"value-string": FINDINGS_2000[:1200]})
        assert found["valueString"] == FINDINGS_2000
        assert (
            _search(server, "Observation", **{"value-string": _differs_after(FINDINGS_2000, 1199)})
            == []
        )
        # another report whose findings share the first 1,500 characters is a different hit
        other = FOLLOW_UP
        answer = _ingest(server, "county-pacs", long_exam(other, CT_CHEST), "application/xml")
        assert answer.status_code == 202, answer.text
        assert len(_search(server, "Observation", **{"value-string": FINDINGS_2000[:1500]})) == 2
        [again] = _search(server, "Observation", **{"value-string": FINDINGS_2000[:1501]})
        assert again["id"] == found["id"]
        [exact] = _search(server, "Observation", **{"value-string:exact": other})
        assert exact["valueString"] == other


# -- through the MLLP listener and a file drop ----------------------------------------------
@pytest.fixture
def listening(session_factory: sessionmaker[Session]) -> Iterator[int]:
    pipeline = _pipeline(session_factory)
    facility, source = pipeline.consortium.source("std-hl7v2")  # type: ignore[misc]
    source = source.model_copy(update={"connector": {"kind": "mllp", "port": 0}})
    listener = build_listener(facility, source)
    assert isinstance(listener, MllpListener)
    port = listener.start(pipeline)
    try:
        yield port
    finally:
        listener.stop()


def _exchange(port: int, *messages: bytes) -> list[bytes | None]:
    """Each message on one connection and its answer (None: closed without one)."""
    answers: list[bytes | None] = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        reader = FrameReader(10_000_000)
        for message in messages:
            sock.sendall(START + message + END)
            frames: list[bytes] = []
            while not frames:
                chunk = sock.recv(65536)
                if not chunk:
                    answers.append(None)
                    return answers
                frames = reader.feed(chunk)
            answers.append(frames[0])
    return answers


def _file_source(inbox: Path, source_id: str) -> FileSource:
    facility, source = _translator().consortium.source(source_id)  # type: ignore[misc]
    connector = {"kind": "file", "path": str(inbox), "min_age_seconds": 0}
    built = build_source(facility, source.model_copy(update={"connector": connector}))
    assert isinstance(built, FileSource)
    return built


def _sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _messages(factory: sessionmaker[Session]) -> list[InboundMessage]:
    with factory() as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.received_at)))


def test_long_result_over_mllp_is_acknowledged_aa_and_stored(
    listening: int, session_factory: sessionmaker[Session]
) -> None:
    [answer] = _exchange(listening, long_oru())
    assert answer is not None, "connection closed without an ACK"
    ack = read_ack(answer)
    assert (ack.code, ack.control_id) == ("AA", "LONG0001")
    [stored] = _messages(session_factory)
    assert stored.status == "processed"


def test_long_exam_report_from_a_file_drop_is_stored_and_the_folder_goes_on(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a-long.xml").write_bytes(long_exam())
    (inbox / "b-short.xml").write_bytes(CT_CHEST.read_bytes())
    source = _file_source(inbox, "county-pacs")
    try:
        summary = poll_once(source, _pipeline(session_factory))
    finally:
        source.close()
    assert (summary.read, summary.stored, summary.failed, summary.error) == (2, 2, 0, None)
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["a-long.xml", "b-short.xml"]
    assert [m.status for m in _messages(session_factory)] == ["processed", "processed"]


# -- a value the database refuses ---------------------------------------------------------------
REFUSED_WORD = "拒收"


def _refuse(engine: Engine) -> None:
    """From now on the database really refuses a search_index value containing 拒收: a CHECK
    constraint on PostgreSQL, a trigger on SQLite (which cannot add one to a table). On
    PostgreSQL a string value is a row of ``search_token`` (decision 0114): refused there
    too."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    "ALTER TABLE search_index ADD CONSTRAINT ck_test_refuse "
                    f"CHECK (value IS NULL OR strpos(value, '{REFUSED_WORD}') = 0) NOT VALID"
                )
            )
            conn.execute(
                text(
                    "ALTER TABLE search_token ADD CONSTRAINT ck_test_refuse CHECK"
                    f" (strpos(code, '{REFUSED_WORD}') = 0"
                    f" AND strpos(value_norm, '{REFUSED_WORD}') = 0) NOT VALID"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER test_refuse BEFORE INSERT ON search_index "
                    f"WHEN NEW.value LIKE '%{REFUSED_WORD}%' "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )


def _accept(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE search_index DROP CONSTRAINT ck_test_refuse"))
            conn.execute(text("ALTER TABLE search_token DROP CONSTRAINT ck_test_refuse"))
        else:
            conn.execute(text("DROP TRIGGER test_refuse"))


@pytest.fixture
def refusing_database(engine: Engine) -> Iterator[None]:
    _refuse(engine)
    try:
        yield
    finally:
        _accept(engine)


def _refused_oru(control: str) -> bytes:
    return long_oru(obx5=f"标本溶血，{REFUSED_WORD}，请重新采集", control=control)


def _assert_located(issue: dict[str, Any]) -> None:
    assert issue["severity"] == "error"
    assert "the database refused to store Observation/" in issue["diagnostics"]
    assert "search index of value-string (Observation.valueString)" in issue["diagnostics"]
    location = issue["location"]  # a list in an OperationOutcome, a string in /messages
    assert (location[0] if isinstance(location, list) else location).startswith("Observation/")
    assert REFUSED_WORD not in issue["diagnostics"]  # the refused value is not quoted


def test_a_refused_value_over_http_is_kept_quarantined_with_a_located_422(
    database_url: str, tmp_path: Path, refusing_database: None
) -> None:
    raw = _refused_oru("REFUSE0001")
    with LiveServer(database_url, tmp_path, start_timeout=SERVER_START) as server:
        answer = _ingest(server, "std-hl7v2", raw, "application/hl7-v2")
        assert answer.status_code == 422, answer.text
        outcome = answer.json()
        assert outcome["resourceType"] == "OperationOutcome"
        _assert_located(outcome["issue"][0])
        assert outcome["issue"][0]["expression"] == ["Observation.valueString"]
        message_id = answer.headers["X-Message-Id"]
        kept = httpx.get(server.url(f"/messages/{message_id}")).json()
        assert kept["status"] == "quarantined"
        _assert_located(kept["issues"][0])
        assert httpx.get(server.url(f"/messages/{message_id}/raw")).content == raw
        # nothing of the refused message was stored
        assert _search(server, "Observation", **{"value-string": "标本溶血"}) == []
        assert REFUSED_WORD not in server.log_text()


def test_a_refused_value_over_mllp_gets_an_ae_naming_it_and_is_kept(
    listening: int, session_factory: sessionmaker[Session], refusing_database: None
) -> None:
    refused, fine = _refused_oru("REFUSE0002"), long_oru(control="FINE0002")
    answers = _exchange(listening, refused, fine)
    assert None not in answers, "connection closed without an ACK"
    first, second = (read_ack(a) for a in answers if a is not None)
    assert (first.code, first.control_id) == ("AE", "REFUSE0002")
    assert "the database refused to store Observation/" in first.issues[0].diagnostics
    assert (second.code, second.control_id) == ("AA", "FINE0002")  # the next one goes on
    statuses = {m.sha256: m.status for m in _messages(session_factory)}
    assert statuses == {_sha256(refused): "quarantined", _sha256(fine): "processed"}


def test_a_refused_file_goes_to_error_and_the_folder_goes_on(
    tmp_path: Path, session_factory: sessionmaker[Session], refusing_database: None
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a-refused.hl7").write_bytes(_refused_oru("REFUSE0003"))
    (inbox / "b-fine.hl7").write_bytes(long_oru(control="FINE0003"))
    source = _file_source(inbox, "std-hl7v2")
    try:
        summary = poll_once(source, _pipeline(session_factory))
    finally:
        source.close()
    assert (summary.read, summary.stored, summary.quarantined, summary.error) == (2, 1, 1, None)
    assert sorted(p.name for p in (inbox / "error").iterdir()) == [
        "a-refused.hl7",
        "a-refused.hl7.error.json",
    ]
    assert [p.name for p in (inbox / "done").iterdir()] == ["b-fine.hl7"]


def test_a_refused_message_is_processed_by_reprocess_once_the_database_accepts_it(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    pipeline = _pipeline(session_factory)
    _refuse(engine)
    try:
        first = pipeline.ingest(_refused_oru("REFUSE0004"), Receipt("std-hl7v2", "cli"))
    finally:
        _accept(engine)
    assert first.status == "quarantined"
    assert first.issues[0].expression == "Observation.valueString"
    again = pipeline.reprocess(first.message_id)
    assert again.status == "processed"


def test_a_refused_value_is_located_past_a_resource_stored_unchanged(
    session_factory: sessionmaker[Session], refusing_database: None
) -> None:
    # the Patient is stored already and unchanged: its index rows stay while each of its
    # values is tried again, numbered apart from them (decision 0085), so only the
    # Observation's value is the refusal
    now = datetime(2026, 5, 3, 8, 0, tzinfo=UTC)
    patient = {"resourceType": "Patient", "id": "kept", "name": [{"family": "王"}]}
    refused = {
        "resourceType": "Observation",
        "id": "refused",
        "status": "final",
        "code": {"text": "备注"},
        "subject": {"reference": "Patient/kept"},
        "valueString": f"标本溶血，{REFUSED_WORD}",
    }
    with session_factory.begin() as session:
        save_resources(session, [patient], message_id=None, now=now)
    with session_factory() as session:
        try:
            with session.begin_nested():
                save_resources(session, [patient, refused], message_id=None, now=now)
        except SQLAlchemyError as exc:
            failure: SQLAlchemyError = exc
        else:
            raise AssertionError("the database took the refused value")
        found = locate_refusal(
            session,
            [patient, refused],
            failure,
            message_id=None,
            now=now,
            facility_id=None,
            zone=UTC,
        )
    assert (found.resource, found.param) == ("Observation/refused", "value-string")
