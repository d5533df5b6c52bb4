"""Bad HL7 v2 input, end to end: every entry of fixtures/hl7v2/bad/cases.yaml through a real
Pipeline on the test database, the reader's error classes, reprocessing, and the HTTP edge
(bad bodies answer located 4xx OperationOutcomes, a crash while translating quarantines the
message and the server keeps serving)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

import adapter.errors
from adapter.consortium import load_consortium
from adapter.errors import Issue, MessageError, ParseError
from adapter.hl7v2 import parse_hl7v2
from adapter.mapping.loader import MappingSet
from adapter.pipeline import Pipeline
from adapter.pipeline.receipt import Receipt
from adapter.runtime import make_pipeline
from adapter.settings import Settings
from adapter.store.models import InboundMessage, Outbox, Resource, ResourceVersion
from tests.fhir_checks import validate_r4

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "fixtures" / "hl7v2" / "bad"
ORU = ROOT / "fixtures" / "hl7v2" / "oru"
CASES: list[dict[str, Any]] = yaml.safe_load((BAD / "cases.yaml").read_text(encoding="utf-8"))
QUARANTINED = [c for c in CASES if c["outcome"] == "quarantined"]


def _ids(case: dict[str, Any]) -> str:
    return case["file"].removesuffix(".hl7")


@pytest.fixture
def pipeline(settings: Settings, session_factory: sessionmaker[Session]) -> Pipeline:
    return make_pipeline(settings, load_consortium(settings.config), session_factory)


def _texts(case: dict[str, Any]) -> list[str]:
    wanted = case["diagnostics"]
    return [str(t) for t in (wanted if isinstance(wanted, list) else [wanted])]


def _matches(issue: Issue, case: dict[str, Any]) -> bool:
    """The issue sits where the entry says and says what it says."""
    where = case["location"]
    if where is None:
        # no position inside the input to name: the issue is about the whole input
        located = issue.location in (None, "message")
    else:
        located = (issue.location or "").startswith(where)
    said = any(t.lower() in issue.diagnostics.lower() for t in _texts(case))
    return located and said


def _count(session: Session, table: type) -> int:
    query = select(func.count()).select_from(table)
    if table is Resource:  # the adapter's own CodeSystems, stored when the app starts
        query = query.where(Resource.resource_type.not_in(("CodeSystem", "OperationDefinition")))
    return session.scalar(query) or 0


# -- every entry through the pipeline -----------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_case_through_the_pipeline(
    case: dict[str, Any], pipeline: Pipeline, session_factory: sessionmaker[Session]
) -> None:
    raw = (BAD / case["file"]).read_bytes()
    result = pipeline.ingest(
        raw, Receipt(case["source"], "cli", content_type="x-application/hl7-v2+er7")
    )

    assert result.status == case["outcome"], [i.as_dict() for i in result.issues]
    assert not result.duplicate
    if case["outcome"] == "quarantined":
        problems = [i for i in result.issues if i.severity in ("error", "fatal")]
        assert any(_matches(i, case) for i in problems), [i.as_dict() for i in problems]
        assert result.resources == []
    else:
        assert not [i for i in result.issues if i.severity in ("error", "fatal")]
        warnings = [i for i in result.issues if i.severity == "warning"]
        assert any(_matches(i, case) for i in warnings), [i.as_dict() for i in result.issues]
        assert result.resources

    with session_factory() as session:
        message = session.get(InboundMessage, result.message_id)
        assert message is not None
        assert message.raw == raw  # byte for byte, whatever it was
        assert message.status == case["outcome"]
        assert message.source_system == case["source"]
        stored = [Issue.from_dict(i) for i in message.issues]
        assert stored == result.issues
        resources = _count(session, Resource)
        if case["outcome"] == "quarantined":
            assert resources == 0
            assert _count(session, ResourceVersion) == 0
            assert _count(session, Outbox) == 0
        else:
            assert resources == len(set(result.resources)) + 1  # and the message's Provenance


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_error_class(case: dict[str, Any], pipeline: Pipeline) -> None:
    """The reader raises the class the entry names; where the reader is content and the
    mapping finds the problem, the pipeline turns it into an error issue (MessageError's
    outcome) instead of raising."""
    raw = (BAD / case["file"]).read_bytes()
    wanted = getattr(adapter.errors, case["error"]) if case.get("error") else None
    try:
        parse_hl7v2(raw)
    except MessageError as exc:
        assert wanted is not None, f"the reader refused an acceptable message: {exc.message}"
        assert isinstance(exc, wanted)
        assert any(_matches(i, case) for i in exc.issues), [i.as_dict() for i in exc.issues]
        # the pipeline records the reader's issue as it is: code = the class's issue code
        outcome = pipeline.translate(raw, case["source"])
        assert outcome.failed
        assert [i.as_dict() for i in outcome.issues] == [i.as_dict() for i in exc.issues]
        assert all(i.code == type(exc).issue_code for i in outcome.issues)
        return
    # the reader accepted it: only a problem of content (mapping, values) may remain
    assert wanted is None or (wanted is MessageError), (
        f"{case['file']}: the reader should raise {case['error']}"
    )
    outcome = pipeline.translate(raw, case["source"])
    assert outcome.failed is (wanted is not None)
    assert all(i.code != ParseError.issue_code for i in outcome.issues)


@pytest.mark.parametrize("case", QUARANTINED, ids=_ids)
def test_reprocessing_without_a_fix_keeps_it_quarantined(
    case: dict[str, Any], pipeline: Pipeline, session_factory: sessionmaker[Session]
) -> None:
    raw = (BAD / case["file"]).read_bytes()
    first = pipeline.ingest(raw, Receipt(case["source"], "cli"))
    again = pipeline.reprocess(first.message_id)
    assert again.message_id == first.message_id
    assert again.status == "quarantined"
    assert [i.as_dict() for i in again.issues] == [i.as_dict() for i in first.issues]
    with session_factory() as session:
        message = session.get(InboundMessage, first.message_id)
        assert message is not None
        assert message.attempts == 2
        assert message.raw == raw
        assert _count(session, Resource) == 0
        assert _count(session, InboundMessage) == 1
    # sending the same bytes again does not make a second message, nor a retry
    assert pipeline.ingest(raw, Receipt(case["source"], "cli")).duplicate


# -- truncation (the reader) ----------------------------------------------------------------------

GOOD = (ORU / "std-hl7v2" / "cbc-basic.hl7").read_bytes()


def _with_charset(charset: str, tail: str = "") -> str:
    """cbc-basic.hl7 with another MSH-18 (empty: undeclared) and extra text at the end."""
    text = GOOD.decode("utf-8").rstrip("\r") + tail
    return text.replace("|UNICODE UTF-8\r", f"|{charset}\r", 1)


@pytest.mark.parametrize(
    ("charset", "codec"),
    [("UNICODE UTF-8", "utf-8"), ("", "utf-8"), ("GB 18030-2000", "gb18030"), ("", "gb18030")],
)
def test_cut_inside_a_character_is_truncation_at_the_last_segment(charset: str, codec: str) -> None:
    raw = _with_charset(charset, "\rNTE|2||标本溶血").encode(codec)[:-1]
    with pytest.raises(ParseError) as caught:
        parse_hl7v2(raw)
    assert caught.value.location == "NTE[2]", caught.value.message
    assert "truncated" in caught.value.message
    assert "标本" not in caught.value.message  # the text itself is never repeated
    parse_hl7v2(raw + _with_charset(charset, "\rNTE|2||标本溶血").encode(codec)[-1:])


def test_a_wrong_byte_before_the_end_is_still_a_charset_error() -> None:
    """Only bytes invalid at the very end mean truncation; a bad byte earlier is MSH-18."""
    raw = _with_charset("UNICODE UTF-8", "\rNTE|2||血").encode("utf-8")[:-1]
    raw = raw.replace("张".encode(), "张".encode("gb18030"), 1)
    with pytest.raises(ParseError) as caught:
        parse_hl7v2(raw)
    assert caught.value.location == "MSH-18"


@pytest.mark.parametrize("codec", ["utf-8", "utf-16-le"])
def test_mllp_start_block_without_end_block_is_truncation(codec: str) -> None:
    framed = "\x0b" + GOOD.decode("utf-8")
    raw = framed.encode(codec)
    if codec == "utf-16-le":
        raw = b"\xff\xfe" + raw
    with pytest.raises(ParseError) as caught:
        parse_hl7v2(raw)
    assert caught.value.location == "SPM[1]"  # the last segment of cbc-basic.hl7
    assert "MLLP" in caught.value.message and "truncated" in caught.value.message
    closed = (framed + "\x1c\r").encode(codec)
    parse_hl7v2(b"\xff\xfe" + closed if codec == "utf-16-le" else closed)


# -- HTTP ------------------------------------------------------------------------------------


def _post(client: TestClient, body: bytes, source: str = "std-hl7v2"):
    return client.post(
        "/ingest",
        content=body,
        headers={"X-Source-System": source, "Content-Type": "x-application/hl7-v2+er7"},
    )


@pytest.mark.parametrize(
    "name",
    ["truncated-obx.hl7", "truncated-mllp.hl7", "binary-garbage.hl7", "empty.hl7", "no-msh.hl7"],
)
def test_bad_bodies_answer_a_located_4xx_outcome(name: str, client: TestClient) -> None:
    raw = (BAD / name).read_bytes()
    response = _post(client, raw)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert validate_r4(outcome) == []
    errors = [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]
    assert errors and all(i.get("location") for i in errors), errors
    message_id = response.headers["X-Message-Id"]
    assert client.get(f"/messages/{message_id}/raw").content == raw
    assert client.get(f"/messages/{message_id}").json()["status"] == "quarantined"


def test_garbage_of_every_kind_never_answers_500(client: TestClient) -> None:
    bodies = [
        b"\x00" * 64,
        b"MSH",
        b"MSH|",
        b"\x0b\x1c\r",
        b"\xff\xfe\x00",
        "张三".encode(),
        b"MSH|^~\\&|" + bytes(range(256)),
        b"\x0bMSH|^~\\&|A|B",
        GOOD[:57],
        GOOD[: GOOD.index("张".encode()) + 1],
    ]
    for body in bodies:
        response = _post(client, body)
        assert 400 <= response.status_code < 500, (body[:20], response.status_code)
        issues = response.json()["issue"]
        assert all(i.get("location") for i in issues if i["severity"] == "error"), issues
    assert client.get("/health").status_code == 200


def test_a_crash_while_translating_quarantines_and_the_server_keeps_serving(
    app: FastAPI, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: MappingSet, fmt: str, message_type: str) -> None:
        raise RuntimeError("simulated bug in a mapping set")

    monkeypatch.setattr(MappingSet, "message_for", broken)
    raw = (ORU / "std-hl7v2" / "cbc-basic.hl7").read_bytes()
    response = _post(client, raw)
    assert response.status_code == 422, response.text
    outcome = response.json()
    assert validate_r4(outcome) == []
    fatal = [i for i in outcome["issue"] if i["severity"] == "fatal"]
    assert len(fatal) == 1 and fatal[0]["code"] == "exception"
    assert "RuntimeError" in fatal[0]["diagnostics"]
    assert "simulated bug" not in response.text  # the exception text may quote the message
    message_id = response.headers["X-Message-Id"]
    stored = client.get(f"/messages/{message_id}").json()
    assert stored["status"] == "quarantined" and stored["resources"] == []
    assert client.get("/fhir/Patient").json()["total"] == 0

    # the server still serves, and the next message (a different one) is also quarantined
    assert client.get("/health").status_code == 200
    other = _post(client, (ORU / "std-hl7v2" / "two-orders.hl7").read_bytes())
    assert other.status_code == 422

    # the bug fixed, the kept message goes through on reprocessing
    monkeypatch.undo()
    again = client.post(f"/messages/{message_id}/reprocess")
    assert again.status_code == 202, again.text
    assert again.json()["status"] == "processed"
    assert client.get(f"/messages/{message_id}").json()["attempts"] == 2
    assert client.get("/fhir/Patient").json()["total"] == 1


def test_a_crash_while_storing_quarantines_instead_of_losing_the_message(
    app: FastAPI,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    session_factory: sessionmaker[Session],
) -> None:
    """A bug after translation (here: saving the resources fails with a non-database error)
    rolls back what was half written, keeps the message quarantined with a fatal issue, and
    a reprocess after the fix stores it."""
    import adapter.pipeline.steps as steps_module

    def broken(*args: Any, **kwargs: Any) -> None:
        raise KeyError("simulated bug while storing")

    monkeypatch.setattr(steps_module, "save_resources", broken)
    raw = (ORU / "std-hl7v2" / "cbc-basic.hl7").read_bytes()
    response = _post(client, raw)
    assert response.status_code == 422, response.text
    fatal = [i for i in response.json()["issue"] if i["severity"] == "fatal"]
    assert len(fatal) == 1 and "KeyError" in fatal[0]["diagnostics"]
    message_id = response.headers["X-Message-Id"]
    with session_factory() as session:
        assert _count(session, Resource) == 0
        assert _count(session, Outbox) == 0
        message = session.get(InboundMessage, message_id)
        assert message is not None and message.status == "quarantined"
        assert message.raw == raw

    # reprocessing while the bug is still there: still quarantined, nothing half stored
    assert client.post(f"/messages/{message_id}/reprocess").status_code == 422
    monkeypatch.undo()
    again = client.post(f"/messages/{message_id}/reprocess")
    assert again.status_code == 202, again.text
    assert client.get(f"/messages/{message_id}").json()["attempts"] == 3
    assert client.get("/fhir/Patient").json()["total"] == 1
